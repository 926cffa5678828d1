"""canonicalize: local rewrites that simplify without changing values.

- identities: x*1, x+0, x-0, x/1, x**1, x&true, x|false, neg(neg x), not(not x);
- dropout outside training (or with ratio 0) is its input;
- ops that leave their operand as it is: a cast to its own dtype, reshape or
  broadcast_to to its own shape, a slice that keeps everything, pad by zeros,
  tile by ones, concat of one operand, a reduction over no axes, identity transposes;
- chains: transpose of transpose (composed), reshape of reshape, broadcast_to of broadcast_to;
  squeeze and unsqueeze become reshapes, so that they join reshape chains;
- transposes around matmul: (A^T B)^T = B^T A, so transpose(matmul(transpose a, b))
  becomes matmul(transpose b, a) and the transposes that meet cancel (the IR's
  matmul has no transpose flags, so this is where transposes fold into it);
- zero padding of the spatial dims before a conv goes into the conv's pads;
- commutative ops put a constant operand second, so that cse sees one form.

Each rule is a pattern of the set `pattern_set("canonicalize")` (rewrite.py), which plugins may extend.
A rewrite is made only when the replacement has exactly the old result's type.
Values are kept exactly, with one exception that every ML compiler shares:
x+0 becomes x, so where x is -0.0 the result is -0.0 instead of +0.0.
"""
from __future__ import annotations

import numpy as np

from ..ir import dims as D
from ..ir.graph import Graph, Node, Value
from ..ir.ops.shape import BIG
from .registry import register_pass
from .rewrite import pattern_set

CANONICAL = pattern_set("canonicalize")
rule = CANONICAL.pattern


@register_pass("canonicalize", "simplify identities (x*1, x+0, no-op casts/reshapes/slices), chains of "
                               "transposes and reshapes, transposes around matmul")
def canonicalize(graph: Graph) -> bool:
    return CANONICAL.apply(graph)


def _same_type(node: Node, v: Value) -> Value | None:
    return v if v.type == node.output.type else None


def _build(graph: Graph, node: Node, op: str, inputs, **attrs) -> Value | None:
    """A new node before `node` computing its result another way; None (and nothing added) if the type differs."""
    try:
        new = graph.add_node(op, inputs, attrs, names=[node.output.name], before=node).output
    except Exception:  # noqa: BLE001  the rewrite does not apply to these operands
        return None
    if new.type != node.output.type:
        graph.erase(new.producer)
        return None
    return new


def _splat(graph: Graph, v: Value, value) -> bool:
    """v is a constant whose every element equals `value`."""
    arr = graph.constant_of(v)
    return arr is not None and arr.size > 0 and bool(np.all(arr == np.asarray(value).astype(arr.dtype)))


_IDENTITY_RIGHT = {"add": 0, "sub": 0, "mul": 1, "div": 1, "pow": 1, "and": True, "or": False,
                   "bitwise_or": 0, "bitwise_xor": 0}
_IDENTITY_LEFT = {"add": 0, "mul": 1, "and": True, "or": False, "bitwise_or": 0, "bitwise_xor": 0}


@rule(*_IDENTITY_RIGHT)
def _binary_identity(graph: Graph, node: Node) -> Value | None:
    a, b = node.inputs
    if _splat(graph, b, _IDENTITY_RIGHT[node.op]):
        return _same_type(node, a)
    if node.op in _IDENTITY_LEFT and _splat(graph, a, _IDENTITY_LEFT[node.op]):
        return _same_type(node, b)
    return None


@rule(trait="commutative")
def _constant_second(graph: Graph, node: Node) -> Value | None:
    a, b = node.inputs
    if graph.constant_of(a) is not None and graph.constant_of(b) is None:
        return _build(graph, node, node.op, [b, a], **node.attrs)
    return None


@rule("neg", "not")
def _involution(graph: Graph, node: Node) -> Value | None:
    inner = node.inputs[0].producer
    if inner is not None and inner.op == node.op:
        return _same_type(node, inner.inputs[0])
    return None


@rule("cast")
def _cast_to_same(graph: Graph, node: Node) -> Value | None:
    return _same_type(node, node.inputs[0]) if node.attrs["dtype"] is node.inputs[0].dtype else None


@rule("reshape", "broadcast_to", "pad", "tile", "concat", "slice", "reduce_sum", "reduce_mean", "reduce_prod",
      "reduce_max", "reduce_min", "transpose")
