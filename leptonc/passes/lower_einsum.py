"""lower-einsum: a two-operand einsum as transposes, reshapes and one batched matmul.

For `a, b -> result`, each letter is a batch letter (in a, b and the result), a contracted one (in a and
b only), or free (in one operand and the result). A letter that one operand has and nothing else needs
is summed out of it first (reduce_sum). Then

    a -> transpose [batch, free of a, contracted] -> reshape [B, M, K]
    b -> transpose [batch, contracted, free of b] -> reshape [B, K, N]
    matmul -> [B, M, N] -> reshape [batch, free of a, free of b] -> transpose to the result's order
    (without batch letters, a 2-d matmul).

Every target's matmul kernel then computes it, where the einsum kernel loops element by element. Left as
they are: einsums of one or of three or more operands, a letter repeated within a term (a diagonal), a
letter whose size differs between the operands (a broadcast), and bool operands. Values are the same up
to the order of the sums (as the reference's numpy.einsum, which also calls BLAS).
"""
from __future__ import annotations

from ..ir import dims as D
from ..ir.dtypes import DType
from ..ir.graph import Graph, Node, Value
from ..ir.ops.linalg import einsum_terms
from .registry import register_pass
from .rewrite import adopt_name


def _arrange(graph: Graph, v: Value, term: str, order: str, shape, node: Node) -> Value:
    """v (letters `term`) transposed to the letters `order` and reshaped to `shape`."""
    perm = [term.index(c) for c in order]
    if perm != list(range(len(perm))):
        v = graph.add("transpose", v, perm=tuple(perm), name=f"{v.name}_t", before=node)
    if tuple(v.shape) != tuple(shape):
        v = graph.add("reshape", v, shape=tuple(shape), name=f"{v.name}_r", before=node)
    return v


def _as_matmul(graph: Graph, node: Node) -> Value | None:
    (a, b), y = node.inputs, node.output
    if y.dtype is DType.bool:
        return None
    (ta, tb), result = einsum_terms(node.attrs["equation"], [a.type.rank, b.type.rank])
    if len(set(ta)) < len(ta) or len(set(tb)) < len(tb) or len(set(result)) < len(result):
        return None
    size = dict(zip(ta, a.shape))
    if any(c in size and not D.same(size[c], d) for c, d in zip(tb, b.shape)):
        return None
    size.update(zip(tb, b.shape))
    operands = []
    for v, term, other in ((a, ta, tb), (b, tb, ta)):   # letters only this operand needs: summed out
        alone = [i for i, c in enumerate(term) if c not in other and c not in result]
        if alone:
            v = graph.add("reduce_sum", v, axes=tuple(alone), keepdims=False, name=f"{v.name}_sum", before=node)
            term = "".join(c for i, c in enumerate(term) if i not in alone)
        operands.append((v, term))
    (a, ta), (b, tb) = operands
    batch = [c for c in result if c in ta and c in tb]
    contracted = [c for c in ta if c in tb and c not in result]
    free_a = [c for c in ta if c not in tb]
    free_b = [c for c in tb if c not in ta]

    def extent(letters):
        return D.product([size[c] for c in letters])

    lead = (extent(batch),) if batch else ()   # no batch letters: a 2-d matmul (a weight stays a matrix)
    m, k, n = extent(free_a), extent(contracted), extent(free_b)
    lhs = _arrange(graph, a, ta, "".join(batch + free_a + contracted), lead + (m, k), node)
    rhs = _arrange(graph, b, tb, "".join(batch + contracted + free_b), lead + (k, n), node)
    product = graph.add("matmul", lhs, rhs, name=f"{y.name}_mm", before=node)
    order = "".join(batch + free_a + free_b)
    product = graph.add("reshape", product, shape=tuple(size[c] for c in order), name=f"{y.name}_r",
                        before=node)
    if order != result:
        product = graph.add("transpose", product, perm=tuple(order.index(c) for c in result),
                            name=f"{y.name}_t", before=node)
    return product


@register_pass("lower-einsum", "two-operand einsums as transposes, reshapes and one batched matmul (diagonals, "
                               "broadcasts and other operand counts stay einsums)")
def lower_einsum(graph: Graph) -> bool:
    changed = False
    for node in list(graph.nodes):
        if node.op != "einsum" or len(node.inputs) != 2:
            continue
        new = _as_matmul(graph, node)
        if new is None:
            continue
        old = node.output
        graph.replace_all_uses(old, new)
        graph.erase(node)
        adopt_name(old, new)
        changed = True
    return changed
