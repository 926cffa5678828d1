"""fold-batchnorm: fold a per-channel affine that follows a conv or matmul into its weights.

Frontends decompose inference batchnorm into elementwise ops with constant,
per-channel operands: ((y - mean) / sqrt(var + eps)) * gamma + beta, which
fold reduces to y * scale + shift. This pass follows such a chain of
add/sub/mul/div by per-output-channel constants after

- conv(x, W[, b]):  becomes conv(x, W * scale, b * scale + shift) (channels-first or channels-last);
- matmul(x, W) with a constant 2-D W: becomes matmul(x, W * scale) + shift
  (the add stays, one op instead of the chain).

Each link of the chain must be the only user of the value before it (else
the other users would see changed values). Values change by rounding only.
"""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node, Value
from .registry import register_pass
from .rewrite import replace_result


@register_pass("fold-batchnorm", "fold per-channel scale and shift (batchnorm) after conv or matmul into the weights")
def fold_batchnorm(graph: Graph) -> bool:
    changed = False
    for node in list(graph.nodes):
        if node.graph is not graph or node.op not in ("conv", "matmul"):
            continue
        changed |= _fold(graph, node)
    return changed


def _channel_axis(node: Node) -> int | None:
    """Where output channels are in the result: 1 for conv (the last axis channels-last), the last axis for a
    matmul by a constant matrix."""
    if node.op == "conv":
        return node.output.type.rank - 1 if node.attrs["channels_last"] else 1
    w = node.inputs[1]
    if node.graph.constant_of(w) is not None and w.type.rank == 2 and node.output.type.rank >= 2:
        return node.output.type.rank - 1
    return None


def _per_channel(graph: Graph, v: Value, like: Value, axis: int) -> np.ndarray | None:
    """v as a vector over the channels of `like` when it is a constant that varies along `axis` only."""
    arr = graph.constant_of(v)
    out = like.type
    if arr is None or arr.ndim > out.rank or arr.dtype != out.dtype.numpy or not isinstance(out.shape[axis], int):
        return None
    full = arr.reshape((1,) * (out.rank - arr.ndim) + arr.shape)
    if any(n != 1 for i, n in enumerate(full.shape) if i != axis) or full.shape[axis] not in (1, out.shape[axis]):
        return None
    return np.broadcast_to(full.reshape(-1), (out.shape[axis],)).astype(np.float64)


def _affine_chain(graph: Graph, start: Value, axis: int):
    """Follow single-use affine ops from `start`; return (last value, scale, shift) with last = start*scale+shift."""
    n = start.type.shape[axis]
    scale, shift = np.ones(n), np.zeros(n)
    v, length = start, 0
    outputs = {id(o) for o in graph.outputs}
    while len(v.uses) == 1 and id(v) not in outputs:
        user, index = v.uses[0]
        if user.op not in ("add", "sub", "mul", "div") or user.output.type != start.type:
            break
        other = user.inputs[1 - index]
        c = _per_channel(graph, other, start, axis)
        if c is None or (user.op == "div" and (index != 0 or np.any(c == 0))):
            break
        if user.op == "add":
            shift = shift + c
        elif user.op == "sub":
            scale, shift = (scale, shift - c) if index == 0 else (-scale, c - shift)
        elif user.op == "mul":
            scale, shift = scale * c, shift * c
        else:
            scale, shift = scale / c, shift / c
        v, length = user.output, length + 1
    return v, scale, shift, length


def _fold(graph: Graph, node: Node) -> bool:
    axis = _channel_axis(node)
    if axis is None or not node.output.dtype.is_float:
        return False
    w_value = node.inputs[1]
    w = graph.constant_of(w_value)
    if w is None:
        return False
    last, scale, shift, length = _affine_chain(graph, node.output, axis)
    if length == 0 or (node.op == "matmul" and not np.any(scale != 1) and length == 1):
        return False  # nothing to fold (a lone bias add after matmul is already one op)
    dtype = w.dtype
    if node.op == "conv":
        out_axis = w.ndim - 1 if node.attrs["channels_last"] else 0  # weights kernel..., C/group, O or O, C/group, ...
        w_new = (w * np.expand_dims(scale, tuple(a for a in range(w.ndim) if a != out_axis))).astype(dtype)
        bias = graph.constant_of(node.inputs[2]) if len(node.inputs) == 3 else np.zeros(w.shape[out_axis], dtype)
        if bias is None:
            return False
        b_new = (bias * scale + shift).astype(dtype)
        operands = [node.inputs[0], graph.add_constant(w_new, _name(w_value), before=node),
                    graph.add_constant(b_new, _name(w_value, "bias"), before=node)]
        new = graph.add_node("conv", operands, node.attrs, names=[last.name], before=node).output
    else:
        w_new = (w * scale.reshape(1, -1)).astype(dtype)
        w_const = graph.add_constant(w_new, _name(w_value), before=node)
        new = graph.add("matmul", node.inputs[0], w_const, name=node.output.name, before=node)
        if np.any(shift != 0):
            b_const = graph.add_constant(shift.astype(dtype), _name(w_value, "bias"), before=node)
            new = graph.add("add", new, b_const, name=last.name, before=node)
    replace_result(graph, last, new)  # erases the chain and the old node with it
    return True


def _name(w: Value, what: str = "weight") -> str:
    """Names for the folded constants after the weight's: conv1.weight -> conv1.weight.folded, conv1.bias.folded."""
    base = w.producer.attrs["name"].removesuffix(".weight") if w.producer.op == "const" else "folded"
    return f"{base}.{what}.folded"

