"""C bodies of the image ops: resize, grid_sample, affine_grid and roi_align.

They compute in double, as the reference interpreter does (leptonc/ir/ops/image.py), and round to the
result's type at the end; image.c holds the run-time helpers (resize's taps per axis, the samplers).
Sizes are C expressions of the symbol variables, so resize's taps are computed when the kernel runs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...ir.dtypes import DType
from ...ir.graph import Graph, Node
from .cexpr import C, UnsupportedError, cnumel, ctype, elementwise_expr
from .kernels import KernelContext

IMAGE_SOURCE = Path(__file__).with_name("image.c").read_text()

_MODES = ("nearest", "linear", "cubic")
_COORDS = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
           "tf_crop_and_resize")
_NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def uses_image(graph: Graph) -> bool:
    """Whether the model's source needs image.c."""
    return any(n.op in IMAGE_EMITTERS for n in graph.nodes)


def _doubles(values) -> str:
    return ", ".join(repr(float(v)) for v in values) or "0.0"


def _read(ptr: str, dtype: DType) -> str:
    """Element i of ptr as a double."""
    return C.convert(f"{ptr}[i]", dtype, DType.f64) if dtype is not DType.f64 else f"{ptr}[i]"


def _store(value: str, dtype: DType, rounds: bool) -> str:
    """A double as dtype the way the reference's astype does; with `rounds`, integers are rounded half to even
    and clipped to the type's range first (resize's rule)."""
    if dtype.is_float:
        return C.convert(value, DType.f64, dtype) if dtype is not DType.f64 else value
    if rounds and dtype is not DType.bool:
        info = np.iinfo(dtype.numpy)
        value = f"lep_clip_round({value}, {float(info.min)!r}, {float(info.max)!r})"
    return elementwise_expr("cast", {}, [value], [DType.f64], dtype)


def _to_doubles(ctx: KernelContext, v, buf: str) -> list[str]:
    ctype(v.dtype, ctx.where)
    return [_new_doubles(ctx, v, buf),
            f"for (int64_t i = 0; i < {cnumel(v.shape, ctx.where)}; ++i) {buf}[i] = {_read(ctx.ptr(v), v.dtype)};"]


def _from_doubles(ctx: KernelContext, v, buf: str, rounds: bool = False) -> list[str]:
    return [f"for (int64_t i = 0; i < {cnumel(v.shape, ctx.where)}; ++i) "
            f"{ctx.ptr(v)}[i] = {_store(f'{buf}[i]', v.dtype, rounds)};"]


def _new_doubles(ctx: KernelContext, v, buf: str) -> str:
    return f"double* {buf} = (double*)lep_scratch((size_t)({cnumel(v.shape, ctx.where)}) * sizeof(double));"


def _dims(ctx: KernelContext, name: str, shape) -> str:
    return f"const int64_t {name}[] = {{{', '.join(ctx.d(d) for d in shape) or '0'}}};"


def emit_resize(ctx: KernelContext, node: Node) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    at = node.attrs
    rank = x.type.rank
    if rank > 16:
        raise UnsupportedError(f"{ctx.where}: resize over {rank} dims is not supported by the cpu target (16 are)")
    roi = list(at["roi"])
    modes = (f"{_MODES.index(at['mode'])}, {_COORDS.index(at['coordinate_transformation_mode'])}, "
             f"{_NEAREST.index(at['nearest_mode'])}, {int(at['exclude_outside'])}, {int(at['antialias'])}, "
             f"{float(at['cubic_coeff_a'])!r}, {C.literal(at['extrapolation_value'], DType.f64)}")
    return (["{",
             "  " + _dims(ctx, "ish", x.shape),
             "  " + _dims(ctx, "osh", y.shape),
             f"  const double sc[] = {{{_doubles(at['scales'])}}}, roi[] = {{{_doubles(roi)}}};",
             f"  const lep_resize_modes m = {{{modes}}};"]
            + ["  " + s for s in _to_doubles(ctx, x, "buf")]
            + [f"  double* r = lep_resize(buf, ish, osh, {rank}, sc, {'roi' if roi else 'NULL'}, &m);"]
            + ["  " + s for s in _from_doubles(ctx, y, "r", rounds=True)]
            + ["  if (r != buf) free(r);", "  free(buf);", "}"])


