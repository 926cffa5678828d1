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

# the values of image.c's enums, in order
_MODES = ("nearest", "linear", "cubic")
_COORDS = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
           "tf_crop_and_resize")
_NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
_GRID_MODES = ("linear", "nearest", "cubic")
_GRID_PADDING = ("zeros", "border", "reflection")


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
    roi_ptr = "roi" if roi else "NULL"
    direct = ctx.ptr(y) if y.dtype is DType.f32 else "NULL"  # the last pass may write f32 results itself
    general = (["  " + s for s in _to_doubles(ctx, x, "buf")]
               + [f"  double* r = lep_resize(buf, ish, osh, {rank}, sc, {roi_ptr}, &m, {direct});",
                  "  if (r) {"]
               + ["    " + s for s in _from_doubles(ctx, y, "r", rounds=True)]
               + ["    if (r != buf) free(r);", "  }", "  free(buf);"])
    lines = ["{",
             "  " + _dims(ctx, "ish", x.shape),
             "  " + _dims(ctx, "osh", y.shape)]
    lines += _empty_axis_faults(ctx, [(d, f"ish[{a}] == 0 && osh[{a}] > 0", a) for a, d in enumerate(x.shape)])
    lines += [
             f"  const double sc[] = {{{_doubles(at['scales'])}}}, roi[] = {{{_doubles(roi)}}};",
             f"  const lep_resize_modes m = {{{modes}}};"]
    crops = at["coordinate_transformation_mode"] == "tf_crop_and_resize"
    if at["mode"] != "nearest" or at["exclude_outside"] or crops \
            or x.dtype in (DType.i64, DType.u64):  # the reference rounds these through double
        return lines + general + ["}"]
    return lines + _nearest_gather(ctx, x, y, roi_ptr) + ["  } else {"] + ["  " + s for s in general] + ["  }", "}"]


def _nearest_gather(ctx: KernelContext, x, y, roi_ptr: str) -> list[str]:
    """Nearest resize as a gather by per-axis position tables, in x's own type, when every element of x is
    finite (the reference multiplies the position not taken by 0, so an infinity or NaN there is NaN: the
    general path then runs). An output row that reads the same input row as the one before it is a copy of
    that row. Opens an `if` whose `else` the caller writes."""
    rank = x.type.rank
    lines = [f"  const int64_t NX = {cnumel(x.shape, ctx.where)};", "  int finite = 1;"]
    if x.dtype.is_float:
        lines += ["  #pragma omp simd reduction(&:finite)",
                  f"  for (int64_t i = 0; i < NX; ++i) finite &= ({_read(ctx.ptr(x), x.dtype)} - "
                  f"{_read(ctx.ptr(x), x.dtype)}) == 0.0;"]
    strides = D.contiguous_strides(x.shape)
    outer = max(rank - 2, 0)  # the axes of a block of rows (all but the last two)
    offset = " + ".join(f"tab[{a}][j{a}] * {ctx.d(strides[a])}" for a in range(outer)) or "0"
    decompose = " ".join(f"const int64_t j{a} = rem % osh[{a}]; rem /= osh[{a}];" for a in reversed(range(outer)))
    if rank >= 2:  # rows along the second to last axis
        rows, row_stride = f"osh[{rank - 2}]", f"tab[{rank - 2}][r] * {ctx.d(strides[rank - 2])}"
        same = f"r > 0 && tab[{rank - 2}][r] == tab[{rank - 2}][r - 1]"
    else:
        rows, row_stride, same = "1", "0", "0"
    t = ctype(x.dtype, ctx.where)
    return lines + [
        "  if (finite) {",
        f"    int64_t* tab[{rank}];",
        f"    lep_resize_nearest_tables(ish, osh, {rank}, sc, {roi_ptr}, &m, tab);",
        f"    const int64_t L = osh[{rank - 1}], R = {rows}, blocks = {cnumel(y.shape[:outer], ctx.where)};",
        "    #pragma omp parallel for schedule(static) if (blocks * R * L > 65536)",
        "    for (int64_t b = 0; b < blocks; ++b) {",
        f"      int64_t rem = b; {decompose} (void)rem;",
        f"      const {t}* xb = {ctx.ptr(x)} + {offset};",
        f"      {t}* yb = {ctx.ptr(y)} + b * R * L;",
        "      for (int64_t r = 0; r < R; ++r) {",
        f"        if ({same}) {{ memcpy(yb + r * L, yb + (r - 1) * L, (size_t)L * sizeof({t})); continue; }}",
        f"        const {t}* xr = xb + {row_stride};",
        f"        for (int64_t j = 0; j < L; ++j) yb[r * L + j] = xr[tab[{rank - 1}][j]];",
        "      }",
        "    }",
        f"    for (int a = 0; a < {rank}; ++a) free(tab[a]);"]


