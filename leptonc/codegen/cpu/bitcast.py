"""The C body of bitcast: the operand's bytes copied as they are (the result reads them as its own dtype)."""
from __future__ import annotations

from ...ir.graph import Node
from .cexpr import c_itemsize, cnumel
from .kernels import KernelContext


def emit_bitcast(ctx: KernelContext, node: Node) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    return [f"memcpy({ctx.ptr(y)}, {ctx.ptr(x)}, (size_t)({cnumel(y.shape, ctx.where)}) * {c_itemsize(y.dtype)});"]


BITCAST_EMITTERS = {"bitcast": emit_bitcast}
