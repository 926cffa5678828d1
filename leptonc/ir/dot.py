"""A graph as Graphviz DOT text: one box per op, edges labelled with the value's type.

Constants are small grey notes (the weights of a model would crowd the
picture otherwise); graph inputs and outputs are ellipses.
"""
from __future__ import annotations

import json

from .graph import Graph


def _quote(text: str) -> str:
    return json.dumps(text)


def to_dot(graph: Graph) -> str:
    lines = [f"digraph {_quote(graph.name)} {{", "  rankdir=TB;",
             '  node [shape=box, fontname="monospace", fontsize=10];',
             '  edge [fontname="monospace", fontsize=8];']
    source: dict[int, str] = {}
    for i, v in enumerate(graph.inputs):
        lines.append(f"  in{i} [shape=ellipse, label={_quote(f'%{v.name}: {v.type}')}];")
        source[id(v)] = f"in{i}"
    for i, node in enumerate(graph.nodes):
        if node.op == "const":
            label = f"@{node.attrs['name']}"
            lines.append(f"  n{i} [shape=note, style=filled, fillcolor=lightgrey, fontsize=8, label={_quote(label)}];")
        else:
            results = ", ".join(f"%{v.name}" for v in node.outputs)
            lines.append(f"  n{i} [label={_quote(f'{results} = {node.op}')}];")
        for v in node.inputs:
            lines.append(f"  {source[id(v)]} -> n{i} [label={_quote(str(v.type))}];")
        for v in node.outputs:
            source[id(v)] = f"n{i}"
    for i, v in enumerate(graph.outputs):
        lines.append(f"  out{i} [shape=ellipse, label={_quote(f'return %{v.name}')}];")
        lines.append(f"  {source[id(v)]} -> out{i} [label={_quote(str(v.type))}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
