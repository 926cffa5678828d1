"""Editing helpers the rewriting passes share: replace a result, refine types after a rewrite."""
from __future__ import annotations

from ..ir import dims as D
from ..ir.errors import LeptoncError
from ..ir.graph import Graph, Node, Value
from ..ir.registry import get_op


def replace_result(graph: Graph, old: Value, new: Value) -> None:
    """Every use of `old` becomes a use of `new`; old's node is erased once none of its results is used,
    and so are the producers of its operands that it was the last user of.

    A replacement built for the purpose, named after the old value (`%y_1` for
    `%y`), takes the old name once the old value has left the graph, so that
    dumps keep the names a reader knows.
    """
    graph.replace_all_uses(old, new)
    node = old.producer
    if node is not None and node.graph is graph and is_dead(graph, node):
        erase_dead(graph, node)
        adopt_name(old, new)


def adopt_name(old: Value, new: Value) -> None:
    """Give `new` the name of `old` (gone from the graph) when new was named after it (`%y_1` for `%y`)."""
    if new.producer is not None and new.name.startswith(old.name + "_"):
        new.name = old.name


def erase_dead(graph: Graph, node: Node) -> None:
    """Erase a dead node, then each operand producer that is left dead by it."""
    work = [node]
    while work:
        n = work.pop()
        if n.graph is not graph or not is_dead(graph, n):
            continue
        producers = [v.producer for v in n.inputs if v.producer is not None]
        graph.erase(n)
        work.extend(producers)


def is_dead(graph: Graph, node: Node) -> bool:
    """A pure node none of whose results is used or a graph output."""
    outputs = {id(v) for v in graph.outputs}
    return get_op(node.op).has("pure") and not any(v.uses or id(v) in outputs for v in node.outputs)


def refine_node_types(node: Node) -> bool:
    """Re-infer the node's result types and fill in dims that were unknown ("?") but now are known.

    Needed after a rewrite makes an operand's shape more precise (a shape
    computation folded to a constant): the users' results learn their sizes.
    """
    if node.op == "const":
        return False
    try:
        inferred = get_op(node.op).infer([v.type for v in node.inputs], node.attrs, node.label)
    except LeptoncError:
        return False  # left for the verifier to report
    changed = False
    for v, t in zip(node.outputs, inferred):
        if v.type.rank != t.rank or v.dtype != t.dtype:
            continue
        shape = tuple(b if a == D.UNKNOWN else a for a, b in zip(v.shape, t.shape))
        if shape != v.shape:
            v.type = v.type.with_shape(shape)
            changed = True
    return changed
