"""dce: dead-code elimination. Removes pure nodes whose results nothing uses, and constants no node names."""
from __future__ import annotations

from ..ir.graph import Graph
from ..ir.registry import get_op
from .registry import register_pass


@register_pass("dce", "remove nodes whose results are unused, and constants nothing refers to")
def dce(graph: Graph) -> bool:
    outputs = {id(v) for v in graph.outputs}
    changed = False
    for node in reversed(list(graph.nodes)):  # users before producers: erasing a user frees its operands
        dead = not any(v.uses or id(v) in outputs for v in node.outputs)
        if dead and get_op(node.op).has("pure"):
            graph.erase(node)
            changed = True
    named = {n.attrs["name"] for n in graph.nodes if n.op == "const"}
    unused = [k for k in graph.constants if k not in named]
    for k in unused:
        del graph.constants[k]
    return changed or bool(unused)
