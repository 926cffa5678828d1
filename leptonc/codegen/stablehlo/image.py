"""Lowering of resize, affine_grid, grid_sample and roi_align.

resize and affine_grid are linear maps (affine with resize's extrapolation value) whose
coefficients depend only on static sizes and attributes, so their matrices are the reference
implementations applied to a basis at emission; the module multiplies by them. grid_sample and
roi_align gather the neighbours of run-time coordinates and weight them."""
from __future__ import annotations

import math

import numpy as np

from ...ir.dtypes import DType
from ...ir.errors import LeptoncError
from ...ir.ops.image import affine_grid_array, resize_array, resize_dynamic_params
from ...ir.types import TensorType
from .builder import Builder, Val, dims_list, i64_array
from .dynamic import known_ints
from .linalg import apply_matrix, dot
from .nn import gather_pixels
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


@lowers("resize_dynamic")
def resize_dynamic(b: Builder, node, args, out, attrs):
    """resize with the sizes, scales and roi that the (known) operands give."""
    x, *operands = args
    for v, what in zip(operands, ("roi", "scales", "sizes")):
        if v.known is None:
            raise LeptoncError(f"stablehlo: the {what} of {node.label} is only known at run time; XLA needs it static")
    roi, scales, sizes = (np.asarray(v.known) for v in operands)
    shape, sc, full_roi = resize_dynamic_params(x.shape, roi, scales, sizes, attrs["axes"],
                                                attrs["keep_aspect_ratio_policy"])
    static = {k: v for k, v in attrs.items() if k not in ("axes", "keep_aspect_ratio_policy")}
    return resize(b, node, [x], out, {**static, "shape": tuple(shape), "scales": tuple(sc),
                                      "roi": tuple(np.asarray(full_roi, np.float64).reshape(-1))})


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


def _reflect(b: Builder, c: Val, lo: float, hi: float) -> Val:
    """Reflect coordinates into [lo, hi] (as many bounces as needed)."""
    span = hi - lo
    if span <= 0:
        return b.full(lo, c.type)
    c = b.unary("abs", b.binary("subtract", c, b.full(lo, c.type)))
    flips = b.unary("floor", b.binary("divide", c, b.full(span, c.type)))
    rest = b.binary("subtract", c, b.binary("multiply", flips, b.full(span, c.type)))
    even = b.compare(b.binary("remainder", flips, b.full(2, c.type)), b.full(0, c.type), "EQ")
    return b.select(even, b.binary("add", b.full(lo, c.type), rest), b.binary("subtract", b.full(hi, c.type), rest))


def _clamp(b: Builder, v: Val, lo, hi) -> Val:
    return b.binary("minimum", b.binary("maximum", v, b.full(lo, v.type)), b.full(hi, v.type))


def _fetch(b: Builder, x: Val, idx: list[Val], sizes) -> Val:
    """x[n, :, idx...] (N, C, out...) for integer index arrays (N, out...) in grid order (innermost dim
    first), zero where an index is outside."""
    nsp = len(idx)
    lead = tuple(idx[0].shape)
    valid = None
    cols = [b.iota(TensorType(DType.i64, lead + (1,)), 0)]
    for i in reversed(range(nsp)):  # x's dim order: outermost spatial dim first
        inside = b.binary("and", b.compare(idx[i], b.full(0, idx[i].type), "GE"),
                          b.compare(idx[i], b.full(sizes[i], idx[i].type), "LT"))
        valid = inside if valid is None else b.binary("and", valid, inside)
        cols.append(b.reshape(_clamp(b, idx[i], 0, sizes[i] - 1), lead + (1,)))
    coords = b.concatenate(cols, len(lead))
    every = [0] + list(range(2, 2 + nsp))
    numbers = (f"#stablehlo.gather<offset_dims = [1], collapsed_slice_dims = {dims_list(every)}, "
               f"start_index_map = {dims_list(every)}, index_vector_dim = {len(lead)}>")
    c = x.shape[1]
    vals = b.op1("stablehlo.gather", [x, coords], x.type.with_shape((lead[0], c) + lead[1:]),
                 {"dimension_numbers": numbers, "slice_sizes": i64_array([1, c] + [1] * nsp),
                  "indices_are_sorted": "false"})
    keep = b.broadcast_in_dim(valid, vals.shape, [0] + list(range(2, len(vals.shape))))
    return b.select(keep, vals, b.full(0, vals.type))


