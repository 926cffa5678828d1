"""lower-einsum: an einsum as transposes, reshapes, sums and batched matmuls, two operands at a time.

For `a, b -> result`, each letter is a batch letter (in a, b and the result), a contracted one (in a and
b only), or free (in one operand and the result). A letter that one operand has and nothing else needs
is summed out of it first (reduce_sum). Then

    a -> transpose [batch, free of a, contracted] -> reshape [B, M, K]
    b -> transpose [batch, contracted, free of b] -> reshape [B, K, N]
    matmul -> [B, M, N] -> reshape [batch, free of a, free of b] -> transpose to the result's order
    (without batch letters, a 2-d matmul).

More operands fold from the left, each step keeping the letters that the result or a later operand
needs (as the stablehlo target's einsum does); one operand is a sum and a transpose. Every target's
matmul kernel then computes it, where the einsum kernel loops element by element. Left as they are: a
letter repeated within a term (a diagonal), a letter whose size differs between the operands (a
broadcast), and bool operands. Values are the same up to the order of the sums (as the reference's
numpy.einsum, which also calls BLAS).
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


def _sum_out(graph: Graph, v: Value, term: str, keep, node: Node) -> tuple[Value, str]:
    """v with the letters not in `keep` summed out, and its remaining letters."""
    gone = [i for i, c in enumerate(term) if c not in keep]
    if not gone:
        return v, term
    v = graph.add("reduce_sum", v, axes=tuple(gone), keepdims=False, name=f"{v.name}_sum", before=node)
    return v, "".join(c for c in term if c in keep)


def _pair(graph: Graph, a: Value, ta: str, b: Value, tb: str, result: str, size: dict, node: Node,
          name: str) -> Value:
    """einsum(ta, tb -> result) of a and b as one batched matmul between transposes and reshapes."""
    a, ta = _sum_out(graph, a, ta, set(tb) | set(result), node)
    b, tb = _sum_out(graph, b, tb, set(ta) | set(result), node)
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
    product = graph.add("matmul", lhs, rhs, name=f"{name}_mm", before=node)
    order = "".join(batch + free_a + free_b)
    shape = tuple(size[c] for c in order)
    if tuple(product.shape) != shape:
        product = graph.add("reshape", product, shape=shape, name=f"{name}_r", before=node)
    if order != result:
        product = graph.add("transpose", product, perm=tuple(order.index(c) for c in result), name=f"{name}_t",
                            before=node)
    return product


def _lowered(graph: Graph, node: Node) -> Value | None:
    xs, y = node.inputs, node.output
    if y.dtype is DType.bool:
        return None
    terms, result = einsum_terms(node.attrs["equation"], [x.type.rank for x in xs])
    if any(len(set(t)) < len(t) for t in terms + [result]):
        return None
    size: dict = {}
    for x, term in zip(xs, terms):
        for c, d in zip(term, x.shape):
            if c in size and not D.same(size[c], d):
                return None
            size[c] = d
    if len(xs) == 1:
        v, term = _sum_out(graph, xs[0], terms[0], set(result), node)
        if term == result:
            return v
        return graph.add("transpose", v, perm=tuple(term.index(c) for c in result), name=f"{y.name}_t",
                         before=node)
    acc, acc_term = xs[0], terms[0]
    for i in range(1, len(xs)):
        needed = set(result).union(*terms[i + 1:])
        out = result if i == len(xs) - 1 else "".join(c for c in dict.fromkeys(acc_term + terms[i]) if c in needed)
        name = y.name if out is result else f"{y.name}_{i}"
        acc = _pair(graph, acc, acc_term, xs[i], terms[i], out, size, node, name)
        acc_term = out
    return acc


@register_pass("lower-einsum", "einsums as transposes, reshapes, sums and batched matmuls, two operands at a time "
                               "(diagonals and broadcasts stay einsums)")
def lower_einsum(graph: Graph) -> bool:
    changed = False
    for node in list(graph.nodes):
        if node.op != "einsum":
            continue
        new = _lowered(graph, node)
        if new is None:
            continue
        old = node.output
        graph.replace_all_uses(old, new)
        graph.erase(node)
        adopt_name(old, new)
        changed = True
    return changed
