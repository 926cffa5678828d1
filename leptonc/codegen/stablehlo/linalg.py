"""Lowering of matmul and einsum to stablehlo.dot_general, and of det (unrolled elimination)."""
from __future__ import annotations

from ...ir.dtypes import DType
from ...ir.ops.linalg import einsum_terms
from ...ir.types import TensorType
from .builder import Builder, Val, dims_list
from .layout import slice_axis, take_along_axis
from .reduction import arg_extreme
from .rules import lowers

# HIGHEST keeps f32 dots in f32 on every backend (a TPU's DEFAULT rounds operands to bf16)
PRECISION = "[#stablehlo<precision HIGHEST>, #stablehlo<precision HIGHEST>]"


def dot_general(b: Builder, lhs: Val, rhs: Val, batch: int, lhs_contract: int, rhs_contract: int, shape) -> Val:
    """dot_general with the first `batch` dims of both operands as batch dims."""
    fields = []
    if batch:
        fields += [f"lhs_batching_dimensions = {dims_list(range(batch))}",
                   f"rhs_batching_dimensions = {dims_list(range(batch))}"]
    fields += [f"lhs_contracting_dimensions = [{lhs_contract}]", f"rhs_contracting_dimensions = [{rhs_contract}]"]
    return b.op1("stablehlo.dot_general", [lhs, rhs], lhs.type.with_shape(shape),
                 {"dot_dimension_numbers": f"#stablehlo.dot<{', '.join(fields)}>", "precision_config": PRECISION})


def widen(b: Builder, v: Val) -> Val:
    """f16 and bf16 operands are multiplied and accumulated in f32, as the reference does."""
    return b.convert(v, DType.f32) if v.dtype in (DType.f16, DType.bf16) else v


@lowers("matmul")
def matmul(b: Builder, node, args, out, attrs):
    a, w = (widen(b, v) for v in args)
    if len(a.shape) == 1:
        a = b.reshape(a, (1,) + tuple(a.shape))
    if len(w.shape) == 1:
        w = b.reshape(w, tuple(w.shape) + (1,))
    if len(w.shape) == 2:  # no batch on the right: contract a's last dim with w's first, no broadcast
        y = dot_general(b, a, w, 0, len(a.shape) - 1, 0, tuple(a.shape[:-1]) + (w.shape[1],))
    else:
        nb = max(len(a.shape), len(w.shape)) - 2
        batch = tuple(max(x, y) for x, y in zip((1,) * (nb - len(a.shape) + 2) + tuple(a.shape[:-2]),
                                               (1,) * (nb - len(w.shape) + 2) + tuple(w.shape[:-2])))
        a = b.broadcast_to(a, batch + tuple(a.shape[-2:]))
        w = b.broadcast_to(w, batch + tuple(w.shape[-2:]))
        y = dot_general(b, a, w, nb, nb + 1, nb, batch + (a.shape[-2], w.shape[-1]))
    return b.reshape(b.convert(y, out[0].dtype), out[0].shape)


def dot(b: Builder, lhs: Val, rhs: Val, batch: tuple[list, list], contract: tuple[list, list], shape) -> Val:
    """dot_general with explicit batch and contracting dims of each side."""
    fields = []
    if batch[0]:
        fields += [f"lhs_batching_dimensions = {dims_list(batch[0])}", f"rhs_batching_dimensions = {dims_list(batch[1])}"]
    fields += [f"lhs_contracting_dimensions = {dims_list(contract[0])}",
               f"rhs_contracting_dimensions = {dims_list(contract[1])}"]
    return b.op1("stablehlo.dot_general", [lhs, rhs], lhs.type.with_shape(shape),
                 {"dot_dimension_numbers": f"#stablehlo.dot<{', '.join(fields)}>", "precision_config": PRECISION})


def _sum_out(b: Builder, x: Val, term: str, letters) -> tuple[Val, str]:
    axes = [i for i, c in enumerate(term) if c in letters]
    if not axes:
        return x, term
    return b.reduce(x, b.scalar(0, x.dtype), axes, "add"), "".join(c for c in term if c not in letters)


def _take_diagonals(b: Builder, x: Val, term: str) -> tuple[Val, str]:
    """A letter repeated in one term takes the diagonal: zero off it, then sum the repeat away."""
    while len(set(term)) < len(term):
        c = next(c for c in term if term.count(c) > 1)
        p = term.index(c)
        q = term.index(c, p + 1)
        it = TensorType(DType.i64, x.shape)
        on = b.compare(b.iota(it, p), b.iota(it, q), "EQ")
        x = b.select(on, x, b.full(0, x.type))
        x, term = b.reduce(x, b.scalar(0, x.dtype), [q], "add"), term[:q] + term[q + 1:]
    return x, term


