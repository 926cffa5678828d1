"""The reference interpreter: runs a graph op by op through the numpy reference
implementations. It is the ground truth every pass and backend is checked
against. It needs numpy only (no torch, no onnx)."""
from __future__ import annotations

import numpy as np

from ..ir import dims as D
from ..ir.size_checks import size_checks
from ..ir.errors import IndexRangeError, IRError, LeptoncError, ShapeError
from ..ir.graph import Graph
from ..ir.indices import site
from ..ir.registry import get_op
from .signature import bind_inputs


def run_reference(graph: Graph, *inputs, **named) -> list[np.ndarray]:
    """Run `graph` on numpy inputs (positional in graph-input order, or by name).

    Returns the outputs as a list of numpy arrays, in graph-output order.
    """
    if named:
        inputs = _order_named(graph, inputs, named)
    arrays, bindings = bind_inputs([v.name for v in graph.inputs], [v.type for v in graph.inputs], inputs,
                                   size_checks(graph))
    env: dict[int, np.ndarray] = {id(v): a for v, a in zip(graph.inputs, arrays)}
    last_use = _last_uses(graph)
    for step, node in enumerate(graph.nodes):
        if node.op == "const":
            results = (graph.constants[node.attrs["name"]],)
        else:
            opdef = get_op(node.op)
            attrs = opdef.resolve_shape_attrs(node.attrs, bindings, f"node {node.label}")
            args = [env[id(v)] for v in node.inputs]
            try:
                with np.errstate(all="ignore"):
                    out = opdef.reference(*args, **attrs)
            except IndexRangeError as e:
                raise IndexRangeError(site(node), e.index, e.dim, e.size) from None
            except LeptoncError:
                raise
            except Exception as e:
                shapes = ", ".join(f"{a.dtype}{list(a.shape)}" for a in args)
                raise ShapeError(f"node {node.label} failed on operands ({shapes}): {type(e).__name__}: {e}") from None
            results = out if isinstance(out, tuple) else (out,)
        for v, r in zip(node.outputs, results):
            r = np.asarray(r)
            _check_result(node, v, r, bindings)
            env[id(v)] = r
        for v in node.inputs:
            if last_use.get(id(v)) == step:
                env.pop(id(v), None)
    return [env[id(v)] for v in graph.outputs]


def _order_named(graph: Graph, positional, named) -> list:
    names = [v.name for v in graph.inputs]
    unknown = set(named) - set(names)
    if unknown:
        raise ShapeError(f"unknown input names {sorted(unknown)}; the graph takes {names}")
    values = list(positional) + [None] * (len(names) - len(positional))
    for k, a in named.items():
        values[names.index(k)] = a
    missing = [n for n, a in zip(names, values) if a is None]
    if missing:
        raise ShapeError(f"missing inputs {missing}")
    return values


def _last_uses(graph: Graph) -> dict[int, int]:
    keep = {id(v) for v in graph.outputs}
    last: dict[int, int] = {}
    for step, node in enumerate(graph.nodes):
        for v in node.inputs:
            if id(v) not in keep:
                last[id(v)] = step
    return last


def _check_result(node, v, r: np.ndarray, bindings) -> None:
    if r.dtype != v.dtype.numpy or r.ndim != v.type.rank:
        raise IRError(f"reference of {node.label} returned {r.dtype}{list(r.shape)}, "
                      f"its type says {v.type} (a bug in the op definition)")
    for d, n in zip(v.shape, r.shape):
        if d != D.UNKNOWN and not (set(D.symbols(d)) - set(bindings)) and D.evaluate(d, bindings) != n:
            raise IRError(f"reference of {node.label} returned shape {list(r.shape)}, its type says {v.type}")
