"""The verifier: SSA form, use-lists, registered ops, operand counts, attributes in their domains, and
types against inference; every value's type within the size rules (TensorType.check)."""
from __future__ import annotations

import numpy as np

from . import dims as D
from .dtypes import DType
from .errors import IRError, LeptoncError
from .graph import Graph, Node, Value
from .registry import get_op, is_registered


class VerifyError(IRError):
    """A graph that breaks an IR rule; `node` is the offending node when there is one."""

    def __init__(self, message: str, node: Node | None = None):
        super().__init__(message)
        self.node = node


def refines(actual, inferred) -> bool:
    """A result type agrees with inference: same dtype and rank, each dim the same or inferred unknown."""
    return actual.dtype == inferred.dtype and actual.rank == inferred.rank and all(
        b == D.UNKNOWN or a == b for a, b in zip(actual.shape, inferred.shape))


def verify(graph: Graph) -> None:
    """Raise VerifyError naming the node and value at the first broken rule."""
    defined: set[int] = set()
    names: set[str] = set()
    in_graph = {id(n) for n in graph.nodes}

    def define(v: Value, node: Node | None):
        if v.name in names:
            raise VerifyError(f"value %{v.name} is defined twice", node)
        names.add(v.name)
        defined.add(id(v))
        try:
            v.type.check(f"{'node ' + node.label + ': result' if node is not None else 'graph input'} %{v.name}")
        except LeptoncError as e:
            raise VerifyError(str(e), node) from None
        for user, i in v.uses:
            if id(user) not in in_graph:
                raise VerifyError(f"%{v.name} lists a use by {user.label}, which is not in the graph", node)
            if i >= len(user.inputs) or user.inputs[i] is not v:
                raise VerifyError(f"use-list of %{v.name} is stale: {user.label} operand {i} is not it", node)

    for v in graph.inputs:
        if v.producer is not None:
            raise VerifyError(f"graph input %{v.name} has a producer")
        define(v, None)
    for node in graph.nodes:
        where = f"node {node.label}"
        if not is_registered(node.op):
            raise VerifyError(f"{where}: unregistered op '{node.op}'", node)
        if node.graph is not graph:
            raise VerifyError(f"{where} does not belong to graph @{graph.name}", node)
        for i, v in enumerate(node.inputs):
            if id(v) not in defined:
                known = any(v is o for n in graph.nodes for o in n.outputs) or any(v is x for x in graph.inputs)
                kind = "use before def of" if known else "dangling value"
                raise VerifyError(f"{where}: operand {i} is {kind} %{v.name}", node)
            if not any(u is node and j == i for u, j in v.uses):
                raise VerifyError(f"{where}: operand {i} %{v.name} is missing from its use-list", node)
        check_node(graph, node)
        for v in node.outputs:
            if v.producer is not node:
                raise VerifyError(f"{where}: result %{v.name} names another producer", node)
            define(v, node)
    for v in graph.outputs:
        if id(v) not in defined:
            raise VerifyError(f"graph output %{v.name} is a dangling value (not defined in the graph)")


def check_node(graph: Graph, node: Node) -> None:
    """Attributes in normal form and result types that agree with inference (or, for const, the array)."""
    where = f"node {node.label}"
    opdef = get_op(node.op)
    try:
        if opdef.normalize_attrs(node.attrs, where) != node.attrs:
            raise VerifyError(f"{where}: attributes are not in normal form", node)
        if node.op == "const":
            cname = node.attrs["name"]
            arr = graph.constants.get(cname)
            if arr is None:
                raise VerifyError(f"{where}: no constant named @{cname}", node)
            want = [(DType.from_numpy(np.asarray(arr).dtype), tuple(arr.shape))]
            got = [(v.dtype, v.shape) for v in node.outputs]
            if got != want:
                raise VerifyError(f"{where}: type {node.outputs[0].type if node.outputs else '()'} "
                                  f"disagrees with constant @{cname} ({want[0][0]}{list(want[0][1])})", node)
            return
        inferred = opdef.infer([v.type for v in node.inputs], node.attrs, where)
        if opdef.check is not None:
            opdef.check([graph.constant_of(v) for v in node.inputs], [v.type for v in node.inputs], node.attrs)
    except VerifyError:
        raise
    except LeptoncError as e:
        raise VerifyError(str(e) if str(e).startswith(where) else f"{where}: {e}", node) from None
    if len(inferred) != len(node.outputs):
        raise VerifyError(f"{where}: has {len(node.outputs)} results, inference gives {len(inferred)}", node)
    for v, t in zip(node.outputs, inferred):
        if not refines(v.type, t):
            raise VerifyError(f"{where}: result %{v.name} has type {v.type}, inference gives {t}", node)