def _weighted(b: Builder, vals: Val, w: Val) -> Val:
    return b.binary("multiply", vals, b.broadcast_in_dim(w, vals.shape, [0] + list(range(2, len(vals.shape)))))


@lowers("grid_sample")
def grid_sample(b: Builder, node, args, out, attrs):
    """Unnormalize the grid, pad the coordinates, then gather the nearest, the 2^k linear or the
    4^k cubic neighbours and weight them, as the reference does."""
    acc = DType.f64 if args[0].dtype is DType.f64 else DType.f32
    x, grid = b.convert(args[0], acc), b.convert(args[1], acc)
    mode, padding, align = attrs["mode"], attrs["padding_mode"], attrs["align_corners"]
    nsp = len(x.shape) - 2
    sizes = tuple(x.shape[2:])[::-1]
    lead = tuple(grid.shape[:-1])
    coords = []
    for i in range(nsp):
        g = b.reshape(b.slice(grid, [0] * len(lead) + [i], list(lead) + [i + 1]), lead)
        one = b.binary("add", g, b.full(1, g.type))
        c = b.binary("multiply", one, b.full((sizes[i] - 1) / 2, g.type)) if align else \
            b.binary("divide", b.binary("subtract", b.binary("multiply", one, b.full(sizes[i], g.type)),
                                        b.full(1, g.type)), b.full(2, g.type))
        if padding == "border":
            c = _clamp(b, c, 0, sizes[i] - 1)
        elif padding == "reflection":
            c = _reflect(b, c, 0, sizes[i] - 1) if align else \
                _clamp(b, _reflect(b, c, -0.5, sizes[i] - 0.5), 0, sizes[i] - 1)
        coords.append(c)

    def as_index(v: Val) -> Val:
        return b.convert(v, DType.i64)

    if mode == "nearest":
        y = _fetch(b, x, [as_index(b.unary("round_nearest_even", c)) for c in coords], sizes)
        return b.convert(y, out[0].dtype)
    floor = [b.unary("floor", c) for c in coords]
    frac = [b.binary("subtract", c, f) for c, f in zip(coords, floor)]
    if mode == "linear":
        weights = [[b.binary("subtract", b.full(1, f.type), f), f] for f in frac]
        taps, first = 2, floor
    else:
        weights = [_cubic_weights(b, f) for f in frac]
        taps, first = 4, [b.binary("subtract", f, b.full(1, f.type)) for f in floor]
    total = None
    for corner in np.ndindex(*(taps,) * nsp):
        w, idx = None, []
        for i, k in enumerate(corner):
            w = weights[i][k] if w is None else b.binary("multiply", w, weights[i][k])
            j = b.binary("add", first[i], b.full(k, first[i].type))
            if mode == "cubic" and padding == "border":
                j = _clamp(b, j, 0, sizes[i] - 1)
            elif mode == "cubic" and padding == "reflection":
                j = b.unary("round_nearest_even", _reflect(b, j, 0, sizes[i] - 1) if align else
                            _reflect(b, j, -0.5, sizes[i] - 0.5))
                j = _clamp(b, j, 0, sizes[i] - 1)
            idx.append(as_index(j))
        term = _weighted(b, _fetch(b, x, idx, sizes), w)
        total = term if total is None else b.binary("add", total, term)
    return b.convert(total, out[0].dtype)


def _cubic_weights(b: Builder, t: Val, a: float = -0.75) -> list[Val]:
    """The four cubic convolution weights (a = -0.75) of the taps at -1, 0, 1, 2 from the fraction t."""
    def poly(v: Val, coeffs) -> Val:  # Horner: ((c0 v + c1) v + c2) v + c3
        acc = b.full(coeffs[0], v.type)
        for c in coeffs[1:]:
            acc = b.binary("add", b.binary("multiply", acc, v), b.full(c, v.type))
        return acc

    one = b.full(1, t.type)
    outer = (a, -5 * a, 8 * a, -4 * a)        # |d| in [1, 2)
    inner = (a + 2, -(a + 3), 0, 1)           # |d| < 1
    return [poly(b.binary("add", t, one), outer), poly(t, inner),
            poly(b.binary("subtract", one, t), inner), poly(b.binary("subtract", b.full(2, t.type), t), outer)]