def _empty_axis_faults(ctx: KernelContext, checks: list[tuple[object, str, int]]) -> list[str]:
    """An index error for each (dim, condition in C, dim number) whose dim has a run-time size and whose
    condition holds when the kernel runs: the reference's read from an empty axis fails."""
    return [f"  if ({cond}) {{ lep_index_fault({ctx.index_fault()}, 0, 0, {a}, 0); return; }}"
            for d, cond, a in checks if not isinstance(d, int)]


def _require_float(ctx: KernelContext, node: Node, *values) -> None:
    for v in values:
        if not v.dtype.is_float:
            raise UnsupportedError(f"{ctx.where}: {node.op} over {v.dtype} is not supported by the cpu target "
                                   "(floating-point types are)")


def emit_grid_sample(ctx: KernelContext, node: Node) -> list[str]:
    """Reads x and writes y in their own type (f32 or f64), summing in double; the grid is read as double."""
    x, grid, y = node.inputs[0], node.inputs[1], node.outputs[0]
    _require_float(ctx, node, x, grid)
    if x.dtype not in (DType.f32, DType.f64):
        raise UnsupportedError(f"{ctx.where}: grid_sample over {x.dtype} is not supported by the cpu target "
                               "(f32 and f64 are)")
    nsp = x.type.rank - 2
    if not 1 <= nsp <= 3:
        raise UnsupportedError(f"{ctx.where}: grid_sample over {nsp} spatial dims is not supported by the cpu "
                               "target (1 to 3 are)")
    at = node.attrs
    mode, padding = _GRID_MODES.index(at["mode"]), _GRID_PADDING.index(at["padding_mode"])
    points = f"{ctx.d(x.shape[0])} * {ctx.d(x.shape[1])} * {cnumel(y.shape[2:], ctx.where)}"
    return (["{", "  " + _dims(ctx, "isp", x.shape[2:])]
            + _empty_axis_faults(ctx, [(d, f"isp[{i}] == 0 && {points} > 0", 2 + i)
                                       for i, d in enumerate(x.shape[2:])])
            + ["  " + s for s in _to_doubles(ctx, grid, "gd")]
            + [f"  lep_grid_sample_{x.dtype.value}({ctx.ptr(x)}, gd, {ctx.ptr(y)}, {ctx.d(x.shape[0])}, "
               f"{ctx.d(x.shape[1])}, {nsp}, isp, {cnumel(y.shape[2:], ctx.where)}, {mode}, {padding}, "
               f"{int(at['align_corners'])});",
               "  free(gd);", "}"])


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
    regions = f"{ctx.d(rois.shape[0])} * {c}"
    return (["{"]
            + _empty_axis_faults(ctx, [(x.shape[2], f"{h} == 0 && {regions} > 0", 2),
                                       (x.shape[3], f"{w} == 0 && {regions} > 0", 3)])
            + ["  " + s for s in _to_doubles(ctx, x, "xd") + _to_doubles(ctx, rois, "rd")]
            + [f"  int64_t* bd = (int64_t*)lep_scratch((size_t)({ctx.d(rois.shape[0])}) * sizeof(int64_t)), bad;",
               f"  for (int64_t i = 0; i < {ctx.d(rois.shape[0])}; ++i) bd[i] = (int64_t){ctx.ptr(batch)}[i];",
               "  " + _new_doubles(ctx, y, "yd"),
               f"  lep_roi_align(xd, rd, bd, yd, {n}, {c}, {h}, {w}, {ctx.d(rois.shape[0])}, {at['output_height']}, "
               f"{at['output_width']}, {int(at['mode'] == 'max')}, {at['sampling_ratio']}, "
               f"{float(at['spatial_scale'])!r}, {offset!r}, &bad);",
               f"  if (bad >= 0) lep_index_fault({ctx.index_fault()}, bad, bd[bad], 0, {n});",
               "  else {"]
            + ["    " + s for s in _from_doubles(ctx, y, "yd")]
            + ["  }", "  free(xd); free(rd); free(bd); free(yd);", "}"])


IMAGE_EMITTERS = {"resize": emit_resize, "grid_sample": emit_grid_sample, "affine_grid": emit_affine_grid,
                  "roi_align": emit_roi_align}
