"""C bodies of the image ops: resize, grid_sample, affine_grid and roi_align.

They compute in double, as the reference interpreter does (leptonc/ir/ops/image.py), and round to the
result's type at the end; image.c holds the run-time helpers (resize's taps per axis, the samplers).
Sizes are C expressions of the symbol variables, so resize's taps are computed when the kernel runs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...ir import dims as D
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


def _store(value: str, dtype: DType) -> str:
    """A double as dtype the way the reference's astype does: integers are rounded half to even and clipped
    to the type's range first (resize's rule)."""
    if dtype.is_float:
        return C.convert(value, DType.f64, dtype) if dtype is not DType.f64 else value
    if dtype is not DType.bool:
        info = np.iinfo(dtype.numpy)
        value = f"lep_clip_round({value}, {float(info.min)!r}, {float(info.max)!r})"
    return elementwise_expr("cast", {}, [value], [DType.f64], dtype)


def _to_doubles(ctx: KernelContext, v, buf: str) -> list[str]:
    ctype(v.dtype, ctx.where)
    return [f"double* {buf} = (double*)lep_scratch((size_t)({cnumel(v.shape, ctx.where)}) * sizeof(double));",
            f"for (int64_t i = 0; i < {cnumel(v.shape, ctx.where)}; ++i) {buf}[i] = {_read(ctx.ptr(v), v.dtype)};"]


def _from_doubles(ctx: KernelContext, v, buf: str) -> list[str]:
    return [f"for (int64_t i = 0; i < {cnumel(v.shape, ctx.where)}; ++i) "
            f"{ctx.ptr(v)}[i] = {_store(f'{buf}[i]', v.dtype)};"]


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
             f"  const int64_t ish[] = {{{', '.join(ctx.d(d) for d in x.shape) or '0'}}};",
             f"  const int64_t osh[] = {{{', '.join(ctx.d(d) for d in y.shape) or '0'}}};",
             f"  const double sc[] = {{{_doubles(at['scales'])}}}, roi[] = {{{_doubles(roi)}}};",
             f"  const lep_resize_modes m = {{{modes}}};"]
            + ["  " + s for s in _to_doubles(ctx, x, "buf")]
            + [f"  double* r = lep_resize(buf, ish, osh, {rank}, sc, {'roi' if roi else 'NULL'}, &m);"]
            + ["  " + s for s in _from_doubles(ctx, y, "r")]
            + ["  if (r != buf) free(r);", "  free(buf);", "}"])


IMAGE_EMITTERS = {"resize": emit_resize}
