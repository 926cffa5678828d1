"""Image ops: resize (nearest / linear / cubic interpolation, separable per axis), grid_sample,
roi_align and non_max_suppression. Semantics follow ONNX (Resize-19, GridSample-22, RoiAlign-22,
NonMaxSuppression-11)."""
from __future__ import annotations

import math

import numpy as np

from .. import dims as D
from ..dtypes import DType
from ..registry import PURE, define_op
from ..samples import op_samples
from ..types import TensorType
from .infer import require, require_float

Q = D.UNKNOWN
STRUCTURED = PURE | {"structured"}
_MODES = ("nearest", "linear", "cubic")
_COORDS = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
           "tf_crop_and_resize")
_NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


# -- resize ---------------------------------------------------------------------------------------
def _coeffs(ratio: np.ndarray, scale: float, mode: str, nearest_mode: str, a: float, antialias: bool):
    """Interpolation weights per output position (rows) for the neighbours left to right (columns)."""
    r = ratio[:, None]
    if mode == "nearest":
        whole = r == 1.0
        if nearest_mode == "round_prefer_floor":
            left = r <= 0.5
        elif nearest_mode == "round_prefer_ceil":
            left = r < 0.5
        else:
            left = np.full_like(r, nearest_mode == "floor", dtype=bool)
        left = left & ~whole
        return np.concatenate([left, ~left], axis=1).astype(np.float64)
    if mode == "linear":
        if not antialias:
            return np.concatenate([1 - r, r], axis=1)
        s = min(scale, 1.0)
        start = int(np.floor(-1 / s) + 1)
        args = (np.arange(start, 2 - start)[None, :] - r) * s
        c = np.clip(1 - np.abs(args), 0, 1)
        return c / c.sum(axis=1, keepdims=True)
    if not antialias:
        rr, q = r + 1, 1 - r
        return np.concatenate([((a * rr - 5 * a) * rr + 8 * a) * rr - 4 * a,
                               ((a + 2) * r - (a + 3)) * r * r + 1,
                               ((a + 2) * q - (a + 3)) * q * q + 1,
                               ((a * (q + 1) - 5 * a) * (q + 1) + 8 * a) * (q + 1) - 4 * a], axis=1)
    s = min(scale, 1.0)
    start = int(np.floor(-2 / s) + 1)
    x = np.abs(s * (np.arange(start, 2 - start)[None, :] - r))
    c = np.where(x <= 1, (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1,
                 np.where(x < 2, a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a, 0.0))
    return c / c.sum(axis=1, keepdims=True)


def _source_coords(ctm: str, out_n: int, in_n: int, scale: float, roi):
    y = np.arange(out_n, dtype=np.float64)
    out_w = scale * in_n
    extrapolated = None
    if ctm == "align_corners":
        x = np.zeros(out_n) if out_w == 1 else y * (in_n - 1) / (out_w - 1)
    elif ctm == "asymmetric":
        x = y / scale
    elif ctm == "tf_crop_and_resize":
        lo, hi = roi
        x = np.full(out_n, (hi - lo) * (in_n - 1) / 2) if out_w == 1 else y * (hi - lo) * (in_n - 1) / (out_w - 1)
        x = x + lo * (in_n - 1)
        extrapolated = (x < 0) | (x > in_n - 1)
    elif ctm == "pytorch_half_pixel":
        x = np.full(out_n, -0.5) if out_w == 1 else (y + 0.5) / scale - 0.5
    elif ctm == "half_pixel":
        x = (y + 0.5) / scale - 0.5
    else:  # half_pixel_symmetric
        offset = in_n / 2 * (1 - out_n / out_w)
        x = offset + (y + 0.5) / scale - 0.5
    return x, extrapolated


def _resize_axis(data, axis, scale, out_n, roi, mode, ctm, nearest_mode, a, exclude_outside, extrapolation,
                 antialias):
    in_n = data.shape[axis]
    if out_n == 0:
        shape = list(data.shape)
        shape[axis] = 0
        return np.empty(shape, data.dtype)
    x, extrapolated = _source_coords(ctm, out_n, in_n, scale, roi)
    xi = np.floor(x).astype(np.int64)
    ratio = np.where(x == xi, 1.0, x - xi)
    coeffs = _coeffs(ratio, scale, mode, nearest_mode, a, antialias)
    n = coeffs.shape[1]
    pad = int(np.ceil(n / 2))
    xp = x + pad
    p = np.floor(xp).astype(np.int64)
    frac = xp - p
    if n % 2 == 0:
        start = p + np.where(frac == 0, -(n // 2), -(n // 2) + 1)
    else:
        start = p + np.where(frac <= 0.5, -((n - 1) // 2), -((n - 1) // 2) + 1)
    idx = start[:, None] + np.arange(n)[None, :] - pad
    if exclude_outside:
        coeffs = np.where((idx < 0) | (idx >= in_n), 0.0, coeffs)
        total = coeffs.sum(axis=1, keepdims=True)
        coeffs = coeffs / np.where(total == 0, 1.0, total)
    gathered = np.take(data, np.clip(idx, 0, in_n - 1), axis=axis)  # ..., out, n, ...
    shape = (1,) * axis + coeffs.shape + (1,) * (data.ndim - axis - 1)
    out = (gathered * coeffs.reshape(shape)).sum(axis=axis + 1)
    if extrapolated is not None and extrapolated.any():
        mask = extrapolated.reshape((1,) * axis + (out_n,) + (1,) * (data.ndim - axis - 1))
        out = np.where(mask, extrapolation, out)
    return out


def resize_array(x, sizes, scales, roi, *, mode, coordinate_transformation_mode, nearest_mode, cubic_coeff_a,
                 exclude_outside, extrapolation_value, antialias):
    """x resized to `sizes` (one per dim) with per-dim `scales` for the coordinate mapping; roi: 2 * rank
    floats (all starts, then all ends) or empty."""
    r = x.ndim
    roi = list(roi) if roi is not None and len(roi) else None
    out = x.astype(np.float64)
    for axis in range(r):
        s, n = float(scales[axis]), int(sizes[axis])
        axis_roi = None if roi is None else (roi[axis], roi[axis + r])
        if math.isclose(s, 1.0) and n == out.shape[axis] and (
                axis_roi is None or (math.isclose(axis_roi[0], 0.0) and math.isclose(axis_roi[1], 1.0))):
            continue
        out = _resize_axis(out, axis, s, n, axis_roi, mode, coordinate_transformation_mode, nearest_mode,
                           cubic_coeff_a, exclude_outside, extrapolation_value, antialias)
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        return np.clip(np.round(out), info.min, info.max).astype(x.dtype)
    return out.astype(x.dtype)


_RESIZE_MODE_ATTRS = {
    "mode": ("str", "nearest"), "coordinate_transformation_mode": ("str", "half_pixel"),
    "nearest_mode": ("str", "round_prefer_floor"), "cubic_coeff_a": ("float", -0.75),
    "exclude_outside": ("bool", False), "extrapolation_value": ("float", 0.0), "antialias": ("bool", False),
}


def _check_modes(mode, coordinate_transformation_mode, nearest_mode, **_):
    require(mode in _MODES, f"unknown resize mode {mode!r}")
    require(coordinate_transformation_mode in _COORDS,
            f"unknown coordinate_transformation_mode {coordinate_transformation_mode!r}")
    require(nearest_mode in _NEAREST, f"unknown nearest_mode {nearest_mode!r}")


def _resize_infer(x: TensorType, shape, scales, roi, **modes) -> TensorType:
    _check_modes(**modes)
    require(len(shape) == x.rank and len(scales) == x.rank, f"resize needs {x.rank} sizes and scales")
    require(len(roi) in (0, 2 * x.rank), f"resize roi needs {2 * x.rank} values")
    return x.with_shape(shape)


@define_op("resize", infer=_resize_infer, traits=STRUCTURED,
           attrs={"shape": "shape", "scales": "floats", "roi": ("floats", ()), **_RESIZE_MODE_ATTRS})
def resize(x, shape, scales, roi, **modes):
    """Resize to `shape`; `scales` (per dim) map output to input coordinates, 0 meaning size_out / size_in."""
    scales = [s if s else shape[i] / x.shape[i] for i, s in enumerate(scales)]
    return resize_array(x, shape, scales, roi, **modes)


def _resize_dynamic_infer(x, roi, scales, sizes, axes, keep_aspect_ratio_policy, **modes) -> TensorType:
    _check_modes(**modes)
    require(scales.rank == 1 and sizes.rank == 1 and roi.rank == 1, "resize_dynamic operands must be 1-D")
    require(sizes.dtype is DType.i64, "resize_dynamic sizes must be i64")
    return x.with_shape((Q,) * x.rank)


@define_op("resize_dynamic", arity=4, infer=_resize_dynamic_infer, traits=STRUCTURED,
           attrs={"axes": ("ints", ()), "keep_aspect_ratio_policy": ("str", "stretch"), **_RESIZE_MODE_ATTRS})
def resize_dynamic(x, roi, scales, sizes, axes, keep_aspect_ratio_policy, **modes):
    """ONNX Resize with run-time roi / scales / sizes (empty operands are absent), over `axes` (all if empty)."""
    out, sc, roi = resize_dynamic_params(x.shape, roi, scales, sizes, axes, keep_aspect_ratio_policy)
    return resize_array(x, out, sc, roi, **modes)


def resize_dynamic_params(shape, roi, scales, sizes, axes, keep_aspect_ratio_policy):
    """(output sizes, scales, roi over all dims) that resize_dynamic's operands give an input of `shape`."""
    r = len(shape)
    axes = [a % r for a in axes] if axes else list(range(r))
    roi = np.asarray(roi, np.float64).reshape(-1)
    if roi.size:
        full = [0.0] * r + [1.0] * r
        for i, a in enumerate(axes):
            full[a], full[a + r] = roi[i], roi[i + len(axes)]
        roi = full
    if sizes.size:
        out = list(shape)
        for i, a in enumerate(axes):
            out[a] = int(sizes[i])
        sc = [out[i] / shape[i] if shape[i] else 1.0 for i in range(r)]
        if keep_aspect_ratio_policy != "stretch":
            s = (min if keep_aspect_ratio_policy == "not_larger" else max)(sc[a] for a in axes)
            sc = [s if i in axes else 1.0 for i in range(r)]
            out = [int(s * shape[i] + 0.5) if i in axes else shape[i] for i in range(r)]
    else:
        sc = [1.0] * r
        for i, a in enumerate(axes):
            sc[a] = float(scales.reshape(-1)[i])
        out = [int(np.floor(shape[i] * sc[i])) for i in range(r)]
    return out, sc, roi


# -- grid_sample ----------------------------------------------------------------------------------
def _gs_infer(x: TensorType, grid: TensorType, mode, padding_mode, align_corners) -> TensorType:
    require(mode in ("linear", "nearest", "cubic"), f"unknown grid_sample mode {mode!r}")
    require(padding_mode in ("zeros", "border", "reflection"), f"unknown padding_mode {padding_mode!r}")
    require(grid.rank == x.rank and grid.shape[-1] == x.rank - 2, "grid_sample grid must be (N, out..., rank - 2)")
    return x.with_shape((x.shape[0], x.shape[1]) + tuple(grid.shape[1:-1]))


def _reflect(c, lo, hi):
    span = hi - lo
    if span <= 0:
        return np.zeros_like(c) + lo
    c = np.abs(c - lo)
    flips = np.floor(c / span)
    rest = c - flips * span
    return np.where(flips % 2 == 0, lo + rest, hi - rest)


@define_op("grid_sample", arity=2, infer=_gs_infer, traits=STRUCTURED,
           attrs={"mode": ("str", "linear"), "padding_mode": ("str", "zeros"), "align_corners": ("bool", False)})
def grid_sample(x, grid, mode, padding_mode, align_corners):
    """Sample x at the normalized coordinates of grid ([-1, 1], last dim x, y, ...), as ONNX GridSample."""
    nsp = x.ndim - 2
    n, c = x.shape[:2]
    sizes = x.shape[2:][::-1]  # grid's coordinate order: innermost spatial dim first
    g = grid.astype(np.float64)
    coords = []
    for i in range(nsp):
        size = sizes[i]
        gi = g[..., i]
        ci = (gi + 1) / 2 * (size - 1) if align_corners else ((gi + 1) * size - 1) / 2
        coords.append(ci)
    out_shape = grid.shape[1:-1]
    data = x.astype(np.float64)

    def fetch(idx):  # idx: list (per grid coordinate) of integer arrays (N, out...)
        valid = np.ones(idx[0].shape, bool)
        clipped = []
        for i in range(nsp):
            valid &= (idx[i] >= 0) & (idx[i] < sizes[i])
            clipped.append(np.clip(idx[i], 0, sizes[i] - 1))
        bidx = np.arange(n).reshape((n,) + (1,) * len(out_shape))
        sp = tuple(clipped[::-1])  # back to x's dim order
        vals = data[(bidx[:, None],) + (np.arange(c).reshape((1, c) + (1,) * len(out_shape)),)
                    + tuple(s[:, None] for s in sp)]
        return np.where(valid[:, None], vals, 0.0)

    def pad_coords(cs):
        out = []
        for i, ci in enumerate(cs):
            size = sizes[i]
            if padding_mode == "border":
                ci = np.clip(ci, 0, size - 1)
            elif padding_mode == "reflection":
                ci = _reflect(ci, 0, size - 1) if align_corners else np.clip(_reflect(ci, -0.5, size - 0.5), 0, size - 1)
            out.append(ci)
        return out

    coords = pad_coords(coords)
    if mode == "nearest":
        return fetch([np.rint(ci).astype(np.int64) for ci in coords]).astype(x.dtype)
    if mode == "linear":
        base = [np.floor(ci).astype(np.int64) for ci in coords]
        frac = [ci - b for ci, b in zip(coords, base)]
        out = 0.0
        for corner in np.ndindex(*(2,) * nsp):
            w = 1.0
            for i, k in enumerate(corner):
                w = w * (frac[i] if k else 1 - frac[i])
            out = out + fetch([base[i] + corner[i] for i in range(nsp)]) * w[:, None]
        return np.asarray(out).astype(x.dtype)
    a = -0.75
    base = [np.floor(ci).astype(np.int64) - 1 for ci in coords]
    frac = [ci - np.floor(ci) for ci in coords]

    def cubic_w(t):
        t1 = t + 1
        t2 = 1 - t
        return [((a * t1 - 5 * a) * t1 + 8 * a) * t1 - 4 * a, ((a + 2) * t - (a + 3)) * t * t + 1,
                ((a + 2) * t2 - (a + 3)) * t2 * t2 + 1, ((a * (t2 + 1) - 5 * a) * (t2 + 1) + 8 * a) * (t2 + 1) - 4 * a]

    ws = [cubic_w(f) for f in frac]
    out = 0.0
    for corner in np.ndindex(*(4,) * nsp):
        w = 1.0
        idx = []
        for i, k in enumerate(corner):
            w = w * ws[i][k]
            j = base[i] + k
            if padding_mode == "border":
                j = np.clip(j, 0, sizes[i] - 1)
            elif padding_mode == "reflection":
                j = np.rint(_reflect(j.astype(np.float64), 0, sizes[i] - 1) if align_corners else
                            _reflect(j.astype(np.float64), -0.5, sizes[i] - 0.5)).astype(np.int64)
                j = np.clip(j, 0, sizes[i] - 1)
            idx.append(j)
        out = out + fetch(idx) * w[:, None]
    return np.asarray(out).astype(x.dtype)


# -- roi_align ------------------------------------------------------------------------------------
def _roi_infer(x, rois, batch, mode, output_height, output_width, sampling_ratio, spatial_scale,
               coordinate_transformation_mode) -> TensorType:
    require_float(x, "roi_align input")
    require(x.rank == 4 and rois.rank == 2 and batch.rank == 1, "roi_align needs x (N, C, H, W), rois (R, 4), batch (R)")
    require(mode in ("avg", "max"), f"unknown roi_align mode {mode!r}")
    return x.with_shape((rois.shape[0], x.shape[1], output_height, output_width))


@define_op("roi_align", arity=3, infer=_roi_infer, traits=STRUCTURED,
           attrs={"mode": ("str", "avg"), "output_height": ("int", 1), "output_width": ("int", 1),
                  "sampling_ratio": ("int", 0), "spatial_scale": ("float", 1.0),
                  "coordinate_transformation_mode": ("str", "half_pixel")})
def roi_align(x, rois, batch, mode, output_height, output_width, sampling_ratio, spatial_scale,
              coordinate_transformation_mode):
    """Average (or max) of bilinear samples over each bin of each region of interest."""
    _, c, h, w = x.shape
    offset = 0.5 if coordinate_transformation_mode == "half_pixel" else 0.0
    out = np.zeros((rois.shape[0], c, output_height, output_width), np.float64)
    data = x.astype(np.float64)
    for r in range(rois.shape[0]):
        x1, y1, x2, y2 = (float(v) * spatial_scale - offset for v in rois[r])
        rw, rh = x2 - x1, y2 - y1
        if not offset:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bh, bw = rh / output_height, rw / output_width
        gh = sampling_ratio if sampling_ratio > 0 else int(np.ceil(rh / output_height))
        gw = sampling_ratio if sampling_ratio > 0 else int(np.ceil(rw / output_width))
        gh, gw = max(gh, 1), max(gw, 1)
        ys = y1 + np.arange(output_height)[:, None] * bh + (np.arange(gh)[None, :] + 0.5) * bh / gh  # oh, gh
        xs = x1 + np.arange(output_width)[:, None] * bw + (np.arange(gw)[None, :] + 0.5) * bw / gw  # ow, gw
        yy = ys[:, :, None, None]
        xx = xs[None, None, :, :]
        yy, xx = np.broadcast_arrays(yy, xx)  # oh, gh, ow, gw
        inside = (yy >= -1.0) & (yy <= h) & (xx >= -1.0) & (xx <= w)
        yc, xc = np.clip(yy, 0, None), np.clip(xx, 0, None)
        y0 = np.floor(yc).astype(np.int64)
        x0 = np.floor(xc).astype(np.int64)
        ytop = y0 >= h - 1
        xtop = x0 >= w - 1
        y0 = np.where(ytop, h - 1, y0)
        x0 = np.where(xtop, w - 1, x0)
        y1i = np.where(ytop, h - 1, y0 + 1)
        x1i = np.where(xtop, w - 1, x0 + 1)
        yc = np.where(ytop, y0, yc)
        xc = np.where(xtop, x0, xc)
        ly, lx = yc - y0, xc - x0
        hy, hx = 1 - ly, 1 - lx
        img = data[int(batch[r])]  # c, h, w
        terms = [(hy * hx, y0, x0), (hy * lx, y0, x1i), (ly * hx, y1i, x0), (ly * lx, y1i, x1i)]
        if mode == "avg":
            val = sum(wt[None] * img[:, yi, xi] for wt, yi, xi in terms)
            val = np.where(inside[None], val, 0.0)
            out[r] = val.sum(axis=(2, 4)) / (gh * gw)
        else:
            val = np.max(np.stack([wt[None] * img[:, yi, xi] for wt, yi, xi in terms]), axis=0)
            val = np.where(inside[None], val, 0.0)
            out[r] = val.max(axis=(2, 4))
    return out.astype(x.dtype)


# -- non_max_suppression --------------------------------------------------------------------------
def _nms_infer(boxes, scores, max_out, iou, score, center_point_box) -> TensorType:
    require(boxes.rank == 3 and scores.rank == 3, "non_max_suppression needs boxes (N, B, 4), scores (N, C, B)")
    return TensorType(DType.i64, (Q, 3))


@define_op("non_max_suppression", arity=5, infer=_nms_infer, attrs={"center_point_box": ("int", 0)})
def non_max_suppression(boxes, scores, max_out, iou, score, center_point_box):
    """Greedy NMS per batch and class: (batch, class, box) rows of the boxes kept, best score first."""
    max_out = int(np.asarray(max_out).reshape(-1)[0]) if np.asarray(max_out).size else 0
    iou_t = float(np.asarray(iou).reshape(-1)[0]) if np.asarray(iou).size else 0.0
    score_t = float(np.asarray(score).reshape(-1)[0]) if np.asarray(score).size else None
    b = boxes.astype(np.float64)
    if center_point_box:
        cx, cy, w, h = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
        b = np.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=-1)
    y1 = np.minimum(b[..., 0], b[..., 2])
    x1 = np.minimum(b[..., 1], b[..., 3])
    y2 = np.maximum(b[..., 0], b[..., 2])
    x2 = np.maximum(b[..., 1], b[..., 3])
    area = (y2 - y1) * (x2 - x1)
    out = []
    for n in range(scores.shape[0]):
        for c in range(scores.shape[1]):
            s = scores[n, c].astype(np.float64)
            order = np.argsort(-s, kind="stable")
            if score_t is not None:
                order = order[s[order] > score_t]
            kept = []
            for i in order:
                if len(kept) >= max_out:
                    break
                if kept:
                    k = np.array(kept)
                    ih = np.clip(np.minimum(y2[n, i], y2[n, k]) - np.maximum(y1[n, i], y1[n, k]), 0, None)
                    iw = np.clip(np.minimum(x2[n, i], x2[n, k]) - np.maximum(x1[n, i], x1[n, k]), 0, None)
                    inter = ih * iw
                    union = area[n, i] + area[n, k] - inter
                    ious = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
                    if np.any(ious > iou_t):
                        continue
                kept.append(int(i))
            out.extend((n, c, i) for i in kept)
    return np.array(out, dtype=np.int64).reshape(-1, 3)


# -- affine_grid ----------------------------------------------------------------------------------
def affine_grid_array(theta, size, align_corners):
    nsp = len(size) - 2
    axes = []
    for s in reversed(size[2:]):  # x (innermost), y, z
        s = int(s)
        axes.append(np.linspace(-1, 1, s) if align_corners else (np.arange(s) * 2 + 1) / s - 1)
    mesh = np.meshgrid(*axes[::-1], indexing="ij")  # each (D, H, W) in size order
    base = np.stack([m for m in mesh[::-1]] + [np.ones_like(mesh[0])], axis=-1)  # ..., nsp + 1
    base = base.reshape(-1, nsp + 1)
    out = np.einsum("pk,njk->npj", base, theta.astype(np.float64))
    return out.reshape((theta.shape[0],) + tuple(int(s) for s in size[2:]) + (nsp,)).astype(theta.dtype)


def _affine_infer(theta: TensorType, size, align_corners) -> TensorType:
    require_float(theta, "affine_grid theta")
    require(len(size) in (4, 5) and theta.rank == 3, "affine_grid needs theta (N, k, k + 1) and size (N, C, ...)")
    return theta.with_shape((theta.shape[0],) + tuple(size[2:]) + (len(size) - 2,))


@define_op("affine_grid", infer=_affine_infer, attrs={"size": "shape", "align_corners": ("bool", False)})
def affine_grid(theta, size, align_corners):
    """The sampling grid (N, spatial..., k) of affine maps theta over normalized output coordinates."""
    return affine_grid_array(theta, size, align_corners)


def _affine_dynamic_infer(theta: TensorType, size: TensorType, align_corners) -> TensorType:
    require(size.rank == 1 and isinstance(size.shape[0], int) and size.shape[0] in (4, 5),
            "affine_grid_dynamic size must be 4 or 5 integers")
    n = size.shape[0] - 2
    return theta.with_shape((theta.shape[0],) + (Q,) * n + (n,))


@define_op("affine_grid_dynamic", arity=2, infer=_affine_dynamic_infer, attrs={"align_corners": ("bool", False)})
def affine_grid_dynamic(theta, size, align_corners):
    """affine_grid with a run-time size."""
    return affine_grid_array(theta, [int(v) for v in size], align_corners)


@op_samples
def _samples(s):
    return {
        "resize": [
            s(s.f32(1, 2, 4, 5), shape=(1, 2, 8, 10), scales=(1, 1, 2, 2)),
            s(s.f32(1, 2, 4, 5), shape=(1, 2, 7, 3), scales=(0, 0, 0, 0), mode="linear"),
            s(s.f32(2, 6, 6), shape=(2, 9, 4), scales=(1, 1.5, 0.6667), mode="cubic", coordinate_transformation_mode="align_corners"),
            s(s.f32(1, 1, 5, 5), shape=(1, 1, 3, 3), scales=(0, 0, 0, 0), mode="linear", coordinate_transformation_mode="tf_crop_and_resize", roi=(0, 0, -0.2, 0.1, 1, 1, 0.8, 1.3), extrapolation_value=7.0),
            s(s.ints(1, 1, 4, 4, low=0, high=255, dtype=np.uint8), shape=(1, 1, 6, 6), scales=(0, 0, 0, 0), mode="linear", antialias=True),
        ],
        "resize_dynamic": [
            s(s.f32(1, 2, 4, 5), s.const(dtype=np.float32), s.const(1, 1, 2, 1.5, dtype=np.float32), s.const(), mode="linear"),
            s(s.f32(1, 2, 4, 5), s.const(dtype=np.float32), s.const(dtype=np.float32), s.const(6, 6), axes=(2, 3), keep_aspect_ratio_policy="not_larger"),
        ],
        "grid_sample": [
            s(s.f32(2, 3, 5, 6), s.f32(2, 4, 3, 2, low=-1.2, high=1.2)),
            s(s.f32(1, 2, 5, 6), s.f32(1, 4, 3, 2, low=-1.2, high=1.2), mode="nearest", padding_mode="border"),
            s(s.f32(1, 2, 5, 6), s.f32(1, 4, 3, 2, low=-1.5, high=1.5), mode="cubic", padding_mode="reflection", align_corners=True),
            s(s.f32(1, 2, 5, 6), s.f32(1, 4, 3, 2, low=-1.5, high=1.5), mode="linear", padding_mode="reflection"),
            s(s.f32(1, 2, 5, 6), s.f32(1, 4, 3, 2, low=-1.5, high=1.5), mode="cubic", padding_mode="border"),
            s(s.f32(1, 2, 3, 4, 5), s.f32(1, 2, 3, 2, 3, low=-1, high=1)),
        ],
        "roi_align": [
            s(s.f32(2, 3, 8, 9), np.array([[0, 0, 4, 4], [1.5, 2, 7.5, 6], [-2, -1, 3, 12]], np.float32), np.array([0, 1, 1]), output_height=2, output_width=3, sampling_ratio=2),
            s(s.f32(1, 2, 6, 6), np.array([[1, 1, 10, 8], [0, 0, 2, 2]], np.float32), np.array([0, 0]), mode="max", output_height=3, output_width=2, sampling_ratio=3, spatial_scale=0.5, coordinate_transformation_mode="output_half_pixel"),
        ],
        "affine_grid": [
            s(s.f32(2, 2, 3), size=(2, 3, 4, 5)),
            s(s.f32(1, 3, 4), size=(1, 1, 2, 3, 4), align_corners=True),
        ],
        "affine_grid_dynamic": [s(s.f32(2, 2, 3), s.const(2, 3, 4, 5))],
        "non_max_suppression": [
            s(np.array([[[0, 0, 1, 1], [0, 0.1, 1, 1.1], [0, 2, 1, 3], [0, 10, 1, 11]]], np.float32),
              np.array([[[0.9, 0.75, 0.6, 0.95]]], np.float32), s.scalar(2), s.scalar(0.5, np.float32),
              s.scalar(0.0, np.float32)),
        ],
    }
