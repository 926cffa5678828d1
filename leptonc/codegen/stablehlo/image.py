"""Lowering of resize and affine_grid. Both are linear maps (affine with resize's extrapolation
value) whose coefficients depend only on static sizes and attributes, so their matrices are
the reference implementations applied to a basis at emission; the module multiplies by them."""
from __future__ import annotations

import math

import numpy as np

from ...ir.dtypes import DType
from ...ir.ops.image import affine_grid_array, resize_array
from .builder import Builder
from .dynamic import known_ints
from .linalg import apply_matrix, dot
from .rules import lowers


def resize_matrix(n: int, out_n: int, scale: float, roi, modes: dict) -> tuple[np.ndarray, np.ndarray]:
    """(M, offset) with resize(v) = v @ M + offset for vectors v of length n along one axis."""
    def run(v):  # v: (k, n) -> (k, out_n), resizing the second axis only
        return resize_array(v, (v.shape[0], out_n), (1.0, scale), () if roi is None else (0.0, roi[0], 1.0, roi[1]),
                            **modes)
    offset = run(np.zeros((1, n)))[0]
    return run(np.eye(n)) - offset, offset


@lowers("resize")
def resize(b: Builder, node, args, out, attrs):
    """Axis by axis, as the reference: the source coordinates and weights are constants."""
    x = args[0]
    modes = {k: attrs[k] for k in ("mode", "coordinate_transformation_mode", "nearest_mode", "cubic_coeff_a",
                                   "exclude_outside", "extrapolation_value", "antialias")}
    shape, rank = out[0].shape, len(x.shape)
    scales = [s if s else shape[i] / x.shape[i] for i, s in enumerate(attrs["scales"])]
    roi = list(attrs["roi"]) or None
    acc = DType.f64 if x.dtype in (DType.f64,) or x.dtype.is_int else DType.f32
    y = b.convert(x, acc)
    for axis in range(rank):
        axis_roi = None if roi is None else (roi[axis], roi[axis + rank])
        if math.isclose(scales[axis], 1.0) and shape[axis] == x.shape[axis] and (
                axis_roi is None or (math.isclose(axis_roi[0], 0.0) and math.isclose(axis_roi[1], 1.0))):
            continue
        matrix, offset = resize_matrix(x.shape[axis], shape[axis], float(scales[axis]), axis_roi, modes)
        y = apply_matrix(b, y, axis, matrix, offset)
    if x.dtype.is_int:  # round half to even, saturate
        info = np.iinfo(x.dtype.numpy)
        y = b.unary("round_nearest_even", y)
        y = b.binary("minimum", b.binary("maximum", y, b.full(info.min, y.type)), b.full(info.max, y.type))
    return b.convert(y, x.dtype)


def affine_grid_of(b: Builder, theta, size, align_corners: bool, out):
    """grid[n] = theta[n] (flattened) @ M, M the reference applied to each basis theta."""
    k = theta.shape[1] * theta.shape[2]
    probe = np.eye(k).reshape((k,) + tuple(theta.shape[1:]))
    matrix = affine_grid_array(probe, (k,) + tuple(size[1:]), align_corners).reshape(k, -1)
    t = b.reshape(b.convert(theta, DType.f64 if theta.dtype is DType.f64 else DType.f32), (theta.shape[0], k))
    y = dot(b, t, b.constant(matrix.astype(t.dtype.numpy)), ([], []), ([1], [0]), (theta.shape[0], matrix.shape[1]))
    return b.convert(b.reshape(y, out.shape), out.dtype)


@lowers("affine_grid")
def affine_grid(b: Builder, node, args, out, attrs):
    return affine_grid_of(b, args[0], attrs["size"], attrs["align_corners"], out[0])


@lowers("affine_grid_dynamic")
def affine_grid_dynamic(b: Builder, node, args, out, attrs):
    return affine_grid_of(b, args[0], known_ints(node, args[1], "size"), attrs["align_corners"], out[0])
