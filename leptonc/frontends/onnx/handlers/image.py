"""Image ONNX ops: Resize (and Upsample), GridSample, RoiAlign, NonMaxSuppression."""
from __future__ import annotations

import numpy as np

from ....ir import dims as D
from ....ir.dtypes import DType
from ..registry import onnx_op
from .common import norm_axis

Q = D.UNKNOWN


def _modes(cx):
    mode = cx.a("mode", "nearest")
    return dict(mode={"bilinear": "linear", "trilinear": "linear", "bicubic": "cubic"}.get(mode, mode),
                coordinate_transformation_mode=cx.a("coordinate_transformation_mode", "half_pixel"),
                nearest_mode=cx.a("nearest_mode", "round_prefer_floor"),
                cubic_coeff_a=float(cx.a("cubic_coeff_a", -0.75)), exclude_outside=bool(cx.a("exclude_outside", 0)),
                extrapolation_value=float(cx.a("extrapolation_value", 0.0)), antialias=bool(cx.a("antialias", 0)))


def _empty(b, v):
    return v is None or (v.type.rank == 1 and v.shape[0] == 0)


@onnx_op("Resize")
def resize(cx):
    b, x = cx.b, cx.x(0)
    r = x.type.rank
    roi_v, scales_v, sizes_v = cx.x(1), cx.x(2), cx.x(3)
    axes = [norm_axis(a, r) for a in cx.a("axes", ())] or list(range(r))
    policy = cx.a("keep_aspect_ratio_policy", "stretch")
    modes = _modes(cx)
    roi = None if _empty(b, roi_v) else b.known(roi_v)
    use_sizes = not _empty(b, sizes_v)
    known = b.dims(sizes_v) if use_sizes else b.known(scales_v) if not _empty(b, scales_v) else None
    if use_sizes and known is not None and Q in known:
        known = None
    static = known is not None and (roi is not None or _empty(b, roi_v))
    if static:
        out, scales = list(x.shape), [1.0] * r
        if use_sizes:
            for i, a in enumerate(axes):  # scale 0: size_out / size_in, computed at run time
                out[a] = known[i]
                scales[a] = 1.0 if D.same(known[i], x.shape[a]) else known[i] / x.shape[a] \
                    if isinstance(known[i], int) and isinstance(x.shape[a], int) and x.shape[a] else 0.0
            if policy != "stretch":
                if not all(isinstance(x.shape[a], int) for a in axes):
                    static = False
                else:
                    s = (min if policy == "not_larger" else max)(scales[a] for a in axes)
                    scales = [s if i in axes else 1.0 for i in range(r)]
                    out = [int(s * x.shape[i] + 0.5) if i in axes else x.shape[i] for i in range(r)]
        else:
            vals = [float(v) for v in np.asarray(known).reshape(-1)]
            for i, a in enumerate(axes):
                scales[a] = vals[i]
                d = x.shape[a]
                out[a] = int(np.floor(d * vals[i])) if isinstance(d, int) else \
                    D.mul(d, int(vals[i])) if float(vals[i]).is_integer() else Q
        if static and Q not in out:
            full_roi = ()
            if roi is not None:
                rv = [float(v) for v in np.asarray(roi).reshape(-1)]
                full = [0.0] * r + [1.0] * r
                for i, a in enumerate(axes):
                    full[a], full[a + r] = rv[i], rv[i + len(axes)]
                full_roi = tuple(full)
            return b.op("resize", x, shape=tuple(out), scales=tuple(scales), roi=full_roi, **modes)
    roi_v = b.const(np.zeros(0, np.float32)) if _empty(b, roi_v) else b.cast(roi_v, DType.f32)
    scales_v = b.const(np.zeros(0, np.float32)) if _empty(b, scales_v) else b.cast(scales_v, DType.f32)
    sizes_v = b.const(np.zeros(0, np.int64)) if _empty(b, sizes_v) else b.cast(sizes_v, DType.i64)
    return b.op("resize_dynamic", x, roi_v, scales_v, sizes_v, axes=tuple(cx.a("axes", ())),
                keep_aspect_ratio_policy=policy, **modes)


@onnx_op("GridSample")
def grid_sample(cx):
    mode = cx.a("mode", "linear" if cx.version >= 20 else "bilinear")
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
    return cx.b.op("grid_sample", cx.x(0), cx.x(1), mode=mode, padding_mode=cx.a("padding_mode", "zeros"),
                   align_corners=bool(cx.a("align_corners", 0)))


@onnx_op("RoiAlign")
def roi_align(cx):
    return cx.b.op("roi_align", cx.x(0), cx.x(1), cx.b.cast(cx.x(2), DType.i64), mode=cx.a("mode", "avg"),
                   output_height=cx.a("output_height", 1), output_width=cx.a("output_width", 1),
                   sampling_ratio=cx.a("sampling_ratio", 0), spatial_scale=float(cx.a("spatial_scale", 1.0)),
                   coordinate_transformation_mode=cx.a("coordinate_transformation_mode", "half_pixel"))


@onnx_op("NonMaxSuppression")
def non_max_suppression(cx):
    b = cx.b
    boxes, scores = cx.x(0), cx.x(1)
    extra = [cx.x(2), cx.x(3), cx.x(4)]
    defaults = [np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32)]
    extra = [b.const(d) if v is None else v for v, d in zip(extra, defaults)]
    return b.op("non_max_suppression", boxes, scores, *extra, center_point_box=cx.a("center_point_box", 0))



@onnx_op("AffineGrid")
def affine_grid(cx):
    b, theta, size = cx.b, cx.x(0), cx.x(1)
    ac = bool(cx.a("align_corners", 0))
    dims = b.dims(size)
    if dims is not None and Q not in dims:
        return b.op("affine_grid", theta, size=dims, align_corners=ac)
    return b.op("affine_grid_dynamic", theta, b.cast(size, DType.i64), align_corners=ac)
