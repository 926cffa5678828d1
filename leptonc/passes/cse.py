"""cse: common-subexpression elimination.

Two pure nodes with the same op, attributes and operands (in any order for a
commutative op) compute the same thing; the later one's results are replaced
by the earlier one's. Constants (up to MAX_CONST_ELEMENTS elements, so that
weights are not hashed) with equal dtype, shape and bytes are merged the same way.
"""
from __future__ import annotations

import hashlib

from ..ir.graph import Graph, Node
from ..ir.printer import format_attr
from ..ir.registry import get_op
from .registry import register_pass
from .rewrite import replace_result

MAX_CONST_ELEMENTS = 1 << 16


@register_pass("cse", "merge nodes that compute the same thing (same op, attributes, operands), and equal constants")
def cse(graph: Graph) -> bool:
    seen: dict = {}
    changed = False
    for node in list(graph.nodes):
        opdef = get_op(node.op)
        if not opdef.has("pure"):
            continue
        key = _key(graph, node, opdef.has("commutative"))
        earlier = seen.get(key)
        if earlier is None:
            seen[key] = node
            continue
        for old, new in zip(list(node.outputs), earlier.outputs):
            replace_result(graph, old, new)
        changed = True
    return changed


def _key(graph: Graph, node: Node, commutative: bool) -> tuple:
    types = tuple(str(v.type) for v in node.outputs)
    if node.op == "const":
        arr = graph.constants[node.attrs["name"]]
        if arr.size > MAX_CONST_ELEMENTS:
            return ("const", node.attrs["name"])
        return ("const", types, hashlib.sha1(arr.tobytes()).hexdigest())
    operands = [id(v) for v in node.inputs]
    if commutative:
        operands.sort()
    attrs = tuple(sorted((k, format_attr(v)) for k, v in node.attrs.items()))
    return (node.op, types, attrs, tuple(operands))