def _require_float(ctx: KernelContext, node: Node, *values) -> None:
    for v in values:
        if not v.dtype.is_float:
            raise UnsupportedError(f"{ctx.where}: {node.op} over {v.dtype} is not supported by the cpu target "
                                   "(floating-point types are)")


def emit_grid_sample(ctx: KernelContext, node: Node) -> list[str]:
    x, grid, y = node.inputs[0], node.inputs[1], node.outputs[0]
    _require_float(ctx, node, x, grid)
    nsp = x.type.rank - 2
    if not 1 <= nsp <= 3:
        raise UnsupportedError(f"{ctx.where}: grid_sample over {nsp} spatial dims is not supported by the cpu "
                               "target (1 to 3 are)")
    at = node.attrs
    mode = ("linear", "nearest", "cubic").index(at["mode"])
    padding = ("zeros", "border", "reflection").index(at["padding_mode"])
    return (["{", "  " + _dims(ctx, "isp", x.shape[2:])]
            + ["  " + s for s in _to_doubles(ctx, x, "xd") + _to_doubles(ctx, grid, "gd")]
            + ["  " + _new_doubles(ctx, y, "yd"),
               f"  lep_grid_sample(xd, gd, yd, {ctx.d(x.shape[0])}, {ctx.d(x.shape[1])}, {nsp}, isp, "
               f"{cnumel(y.shape[2:], ctx.where)}, {mode}, {padding}, {int(at['align_corners'])});"]
            + ["  " + s for s in _from_doubles(ctx, y, "yd")]
            + ["  free(xd); free(gd); free(yd);", "}"])


def emit_affine_grid(ctx: KernelContext, node: Node) -> list[str]:
    theta, y = node.inputs[0], node.outputs[0]
    size = node.attrs["size"]
    return (["{", "  " + _dims(ctx, "sp", size[2:])]
            + ["  " + s for s in _to_doubles(ctx, theta, "td")]
            + ["  " + _new_doubles(ctx, y, "yd"),
               f"  lep_affine_grid(td, yd, {ctx.d(theta.shape[0])}, {len(size) - 2}, sp, "
               f"{int(node.attrs['align_corners'])});"]
            + ["  " + s for s in _from_doubles(ctx, y, "yd")]
            + ["  free(td); free(yd);", "}"])


def emit_roi_align(ctx: KernelContext, node: Node) -> list[str]:
    """A batch index outside [-N, N) is an index error naming the region (ir/indices.py's rule)."""
    x, rois, batch, y = node.inputs[0], node.inputs[1], node.inputs[2], node.outputs[0]
    _require_float(ctx, node, x, rois)
    at = node.attrs
    n, c, h, w = (ctx.d(d) for d in x.shape)
    offset = 0.5 if at["coordinate_transformation_mode"] == "half_pixel" else 0.0
    return (["{"]
            + ["  " + s for s in _to_doubles(ctx, x, "xd") + _to_doubles(ctx, rois, "rd")]
            + [f"  int64_t* bd = (int64_t*)lep_scratch((size_t)({ctx.d(rois.shape[0])}) * sizeof(int64_t)), bad;",
               f"  for (int64_t i = 0; i < {ctx.d(rois.shape[0])}; ++i) bd[i] = (int64_t){ctx.ptr(batch)}[i];",
               "  " + _new_doubles(ctx, y, "yd"),
               f"  lep_roi_align(xd, rd, bd, yd, {n}, {c}, {h}, {w}, {ctx.d(rois.shape[0])}, {at['output_height']}, "
               f"{at['output_width']}, {int(at['mode'] == 'max')}, {at['sampling_ratio']}, "
               f"{float(at['spatial_scale'])!r}, {offset!r}, &bad);",
               f"  if (bad >= 0) lep_index_fault({ctx.index_fault()}, bad, bd[bad], 0, {n});",
               "  else"]
            + ["  " + s for s in _from_doubles(ctx, y, "yd")]
            + ["  free(xd); free(rd); free(bd); free(yd);", "}"])


IMAGE_EMITTERS = {"resize": emit_resize, "grid_sample": emit_grid_sample, "affine_grid": emit_affine_grid,
                  "roi_align": emit_roi_align}
