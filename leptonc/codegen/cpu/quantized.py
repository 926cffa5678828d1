"""C kernels of the quantized matmuls (matmul_wq, matmul_w8a8): the emitters and their C helpers.

The helpers live in quantized.c, which a model's source includes when one of
these ops is in it (`uses_quantized`). The int8 and packed int4 weights stay
narrow in memory: the kernels widen them in registers (see quantized.c).
"""
from __future__ import annotations

from pathlib import Path

from ...ir import dims as D
from ...ir.dtypes import DType
from ...ir.graph import Graph, Node
from .cexpr import UnsupportedError, cnumel
from .kernels import KernelContext

QUANTIZED_SOURCE = Path(__file__).with_name("quantized.c").read_text()


def _dims(ctx: KernelContext, node: Node) -> list[str]:
    x, w = node.inputs[0], node.inputs[1]
    if x.dtype is not DType.f32:
        raise UnsupportedError(f"{ctx.where}: {node.op} with {x.dtype} activations is not supported by the cpu "
                               "target (f32 is)")
    return [f"const int64_t M = {cnumel(x.shape[:-1], ctx.where)}, N = {ctx.d(w.shape[0])}, "
            f"K = {ctx.d(w.shape[1])};"]


def emit_matmul_wq(ctx: KernelContext, node: Node) -> list[str]:
    x, w, scale = node.inputs[:3]
    if len(node.inputs) > 3:
        raise UnsupportedError(f"{ctx.where}: matmul_wq with a zero point is not supported by the cpu target "
                               "(symmetric weights are)")
    if w.dtype not in (DType.i8, DType.i4):
        raise UnsupportedError(f"{ctx.where}: matmul_wq with {w.dtype} weights is not supported by the cpu "
                               "target (i8 and i4 are)")
    group = node.attrs["group"]
    lines = _dims(ctx, node)
    args = f"{ctx.ptr(x)}, {ctx.ptr(w)}, {ctx.ptr(scale)}, M, N, K, {group or 'K'}, {ctx.ptr(node.output)}"
    if w.dtype is DType.i8:
        return lines + [f"lep_matmul_wq8({args});"]
    if group % 2:
        raise UnsupportedError(f"{ctx.where}: matmul_wq with int4 weights in groups of an odd size ({group}) is "
                               "not supported by the cpu target")
    pairs = D.floordiv(D.add(w.shape[1], 1), 2)
    ctx.scratch_bytes = D.mul(D.mul(D.product(x.shape[:-1]), pairs), 8)
    return lines + [f"lep_matmul_wq4({args}, scratch);"]


def emit_matmul_w8a8(ctx: KernelContext, node: Node) -> list[str]:
    x, w, scale = node.inputs
    rows = D.product(x.shape[:-1])
    ctx.scratch_bytes = D.add(D.mul(rows, w.shape[1]), D.mul(rows, 4))
    lines = _dims(ctx, node)
    lines.append(f"lep_matmul_w8a8({ctx.ptr(x)}, {ctx.ptr(w)}, {ctx.ptr(scale)}, M, N, K, {ctx.ptr(node.output)}, "
                 "scratch);")
    return lines


QUANTIZED_EMITTERS = {"matmul_wq": emit_matmul_wq, "matmul_w8a8": emit_matmul_w8a8}


def uses_quantized(graph: Graph) -> bool:
    return any(n.op in QUANTIZED_EMITTERS for n in graph.nodes)