@lowers("einsum")
def einsum(b: Builder, node, args, out, attrs):
    """Per operand: diagonals, then letters nobody else needs summed out; then a left fold of
    dot_generals (shared letters still needed are batch dims, the others contract); then a transpose."""
    operands = [widen(b, v) for v in args]
    terms, result = einsum_terms(attrs["equation"], [len(v.shape) for v in operands])
    sizes = {}
    for v, t in zip(operands, terms):
        for c, d in zip(t, v.shape):
            sizes[c] = max(sizes.get(c, 1), d)
    prepared = []
    for i, (v, t) in enumerate(zip(operands, terms)):
        v = b.broadcast_in_dim(v, [sizes[c] for c in t], range(len(t)))  # size-1 ellipsis dims broadcast
        v, t = _take_diagonals(b, v, t)
        elsewhere = set(result).union(*(terms[j] for j in range(len(terms)) if j != i))
        prepared.append(_sum_out(b, v, t, set(t) - elsewhere))
    acc, acc_t = prepared[0]
    for i, (v, t) in enumerate(prepared[1:], start=1):
        needed = set(result).union(*(pt for _, pt in prepared[i + 1:]))
        shared = [c for c in acc_t if c in t]
        batch = [c for c in shared if c in needed]
        contract = [c for c in shared if c not in needed]
        free_l = [c for c in acc_t if c not in shared]
        free_r = [c for c in t if c not in shared]
        new_t = "".join(batch + free_l + free_r)
        acc = dot(b, acc, v, ([acc_t.index(c) for c in batch], [t.index(c) for c in batch]),
                  ([acc_t.index(c) for c in contract], [t.index(c) for c in contract]), [sizes[c] for c in new_t])
        acc_t = new_t
    acc, acc_t = _sum_out(b, acc, acc_t, set(acc_t) - set(result))
    y = b.transpose(acc, [acc_t.index(c) for c in result])
    return b.convert(y, out[0].dtype)


@lowers("det")
def det(b: Builder, node, args, out, attrs):
    """Gaussian elimination with partial pivoting, unrolled over the (static) matrix size, in f64:
    the determinant is the product of the pivots, negated once per row swap."""
    a = b.convert(args[0], DType.f64)
    n, batch = a.shape[-1], tuple(a.shape[:-2])
    r = len(a.shape)
    rows = b.iota(TensorType(DType.i64, batch + (n,)), len(batch))
    det_v = b.full(1, TensorType(DType.f64, batch))
    for k in range(n):
        col = b.reshape(slice_axis(b, a, r - 1, k, k + 1), batch + (n,))
        below = b.compare(rows, b.full(k, rows.type), "GE")
        p = arg_extreme(b, b.select(below, b.unary("abs", col), b.full(-1, col.type)), len(batch), largest=True)
        pb = b.broadcast_in_dim(p, rows.shape, range(len(batch)))
        kk = b.full(k, rows.type)
        src = b.select(b.compare(rows, kk, "EQ"), pb, b.select(b.compare(rows, pb, "EQ"), kk, rows))
        a = take_along_axis(b, a, b.broadcast_in_dim(src, a.shape, range(r - 1)), r - 2)
        swapped = b.compare(p, b.full(k, p.type), "NE")
        pivot = b.reshape(b.slice(a, [0] * (r - 2) + [k, k], list(batch) + [k + 1, k + 1]), batch)
        det_v = b.binary("multiply", det_v, b.select(swapped, b.unary("negate", pivot), pivot))
        if k == n - 1:
            break
        col = b.reshape(slice_axis(b, a, r - 1, k, k + 1), batch + (n,))
        zero = b.compare(pivot, b.full(0, pivot.type), "EQ")
        safe = b.select(zero, b.full(1, pivot.type), pivot)
        factor = b.binary("divide", col, b.broadcast_in_dim(safe, col.shape, range(len(batch))))
        factor = b.select(b.compare(rows, kk, "GT"), factor, b.full(0, factor.type))
        pivot_row = b.reshape(slice_axis(b, a, r - 2, k, k + 1), batch + (n,))
        update = b.binary("multiply", b.broadcast_in_dim(factor, a.shape, range(r - 1)),
                          b.broadcast_in_dim(pivot_row, a.shape, list(range(r - 2)) + [r - 1]))
        a = b.binary("subtract", a, update)
    return b.convert(det_v, out[0].dtype)


def apply_matrix(b: Builder, x: Val, axis: int, matrix, offset=None) -> Val:
    """x's `axis` (length n) mapped through a constant n x m matrix (plus a constant offset of length m),
    the new axis in the old one's place."""
    m = matrix.shape[1]
    y = dot(b, x, b.constant(matrix.astype(x.dtype.numpy)), ([], []), ([axis], [0]),
            tuple(d for i, d in enumerate(x.shape) if i != axis) + (m,))
    rank = len(x.shape)
    y = b.transpose(y, list(range(axis)) + [rank - 1] + list(range(axis, rank - 1)))
    if offset is not None and offset.any():
        y = b.binary("add", y, b.broadcast_in_dim(b.constant(offset.astype(x.dtype.numpy)), y.shape, [axis]))
    return y
