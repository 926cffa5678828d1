"""What every runtime checks about symbolic sizes before a run, beyond each input's own shape.

Two kinds of requirement, each a dim expression that must not be negative once the sizes are bound:
the dims of the graph's values that some sizes make negative ("H - 2" after a 3x3 conv), and what an
op's inferred type takes for granted (its registry entry's `needs`: a slice to a fixed end over a
symbolic axis needs the axis at least that long). runtime/signature.py's `bind_inputs` refuses sizes
that break one, naming it, instead of running kernels that would read past a buffer.
"""
from __future__ import annotations

from . import dims as D
from .graph import Graph
from .registry import get_op


def size_checks(graph: Graph) -> list[tuple[str, int, str, str]]:
    """(value name, dim index, dim that must not be negative, what needs it: "" for the value's own dim)."""
    out = [(name, i, d, "") for name, i, d in D.signed_dims(v for n in graph.nodes for v in n.outputs)]
    for node in graph.nodes:
        if node.op == "const":
            continue
        needs = get_op(node.op).needs
        if needs is None:
            continue
        for k, axis, d, what in needs([v.type for v in node.inputs], **node.attrs):
            if isinstance(d, str) and D.may_be_negative(d):
                out.append((node.inputs[k].name, axis, d, f"{what} (node {node.label})"))
    return out
