"""Specializing a graph to one binding of its size symbols: every value's concrete type,
and the values known before run time (shape arithmetic).

XLA compiles static shapes, so the module is written per binding ("B" = 8).
Ops whose result sizes come from a tensor operand (the *_dynamic ops) get them
here when that operand is known: small integer constants, shape_of, and ops
over known values are evaluated with the reference implementations. Ops whose
result sizes depend on the data itself (nonzero, unique) cannot be static.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...ir import dims as D
from ...ir.errors import IndexRangeError, LeptoncError
from ...ir.graph import Graph, Node
from ...ir.ops.dynamic import SIZE_OPERANDS
from ...ir.registry import get_op
from ...ir.types import TensorType

# result sizes that depend on the values of the data: no static shape exists for them
DATA_DEPENDENT = {
    "nonzero": "its result size is the number of nonzero elements",
    "unique": "its result size is the number of distinct elements",
    "non_max_suppression": "its result size is the number of boxes it keeps",
}
KNOWN_LIMIT = 4096  # elements: the largest integer value evaluated at emission (shape arithmetic is tiny)
KNOWN_FLOAT_LIMIT = 16  # float parameters of sizes (resize scales and roi), never weights


@dataclass
class Specialization:
    bindings: dict[str, int]
    types: dict[int, TensorType]      # id(Value) -> concrete type
    known: dict[int, np.ndarray]      # id(Value) -> value known before run time


def symbols_of(graph: Graph) -> set[str]:
    """The size symbols of the graph inputs (what a binding must give)."""
    return {s for v in graph.inputs for d in v.shape for s in D.symbols(d)}


def specialize(graph: Graph, bindings: dict[str, int]) -> Specialization:
    missing = symbols_of(graph) - set(bindings)
    if missing:
        raise LeptoncError(f"graph @{graph.name} has symbolic dims {sorted(missing)}: the stablehlo target "
                           f"specializes them, give their sizes (e.g. {sorted(missing)[0]}=1)")
    spec = Specialization(dict(bindings), {}, {})
    for v in graph.inputs:
        spec.types[id(v)] = v.type.with_shape(v.type.concrete(bindings))
    for node in graph.nodes:
        if node.op in DATA_DEPENDENT:
            raise LeptoncError(f"stablehlo: {node.label} cannot be compiled by XLA: {DATA_DEPENDENT[node.op]}, "
                               f"and XLA needs static shapes")
        if node.op == "const":
            arr = graph.constants[node.attrs["name"]]
            spec.types[id(node.output)] = node.output.type.with_shape(arr.shape)
            if _knowable(arr.dtype, arr.size):
                spec.known[id(node.output)] = arr
            continue
        _specialize_node(node, spec)
    return spec


def resolved_attrs(node: Node, bindings: dict[str, int]) -> dict:
    """The node's attributes with symbolic shape attributes evaluated."""
    return get_op(node.op).resolve_shape_attrs(node.attrs, bindings, f"stablehlo: {node.label}")


def _specialize_node(node: Node, spec: Specialization) -> None:
    in_types = [spec.types[id(v)] for v in node.inputs]
    opdef = get_op(node.op)
    attrs = resolved_attrs(node, spec.bindings)
    if all(v.type.is_static for v in node.outputs) and all(t == v.type for t, v in zip(in_types, node.inputs)):
        out_types = [v.type for v in node.outputs]
    else:
        out_types = opdef.infer(in_types, attrs, where=node.label)
    all_known = all(id(v) in spec.known for v in node.inputs)
    value = None
    if node.op == "shape_of" or (all_known and all(t.is_static and _knowable(t.dtype.numpy, int(np.prod(t.shape)))
                                                   for t in out_types)):
        try:
            value = _evaluate(node, spec, attrs)
        except IndexRangeError:  # known indices out of range: the run reports them, as on every target
            value = None
    elif not all(t.is_static for t in out_types):
        out_types = _sizes_by_evaluation(node, spec, attrs, in_types, out_types)
    for i, (v, t) in enumerate(zip(node.outputs, out_types)):
        if value is not None:
            t = t.with_shape(value[i].shape)
            spec.known[id(v)] = value[i]
        spec.types[id(v)] = t


def _sizes_by_evaluation(node: Node, spec: Specialization, attrs, in_types, out_types) -> list[TensorType]:
    """Result sizes that depend on known operand values: run the reference with zeros for the data."""
    size_operands = SIZE_OPERANDS.get(node.op)
    unknown = [i for i in size_operands or () if id(node.inputs[i]) not in spec.known]
    if size_operands is None or unknown:
        which = ", ".join(f"operand {i} (%{node.inputs[i].name})" for i in unknown) or "its operands"
        raise LeptoncError(f"stablehlo: the result sizes of {node.label} depend on {which}, which is only "
                           f"known at run time; XLA needs static shapes")
    placeholders = [spec.known.get(id(v), np.zeros(t.shape, t.dtype.numpy)) for v, t in zip(node.inputs, in_types)]
    with np.errstate(all="ignore"):
        out = get_op(node.op).reference(*placeholders, **attrs)
    results = out if isinstance(out, tuple) else (out,)
    return [t.with_shape(np.shape(r)) for t, r in zip(out_types, results)]


def _evaluate(node: Node, spec: Specialization, attrs) -> tuple:
    args = [spec.known.get(id(v)) for v in node.inputs]
    if node.op == "shape_of":
        args = [np.empty(spec.types[id(node.inputs[0])].shape, np.uint8)]
    out = get_op(node.op).reference(*args, **attrs)
    return tuple(np.asarray(r) for r in (out if isinstance(out, tuple) else (out,)))


def _knowable(dtype: np.dtype, size: int) -> bool:
    """Small integer tensors and tiny float ones: what sizes are computed from (never weights)."""
    return size <= (KNOWN_LIMIT if np.dtype(dtype).kind in "iub" else KNOWN_FLOAT_LIMIT)
