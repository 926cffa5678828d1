"""C bodies of the pooling ops that conv.py's channels-last kernels do not cover: max_pool and avg_pool
over 3 or more spatial dims or over integers other than i8 and u8, lp_pool, max_pool_with_indices and
max_unpool, over any number of spatial dims.

A window position (output position o times the stride, plus k times the dilation, minus the begin pad)
outside the input is padding, as in the reference interpreter (leptonc/ir/ops/nn.py): zeros for lp_pool, the
lowest value for max_pool_with_indices; the end padding that ceil_mode adds is padding too.
"""
from __future__ import annotations

import numpy as np

from ...ir.dtypes import DType
from ...ir.graph import Node
from .cexpr import C, UnsupportedError, cnumel, ctype, literal
from .conv import emit_pool as emit_pool_planes
from .kernels import KernelContext


def _window_loop(ctx: KernelContext, node: Node, start: list[str], step: list[str], finish: list[str]) -> list[str]:
    """For each output element `t` (`nc` its (batch, channel) plane): `start`, then `step` for each window
    position `k` (flat, row-major over the kernel), which sees `pos[i]`, the position's coordinate along
    spatial dim i, `inside`, whether it lies in the input, `padded`, whether it lies in the input or its pads
    (not in the end padding ceil_mode adds), and `at`, its flat index in x; then `finish`. The layout is
    (N, C, spatial...), or (N, spatial..., C) for a node with channels_last."""
    x, y = node.inputs[0], node.outputs[0]
    nsp = x.type.rank - 2
    at = node.attrs
    last = at.get("channels_last", False)
    xsp, ysp = (x.shape[1:-1], y.shape[1:-1]) if last else (x.shape[2:], y.shape[2:])
    kernel = at["kernel"]
    strides = at["strides"] or (1,) * nsp
    pads = at["pads"] or (0,) * (2 * nsp)
    dilations = at["dilations"] or (1,) * nsp
    coords = []
    for i in reversed(range(nsp)):
        size = ctx.d(xsp[i])
        coords += [f"  {{ const int64_t o = ro % {ctx.d(ysp[i])}, kk = rk % {kernel[i]}; "
                   f"ro /= {ctx.d(ysp[i])}; rk /= {kernel[i]};",
                   f"    pos[{i}] = o * {strides[i]} + kk * {dilations[i]} - {pads[i]};",
                   f"    inside = inside && pos[{i}] >= 0 && pos[{i}] < {size};",
                   f"    padded = padded && pos[{i}] >= -{pads[i]} && pos[{i}] < {size} + {pads[i + nsp]}; }}"]
    spatial = "0"
    for i in range(nsp):
        spatial = f"({spatial}) * {ctx.d(xsp[i])} + pos[{i}]"
    if last:
        plane = ["const int64_t nc = t / (P * C) * C + t % C, op = t / C % P;"]
        address = f"(nc / C * S + {spatial}) * C + nc % C"
    else:
        plane = ["const int64_t nc = t / P, op = t % P;"]
        address = f"nc * S + {spatial}"
    return ([f"const int64_t total = {cnumel(y.shape, ctx.where)}, P = {cnumel(ysp, ctx.where)}, "
             f"S = {cnumel(xsp, ctx.where)}, C = {ctx.d(x.shape[-1] if last else x.shape[1])}, "
             f"KW = {int(np.prod(kernel))};",
             "#pragma omp parallel for schedule(static) if (total * KW > 65536)",
             "for (int64_t t = 0; t < total; ++t) {"]
            + ["  " + s for s in plane + start]
            + ["  for (int64_t k = 0; k < KW; ++k) {",
               f"    int64_t ro = op, rk = k, pos[{nsp}]; int inside = 1, padded = 1;"]
            + ["  " + s for s in coords]
            + [f"    const int64_t at = {address}; (void)at; (void)padded;"]
            + ["    " + s for s in step]
            + ["  }"]
            + ["  " + s for s in finish]
            + ["}"])


def _require_float(ctx: KernelContext, node: Node) -> None:
    if not node.inputs[0].dtype.is_float:
        raise UnsupportedError(f"{ctx.where}: {node.op} over {node.inputs[0].dtype} is not supported by the cpu "
                               "target (floating-point types are)")


def emit_lp_pool(ctx: KernelContext, node: Node) -> list[str]:
    """(sum over the window of |x|^p) ^ (1 / p) in double; padding adds |0|^p."""
    _require_float(ctx, node)
    x, y = node.inputs[0], node.outputs[0]
    p = float(node.attrs["p"])
    power = {2.0: "v * v", 1.0: "v"}.get(p, f"pow(v, {p!r})")
    root = {2.0: "sqrt(s)", 1.0: "s"}.get(p, f"pow(s, {1.0 / p!r})")
    read = C.convert(f"{ctx.ptr(x)}[at]", x.dtype, DType.f64) if x.dtype is not DType.f64 else f"{ctx.ptr(x)}[at]"
    step = [f"const double v = inside ? fabs({read}) : 0.0;", f"s = s + {power};"]
    finish = [f"{ctx.ptr(y)}[t] = {C.convert(root, DType.f64, y.dtype) if y.dtype is not DType.f64 else root};"]
    return _window_loop(ctx, node, ["double s = 0.0;"], step, finish)


