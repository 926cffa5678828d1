"""Lowering of the indexing ops gather_nd, scatter_nd, tensor_scatter, reverse_sequence and trilu."""
from __future__ import annotations

import numpy as np

from ...ir.dtypes import DType
from ...ir.indices import NO_INDEX_ERROR as NO_ERROR, indexed_dims
from ...ir.types import TensorType
from .builder import Builder, Val, dims_list, i64_array
from .layout import scatter, scatter_elements, take_along_axis
from .rules import lowers


def wrap_negative_tuples(b: Builder, idx: Val, sizes) -> Val:
    """Index tuples along idx's last dim whose entries below zero count from the end of their dim."""
    bound = b.broadcast_in_dim(b.constant(np.asarray(sizes).astype(idx.dtype.numpy)), idx.shape, [len(idx.shape) - 1])
    neg = b.compare(idx, b.full(0, idx.type), "LT")
    return b.select(neg, b.binary("add", idx, bound), idx)


def first_bad_index(b: Builder, data: TensorType, idx: Val, dims: tuple[int, ...], wraps: bool = True) -> Val:
    """[position, index, dim, dim size] of the first element of idx out of range for its dim of data
    (ir/indices.py: element p indexes dims[p % len(dims)]; in [-n, n) when negative indices wrap, else in
    [0, n)), as a tensor<4xi64>; position NO_ERROR when none.
    XLA clamps gather indices and drops scatter updates out of range, so the module returns this and the
    runtime raises."""
    k, n = len(dims), int(np.prod(idx.shape, dtype=np.int64))
    if n == 0 or k == 0:
        return b.constant(np.array([NO_ERROR, 0, 0, 0], np.int64))
    t = TensorType(DType.i64, (n // k, k))
    flat = b.reshape(b.convert(idx, DType.i64), t.shape)
    size = b.broadcast_in_dim(b.constant(np.array([data.shape[d] for d in dims], np.int64)), t.shape, [1])
    low = b.unary("negate", size) if wraps else b.full(0, t)
    bad = b.binary("or", b.compare(flat, low, "LT"), b.compare(flat, size, "GE"))
    pos = b.binary("add", b.binary("multiply", b.iota(t, 0), b.full(k, t)), b.iota(t, 1))
    first = b.reduce(b.select(bad, pos, b.full(NO_ERROR, t)), b.scalar(NO_ERROR, DType.i64), [0, 1], "minimum")
    hit = b.compare(pos, b.broadcast_in_dim(first, t.shape, []), "EQ")
    dim = b.binary("add", b.iota(t, 1), b.full(dims[0], t))  # an index tuple's dims are consecutive

    def at_first(v: Val) -> Val:
        return b.reshape(b.reduce(b.select(hit, v, b.full(0, t)), b.scalar(0, DType.i64), [0, 1], "add"), (1,))

    return b.concatenate([b.reshape(first, (1,)), at_first(flat), at_first(dim), at_first(size)], 0)


def write_positions(b: Builder, idx: Val, steps: int) -> Val:
    """tensor_scatter's write positions [batch, steps]: idx[b] + t (ir/indices.py)."""
    t = TensorType(DType.i64, (idx.shape[0], steps))
    return b.binary("add", b.broadcast_in_dim(b.convert(idx, DType.i64), t.shape, [0]), b.iota(t, 1))


def index_record(b: Builder, node, args: list[Val], attrs: dict) -> Val:
    """first_bad_index of a node that checks its indices (ir/indices.checks_indices)."""
    if node.op == "tensor_scatter":
        cache, upd, idx = args
        axis = attrs["axis"] % len(cache.shape)
        return first_bad_index(b, cache.type, write_positions(b, idx, upd.shape[axis]), (axis,), wraps=False)
    x, idx = args[:2]
    return first_bad_index(b, x.type, idx, indexed_dims(node.op, attrs, len(x.shape), idx.shape))


@lowers("gather_nd")
def gather_nd(b: Builder, node, args, out, attrs):
    """out[b..., i..., rest] = x[b..., idx[b..., i..., :], rest]: batch coordinates come from iotas."""
    x, idx = args
    nb, k = attrs["batch_dims"], idx.shape[-1]
    idx = wrap_negative_tuples(b, idx, x.shape[nb:nb + k])
    lead = tuple(idx.shape[:-1])
    col = idx.type.with_shape(lead + (1,))
    coords = b.concatenate([b.iota(col, d) for d in range(nb)] + [idx], len(lead))
    depth = nb + k
    offset_dims = list(range(len(lead), len(lead) + len(x.shape) - depth))
    numbers = (f"#stablehlo.gather<offset_dims = {dims_list(offset_dims)}, collapsed_slice_dims = "
               f"{dims_list(range(depth))}, start_index_map = {dims_list(range(depth))}, index_vector_dim = {len(lead)}>")
    sizes = [1] * depth + list(x.shape[depth:])
    return b.op1("stablehlo.gather", [x, coords], out[0],
                 {"dimension_numbers": numbers, "slice_sizes": i64_array(sizes), "indices_are_sorted": "false"})


@lowers("scatter_nd")
def scatter_nd(b: Builder, node, args, out, attrs):
    x, idx, upd = args
    k = idx.shape[-1]
    idx = wrap_negative_tuples(b, idx, x.shape[:k])
    lead = len(idx.shape) - 1
    numbers = (f"#stablehlo.scatter<update_window_dims = {dims_list(range(lead, len(upd.shape)))}, "
               f"inserted_window_dims = {dims_list(range(k))}, scatter_dims_to_operand_dims = {dims_list(range(k))}, "
               f"index_vector_dim = {lead}>")
    return scatter(b, x, idx, upd, attrs["reduction"], numbers)


@lowers("reverse_sequence")
def reverse_sequence(b: Builder, node, args, out, attrs):
    """Read step lens[b] - 1 - t for t < lens[b], step t after: a take_along_axis over time."""
    x, lens = args
    rank = len(x.shape)
    batch_axis, time_axis = attrs["batch_axis"] % rank, attrs["time_axis"] % rank
    t = b.iota(TensorType(DType.i64, x.shape), time_axis)
    n = b.broadcast_in_dim(b.convert(lens, DType.i64), x.shape, [batch_axis])
    mirrored = b.binary("subtract", b.binary("subtract", n, b.full(1, n.type)), t)
    return take_along_axis(b, x, b.select(b.compare(t, n, "LT"), mirrored, t), time_axis)


@lowers("trilu")
def trilu(b: Builder, node, args, out, attrs):
    """Keep x where col - row >= k (upper) or <= k (lower), zero elsewhere; k may be a run-time operand."""
    x = args[0]
    rank = len(x.shape)
    it = TensorType(DType.i64, x.shape)
    offset = b.binary("subtract", b.iota(it, rank - 1), b.iota(it, rank - 2))
    if len(args) == 2:
        k = b.broadcast_in_dim(b.reshape(b.convert(args[1], DType.i64), ()), x.shape, ())
    else:
        k = b.full(attrs["diagonal"], it)
    keep = b.compare(offset, k, "GE" if attrs["upper"] else "LE")
    return b.select(keep, x, b.full(0, x.type))


@lowers("tensor_scatter")
def tensor_scatter(b: Builder, node, args, out, attrs):
    """Batch entry i of the update goes along axis from write index idx[i] (wrapping if circular):
    a scatter_elements with positions idx[i] + t."""
    cache, upd, idx = args
    axis = attrs["axis"] % len(cache.shape)
    it = TensorType(DType.i64, upd.shape)
    pos = b.binary("add", b.broadcast_in_dim(idx, upd.shape, [0]), b.iota(it, axis))
    if attrs["mode"] == "circular":
        pos = b.binary("remainder", pos, b.full(cache.shape[axis], it))
    return scatter_elements(b, node, [cache, pos, upd], out, {"axis": axis, "reduction": "none"})
