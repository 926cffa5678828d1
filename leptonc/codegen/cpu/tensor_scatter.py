"""The C body of tensor_scatter (ONNX TensorScatter, a KV cache's update): the cache copied, then each batch
entry's update rows written along the axis from that entry's write index, in step order (so that with
mode "circular", which wraps positions around the axis, a later step overwrites an earlier one, as the
reference's put_along_axis does). In mode "linear" a position outside the axis is an index error (the
first in (entry, step) order), the reference's IndexRangeError."""
from __future__ import annotations

from ...ir.graph import Node
from .cexpr import c_itemsize, cnumel
from .kernels import KernelContext


def emit_tensor_scatter(ctx: KernelContext, node: Node) -> list[str]:
    cache, upd, idx, y = node.inputs[0], node.inputs[1], node.inputs[2], node.outputs[0]
    axis = node.attrs["axis"] % cache.type.rank
    es = c_itemsize(y.dtype)
    if node.attrs["mode"] == "circular":
        place = ["    if (S == 0) continue;", "    p = ((p % S) + S) % S;"]
    else:
        place = [f"    if (p < 0 || p >= S) {{ lep_index_fault({ctx.index_fault()}, b * T + t, p, {axis}, S); "
                 "continue; }"]
    return [f"const int64_t NB = {ctx.d(cache.shape[0])}, OUTER = {cnumel(cache.shape[1:axis], ctx.where)}, "
            f"S = {ctx.d(cache.shape[axis])}, T = {ctx.d(upd.shape[axis])}, "
            f"INNER = {cnumel(cache.shape[axis + 1:], ctx.where)};",
            f"char* out = (char*){ctx.ptr(y)};",
            f"const char* src = (const char*){ctx.ptr(upd)};",
            f"if ((const void*)out != (const void*){ctx.ptr(cache)}) "
            f"memcpy(out, {ctx.ptr(cache)}, (size_t)(NB * OUTER * S * INNER) * {es});",
            "#pragma omp parallel for schedule(static) if (NB * OUTER * T * INNER > 65536)",
            "for (int64_t b = 0; b < NB; ++b) {",
            "  for (int64_t t = 0; t < T; ++t) {",
            f"    int64_t p = (int64_t){ctx.ptr(idx)}[b] + t;",
            *place,
            "    for (int64_t o = 0; o < OUTER; ++o)",
            f"      memcpy(out + ((b * OUTER + o) * S + p) * INNER * {es}, "
            f"src + ((b * OUTER + o) * T + t) * INNER * {es}, (size_t)INNER * {es});",
            "  }",
            "}"]


TENSOR_SCATTER_EMITTERS = {"tensor_scatter": emit_tensor_scatter}