@lowers("roi_align")
def roi_align(b: Builder, node, args, out, attrs):
    """Bilinear samples on a static gh x gw grid in every bin of every region, then their mean or max.
    With sampling_ratio 0 the grid size follows each region's size, which no static shape can hold."""
    if attrs["sampling_ratio"] <= 0:
        raise LeptoncError(f"stablehlo: {node.label} has sampling_ratio 0 (a sample count that depends on "
                           "each region's size); XLA needs static shapes: give a positive sampling_ratio")
    acc = DType.f64 if args[0].dtype is DType.f64 else DType.f32
    x, rois = b.convert(args[0], acc), b.convert(args[1], acc)
    batch = b.convert(args[2], DType.i64)
    _, _, h, w = x.shape
    r = rois.shape[0]
    oh, ow, g = attrs["output_height"], attrs["output_width"], attrs["sampling_ratio"]
    half = attrs["coordinate_transformation_mode"] == "half_pixel"
    grid = (r, oh, g, ow, g)

    def corner(i: int) -> Val:  # rois[:, i] * spatial_scale - offset, shape (R,)
        v = b.reshape(b.slice(rois, [0, i], [r, i + 1]), (r,))
        v = b.binary("multiply", v, b.full(attrs["spatial_scale"], v.type))
        return b.binary("subtract", v, b.full(0.5, v.type)) if half else v

    def samples(lo: Val, hi: Val, bins: int, dims) -> Val:
        extent = b.binary("subtract", hi, lo)
        if not half:
            extent = b.binary("maximum", extent, b.full(1, extent.type))
        step = b.binary("divide", extent, b.full(bins, extent.type))
        offsets = (np.arange(bins)[:, None] + (np.arange(g)[None, :] + 0.5) / g).astype(acc.numpy)  # bins, g
        at = b.binary("multiply", b.broadcast_in_dim(step, (r, bins, g), [0]),
                      b.broadcast_in_dim(b.constant(offsets), (r, bins, g), [1, 2]))
        pos = b.binary("add", b.broadcast_in_dim(lo, (r, bins, g), [0]), at)
        return b.broadcast_in_dim(pos, grid, dims)

    yy = samples(corner(1), corner(3), oh, [0, 1, 2])
    xx = samples(corner(0), corner(2), ow, [0, 3, 4])
    inside = None
    for v, size in ((yy, h), (xx, w)):
        ok = b.binary("and", b.compare(v, b.full(-1, v.type), "GE"), b.compare(v, b.full(size, v.type), "LE"))
        inside = ok if inside is None else b.binary("and", inside, ok)
    terms = _roi_corners(b, yy, xx, h, w)
    bidx = b.broadcast_in_dim(batch, grid, [0])
    vals = [b.binary("multiply", gather_pixels(b, x, [bidx], yi, xi),
                     b.broadcast_in_dim(wt, grid + (x.shape[1],), range(5))) for wt, yi, xi in terms]
    combine = "add" if attrs["mode"] == "avg" else "maximum"
    val = vals[0]
    for v in vals[1:]:
        val = b.binary(combine, val, v)
    val = b.select(b.broadcast_in_dim(inside, val.shape, range(5)), val, b.full(0, val.type))
    if combine == "add":
        pooled = b.reduce(val, b.scalar(0, acc), [2, 4], "add")
        pooled = b.binary("divide", pooled, b.full(g * g, pooled.type))
    else:
        pooled = b.reduce(val, b.scalar(-np.inf, acc), [2, 4], "maximum")
    return b.convert(b.transpose(pooled, (0, 3, 1, 2)), out[0].dtype)


def _roi_corners(b: Builder, yy: Val, xx: Val, h: int, w: int) -> list:
    """roi_align's bilinear corners: coordinates below zero clamp to zero, and a sample at or past
    the last row or column uses that row or column alone."""
    def split(v: Val, size: int):
        c = b.binary("maximum", v, b.full(0, v.type))
        low = b.unary("floor", c)
        top = b.compare(low, b.full(size - 1, low.type), "GE")
        last = b.full(size - 1, low.type)
        low = b.select(top, last, low)
        high = b.select(top, last, b.binary("add", low, b.full(1, low.type)))
        frac = b.binary("subtract", b.select(top, low, c), low)
        return b.convert(low, DType.i64), b.convert(high, DType.i64), frac

    y0, y1, ly = split(yy, h)
    x0, x1, lx = split(xx, w)
    one = b.full(1, ly.type)
    hy, hx = b.binary("subtract", one, ly), b.binary("subtract", one, lx)
    return [(b.binary("multiply", hy, hx), y0, x0), (b.binary("multiply", hy, lx), y0, x1),
            (b.binary("multiply", ly, hx), y1, x0), (b.binary("multiply", ly, lx), y1, x1)]