def _no_op(graph: Graph, node: Node) -> Value | None:
    """Ops that return their (only varying) operand unchanged for these attributes."""
    x, a = node.inputs[0], node.attrs
    keeps = {
        "reshape": lambda: True,
        "broadcast_to": lambda: True,
        "pad": lambda: not any(a["pads"]),
        "tile": lambda: all(r == 1 for r in a["repeats"]),
        "concat": lambda: len(node.inputs) == 1,
        "slice": lambda: _slice_keeps_all(x, a),
        "transpose": lambda: list(a["perm"]) == list(range(x.type.rank)),
    }.get(node.op, lambda: not a["axes"])  # a reduction over no axes
    return _same_type(node, x) if keeps() else None


def _slice_keeps_all(x: Value, a: dict) -> bool:
    for start, end, axis, step in zip(a["starts"], a["ends"], a["axes"], a["steps"]):
        dim = x.shape[axis]
        if step != 1 or start != 0 or not (end >= BIG or (isinstance(dim, int) and end >= dim)):
            return False
    return True


@rule("squeeze", "unsqueeze")
def _as_reshape(graph: Graph, node: Node) -> Value | None:
    """squeeze and unsqueeze are reshapes; one form lets reshape chains collapse."""
    shape = node.output.shape
    return None if D.UNKNOWN in shape else _build(graph, node, "reshape", [node.inputs[0]], shape=shape)


@rule("reshape", "broadcast_to")
def _chain(graph: Graph, node: Node) -> Value | None:
    """reshape(reshape(x)) and broadcast_to(broadcast_to(x)): the outer op alone."""
    inner = node.inputs[0].producer
    if inner is not None and inner.op == node.op:
        return _build(graph, node, node.op, [inner.inputs[0]], **node.attrs)
    return None


@rule("transpose")
def _transpose_of_transpose(graph: Graph, node: Node) -> Value | None:
    inner = node.inputs[0].producer
    if inner is None or inner.op != "transpose":
        return None
    perm = [inner.attrs["perm"][i] for i in node.attrs["perm"]]
    if perm == list(range(len(perm))):
        return _same_type(node, inner.inputs[0])
    return _build(graph, node, "transpose", [inner.inputs[0]], perm=perm)


@rule("conv")
def _pad_into_conv(graph: Graph, node: Node) -> Value | None:
    """conv(pad(x) with zeros on spatial dims) is conv(x) with the padding in its own pads attribute."""
    pad = node.inputs[0].producer
    if pad is None or pad.op != "pad" or pad.attrs["mode"] != "constant" or pad.attrs["value"] != 0.0:
        return None
    rank = pad.inputs[0].type.rank
    extra = pad.attrs["pads"]
    spatial = range(1, rank - 1) if node.attrs["channels_last"] else range(2, rank)
    if any(p < 0 for p in extra) or any(extra[i] or extra[i + rank] for i in range(rank) if i not in spatial):
        return None
    nsp = rank - 2
    own = node.attrs["pads"] or (0,) * (2 * nsp)
    pads = [own[i] + extra[a] for i, a in enumerate(spatial)] + \
        [own[nsp + i] + extra[rank + a] for i, a in enumerate(spatial)]
    return _build(graph, node, "conv", [pad.inputs[0], *node.inputs[1:]], **{**node.attrs, "pads": pads})


@rule("dropout")
def _inference_dropout(graph: Graph, node: Node) -> list[Value] | None:
    """dropout that is not training (or drops nothing) is its input, with a mask of all true."""
    x, ratio, training = node.inputs
    if not (_splat(graph, training, False) or _splat(graph, ratio, 0.0)):
        return None
    mask = node.outputs[1]
    if not mask.uses and not any(mask is o for o in graph.outputs):
        return [x, mask]  # the mask is unused: nothing replaces it
    ones = graph.add("full", shape=mask.shape, value=1.0, dtype=mask.dtype, name=mask.name, before=node)
    return [x, ones]


def _swaps_last_two(node: Node | None) -> bool:
    if node is None or node.op != "transpose":
        return False
    perm = list(node.attrs["perm"])
    r = len(perm)
    return r >= 2 and perm == list(range(r - 2)) + [r - 1, r - 2]


@rule("transpose")
def _transpose_of_matmul(graph: Graph, node: Node) -> Value | None:
    """transpose(matmul(a, b)) = matmul(b^T, a^T), made when a transpose of a or b then cancels."""
    mm = node.inputs[0].producer
    if not _swaps_last_two(node) or mm is None or mm.op != "matmul" or len(mm.output.uses) != 1:
        return None
    a, b = mm.inputs
    rank = node.output.type.rank
    if a.type.rank != rank or b.type.rank != rank:
        return None
    if not (_swaps_last_two(a.producer) or _swaps_last_two(b.producer)):
        return None
    perm = list(node.attrs["perm"])
    bt = graph.add("transpose", b, perm=perm, before=node)
    at = graph.add("transpose", a, perm=perm, before=node)
    new = _build(graph, node, "matmul", [bt, at])
    if new is None:
        graph.erase(at.producer)
        graph.erase(bt.producer)
    return new