def emit_max_pool_with_indices(ctx: KernelContext, node: Node) -> list[str]:
    """The first maximum of each window (NaN wins, as numpy's argmax) and its flat index into x, with the
    spatial coordinates row-major, or column-major for storage_order 1."""
    x, (y, yi) = node.inputs[0], node.outputs
    t = ctype(x.dtype, ctx.where)
    if x.dtype is DType.bool:
        raise UnsupportedError(f"{ctx.where}: max_pool_with_indices over bool is not supported by the cpu target")
    nsp = x.type.rank - 2
    low = literal(-np.inf if x.dtype.is_float else np.iinfo(x.dtype.numpy).min, x.dtype)
    if x.dtype.is_float:
        better = "(!(best != best) && (v > best || v != v))"
    else:
        better = "(v > best)"
    if node.attrs["storage_order"]:
        index, mul = "0", "1"
        for i in range(nsp):
            index = f"{index} + pos[{i}] * {mul}"
            mul = f"{mul} * {ctx.d(x.shape[2 + i])}"
    else:
        index = "0"
        for i in range(nsp):
            index = f"({index}) * {ctx.d(x.shape[2 + i])} + pos[{i}]"
    step = [f"const {t} v = inside ? {ctx.ptr(x)}[at] : {low};",
            f"if (k == 0 || {better}) {{ best = v; where = nc * S + {index}; }}"]
    finish = [f"{ctx.ptr(y)}[t] = best;" if id(y) in ctx.names else "",
              f"{ctx.ptr(yi)}[t] = where;" if id(yi) in ctx.names else ""]
    return _window_loop(ctx, node, [f"{t} best = {low}; int64_t where = 0;"], step, finish)


def emit_max_unpool(ctx: KernelContext, node: Node) -> list[str]:
    """Zeros, then each x element written at its flat index, in order (a repeated index keeps the last); an
    index outside [-n, n) of the n result elements is an index error (ir/indices.py's rule)."""
    x, idx, y = node.inputs[0], node.inputs[1], node.outputs[0]
    ctype(y.dtype, ctx.where)
    return [f"const int64_t NX = {cnumel(x.shape, ctx.where)}, NY = {cnumel(y.shape, ctx.where)};",
            f"for (int64_t i = 0; i < NY; ++i) {ctx.ptr(y)}[i] = {literal(0, y.dtype)};",
            "for (int64_t i = 0; i < NX; ++i) {",
            f"  const int64_t v = (int64_t){ctx.ptr(idx)}[i], j = v < 0 ? v + NY : v;",
            f"  if (j < 0 || j >= NY) {{ lep_index_fault({ctx.index_fault()}, i, v, 0, NY); break; }}",
            f"  {ctx.ptr(y)}[j] = {ctx.ptr(x)}[i];",
            "}"]


def emit_pool(ctx: KernelContext, node: Node) -> list[str]:
    """max_pool and avg_pool: conv.py's vectorized kernels over 1 and 2 spatial dims of floats (and i8, u8 for
    max); here, over more dims and the other integer types. max propagates NaN and padding never wins; avg sums
    in double and divides by the count of input positions, or of input and pad positions with
    count_include_pad."""
    dtype = node.inputs[0].dtype
    if node.inputs[0].type.rank <= 4 and (dtype.is_float or dtype in (DType.i8, DType.u8)):
        return emit_pool_planes(ctx, node)
    x, y = node.inputs[0], node.outputs[0]
    t = ctype(x.dtype, ctx.where)
    if node.op == "max_pool":
        if x.dtype is DType.bool:
            raise UnsupportedError(f"{ctx.where}: max_pool over bool is not supported by the cpu target")
        low = literal(-np.inf if x.dtype.is_float else np.iinfo(x.dtype.numpy).min, x.dtype)
        step = [f"const {t} v = inside ? {ctx.ptr(x)}[at] : {low};",
                "if (v > best || v != v) best = v;" if x.dtype.is_float else "if (v > best) best = v;"]
        return _window_loop(ctx, node, [f"{t} best = {low};"], step, [f"{ctx.ptr(y)}[t] = best;"])
    _require_float(ctx, node)
    read = C.convert(f"{ctx.ptr(x)}[at]", x.dtype, DType.f64) if x.dtype is not DType.f64 else f"{ctx.ptr(x)}[at]"
    count = "cnt_pad" if node.attrs["count_include_pad"] else "cnt"
    mean = f"s / (double){count}"
    step = [f"if (inside) {{ s = s + {read}; ++cnt; }}", "cnt_pad += padded;"]
    finish = [f"{ctx.ptr(y)}[t] = {C.convert(mean, DType.f64, y.dtype) if y.dtype is not DType.f64 else mean};"]
    return _window_loop(ctx, node, ["double s = 0.0; int64_t cnt = 0, cnt_pad = 0;"], step, finish)


POOLING_EMITTERS = {"max_pool": emit_pool, "avg_pool": emit_pool, "lp_pool": emit_lp_pool,
                    "max_pool_with_indices": emit_max_pool_with_indices, "max_unpool": emit_max_unpool}
