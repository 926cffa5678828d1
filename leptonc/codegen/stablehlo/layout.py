"""Lowering of layout and data-movement ops: reshape, squeeze/unsqueeze, transpose, broadcast_to,
concat, split, slice, pad, gather/scatter, tile, full, range, shape_of, topk, cumsum/cumprod.

Shapes are concrete here (the module is specialized per size), so shape_of is a
constant and Python slice bounds resolve at emission.
"""
from __future__ import annotations

import numpy as np

from ...ir.dtypes import DType
from ...ir.types import TensorType
from .builder import Builder, Val, dims_list, i64_array, i64_matrix
from .rules import lowers


@lowers("reshape")
def reshape(b: Builder, node, args, out, attrs):
    return b.reshape(args[0], out[0].shape)


@lowers("transpose")
def transpose(b: Builder, node, args, out, attrs):
    return b.transpose(args[0], attrs["perm"])


@lowers("broadcast_to")
def broadcast_to(b: Builder, node, args, out, attrs):
    return b.broadcast_to(args[0], out[0].shape)


@lowers("concat")
def concat(b: Builder, node, args, out, attrs):
    return b.concatenate(args, attrs["axis"] % len(out[0].shape))


def slice_axis(b: Builder, x: Val, axis: int, start: int, limit: int, step: int = 1) -> Val:
    starts, limits, steps = [0] * len(x.shape), list(x.shape), [1] * len(x.shape)
    starts[axis], limits[axis], steps[axis] = start, limit, step
    return b.slice(x, starts, limits, steps)


@lowers("split")
def split(b: Builder, node, args, out, attrs):
    x, axis = args[0], attrs["axis"] % len(args[0].shape)
    bounds = np.cumsum((0,) + tuple(attrs["sizes"]))
    return [slice_axis(b, x, axis, int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]


def reverse(b: Builder, x: Val, axes) -> Val:
    return b.op1("stablehlo.reverse", [x], x.type, {"dimensions": i64_array(axes)})


@lowers("slice")
def slice_(b: Builder, node, args, out, attrs):
    """Python slices per axis; a negative step reverses the axis and slices forward."""
    x = args[0]
    for start, end, axis, step in zip(attrs["starts"], attrs["ends"], attrs["axes"], attrs["steps"]):
        axis %= len(x.shape)
        size = x.shape[axis]
        lo, hi, st = slice(start, end, step).indices(size)
        count = len(range(lo, hi, st))
        if st < 0:
            x, lo, st = reverse(b, x, [axis]), size - 1 - lo, -st
        x = slice_axis(b, x, axis, lo, lo + (count - 1) * st + 1 if count else lo, st)
    return x


@lowers("pad")
def pad(b: Builder, node, args, out, attrs):
    x, pads, mode = args[0], attrs["pads"], attrs["mode"]
    rank = len(x.shape)
    if mode == "constant":  # stablehlo.pad takes negative (cropping) edges as they are
        return b.op1("stablehlo.pad", [x, b.scalar(attrs["value"], x.dtype)], out[0],
                     {"edge_padding_low": i64_array(pads[:rank]), "edge_padding_high": i64_array(pads[rank:]),
                      "interior_padding": i64_array([0] * rank)})
    for axis in range(rank):  # crop first (negative pads), then pad, as the reference does
        lo, hi = pads[axis], pads[axis + rank]
        x = slice_axis(b, x, axis, max(-lo, 0), x.shape[axis] - max(-hi, 0))
        x = _pad_axis(b, x, axis, max(lo, 0), max(hi, 0), mode)
    return x


def _pad_axis(b: Builder, x: Val, axis: int, lo: int, hi: int, mode: str) -> Val:
    """Pad one axis in reflect, edge or wrap mode, in rounds as numpy does when a pad exceeds the size."""
    while lo or hi:
        n = x.shape[axis]
        room = n - 1 if mode == "reflect" else n
        take_lo, take_hi = min(lo, room), min(hi, room)
        if mode == "edge":
            take_lo, take_hi = lo, hi
        parts = []
        if take_lo:
            parts.append(_edge_piece(b, x, axis, take_lo, mode, front=True))
        parts.append(x)
        if take_hi:
            parts.append(_edge_piece(b, x, axis, take_hi, mode, front=False))
        x = b.concatenate(parts, axis)
        lo, hi = lo - take_lo, hi - take_hi
    return x


def _edge_piece(b: Builder, x: Val, axis: int, width: int, mode: str, front: bool) -> Val:
    n = x.shape[axis]
    if mode == "edge":
        edge = slice_axis(b, x, axis, 0, 1) if front else slice_axis(b, x, axis, n - 1, n)
        shape = list(x.shape)
        shape[axis] = width
        return b.broadcast_in_dim(edge, shape, range(len(shape)))
    if mode == "wrap":
        return slice_axis(b, x, axis, n - width, n) if front else slice_axis(b, x, axis, 0, width)
    # reflect: the mirror image without the edge element itself
    piece = slice_axis(b, x, axis, 1, 1 + width) if front else slice_axis(b, x, axis, n - 1 - width, n - 1)
    return reverse(b, piece, [axis])


def wrap_negative(b: Builder, idx: Val, size: int) -> Val:
    """Indices below zero count from the end."""
    neg = b.compare(idx, b.full(0, idx.type), "LT")
    return b.select(neg, b.binary("add", idx, b.full(size, idx.type)), idx)


def full_indices(b: Builder, idx: Val, axis: int) -> Val:
    """For every position p of idx, the operand coordinate (p with p[axis] = idx[p]), stacked on a new last dim."""
    t = idx.type.with_shape(tuple(idx.shape) + (1,))
    coords = [b.reshape(idx, t.shape) if d == axis else b.iota(t, d) for d in range(len(idx.shape))]
    return b.concatenate(coords, len(idx.shape))


@lowers("gather")
def gather(b: Builder, node, args, out, attrs):
    x, idx = args
    rank, axis = len(x.shape), attrs["axis"] % len(x.shape)
    idx = wrap_negative(b, idx, x.shape[axis])
    irank = len(idx.shape)
    offset_dims = list(range(axis)) + list(range(axis + irank, rank - 1 + irank))
    sizes = [1 if d == axis else s for d, s in enumerate(x.shape)]
    numbers = (f"#stablehlo.gather<offset_dims = {dims_list(offset_dims)}, collapsed_slice_dims = [{axis}], "
               f"start_index_map = [{axis}], index_vector_dim = {irank}>")
    return b.op1("stablehlo.gather", [x, idx], out[0],
                 {"dimension_numbers": numbers, "slice_sizes": i64_array(sizes), "indices_are_sorted": "false"})


def take_along_axis(b: Builder, x: Val, idx: Val, axis: int) -> Val:
    """out[p] = x[p with p[axis] = idx[p]] for idx of x's rank (non-negative indices)."""
    rank = len(x.shape)
    every = dims_list(range(rank))
    numbers = (f"#stablehlo.gather<offset_dims = [], collapsed_slice_dims = {every}, "
               f"start_index_map = {every}, index_vector_dim = {rank}>")
    return b.op1("stablehlo.gather", [x, full_indices(b, idx, axis)], x.type.with_shape(idx.shape),
                 {"dimension_numbers": numbers, "slice_sizes": i64_array([1] * rank), "indices_are_sorted": "false"})


@lowers("gather_elements")
def gather_elements(b: Builder, node, args, out, attrs):
    x, idx = args
    axis = attrs["axis"] % len(x.shape)
    return take_along_axis(b, x, wrap_negative(b, idx, x.shape[axis]), axis)


SCATTER_COMBINE = {"add": "add", "mul": "multiply", "max": "maximum", "min": "minimum"}


def scatter(b: Builder, x: Val, indices: Val, updates: Val, reduction: str, numbers: str) -> Val:
    """stablehlo.scatter whose body overwrites (reduction "none") or combines."""
    scalar = TensorType(x.dtype, ())

    def body(old: Val, new: Val):
        return [new if reduction == "none" else b.binary(SCATTER_COMBINE[reduction], old, new)]

    return b.op1("stablehlo.scatter", [x, indices, updates], x.type,
                 {"scatter_dimension_numbers": numbers, "indices_are_sorted": "false", "unique_indices": "false"},
                 [([scalar, scalar], body)])


@lowers("scatter_elements")
def scatter_elements(b: Builder, node, args, out, attrs):
    x, idx, upd = args
    rank, axis = len(x.shape), attrs["axis"] % len(x.shape)
    coords = full_indices(b, wrap_negative(b, idx, x.shape[axis]), axis)
    every = dims_list(range(rank))
    numbers = (f"#stablehlo.scatter<update_window_dims = [], inserted_window_dims = {every}, "
               f"scatter_dims_to_operand_dims = {every}, index_vector_dim = {rank}>")
    return scatter(b, x, coords, upd, attrs["reduction"], numbers)


@lowers("tile")
def tile(b: Builder, node, args, out, attrs):
    """Broadcast (d0, d1) to (r0, d0, r1, d1), then merge each pair: numpy's tile."""
    x, reps = args[0], attrs["repeats"]
    spread = [v for r, d in zip(reps, x.shape) for v in (r, d)]
    y = b.broadcast_in_dim(x, spread, range(1, 2 * len(x.shape), 2))
    return b.reshape(y, out[0].shape)


@lowers("full")
def full(b: Builder, node, args, out, attrs):
    return b.full(attrs["value"], out[0])


@lowers("range")
def range_(b: Builder, node, args, out, attrs):
    """start + delta * i, computed in f64 and converted, as the reference does."""
    t = out[0].with_dtype(DType.f64)
    steps = b.binary("multiply", b.iota(t, 0), b.full(attrs["delta"], t))
    return b.convert(b.binary("add", steps, b.full(attrs["start"], t)), out[0].dtype)


@lowers("shape_of")
def shape_of(b: Builder, node, args, out, attrs):
    return b.constant(np.array(args[0].shape[slice(attrs["start"], attrs["end"])], dtype=np.int64))


@lowers("topk")
def topk(b: Builder, node, args, out, attrs):
    """A stable sort of (values, indices) along the axis, then the first k."""
    x = args[0]
    axis = attrs["axis"] % len(x.shape)
    idx = b.iota(TensorType(DType.i64, x.shape), axis)
    direction = "GT" if attrs["largest"] else "LT"
    sv, si = TensorType(x.dtype, ()), TensorType(DType.i64, ())
    values, indices = b.op("stablehlo.sort", [x, idx], [x.type, idx.type],
                           {"dimension": f"{axis} : i64", "is_stable": "true"},
                           [([sv, sv, si, si], lambda a, c, _i, _j: [b.compare(a, c, direction)])])
    k = attrs["k"]
    return [slice_axis(b, values, axis, 0, k), slice_axis(b, indices, axis, 0, k)]


SCANS = {"cumsum": ("add", 0), "cumprod": ("multiply", 1)}


@lowers(*SCANS)
def scan(b: Builder, node, args, out, attrs):
    return running(b, node.op, args[0], attrs["axis"], attrs["exclusive"], attrs["reverse"])


def running(b: Builder, kind: str, x: Val, axis: int, exclusive: bool, from_end: bool) -> Val:
    """cumsum/cumprod as a reduce_window whose window spans the whole axis, padded in front:
    each output combines its prefix."""
    combine, init = SCANS[kind]
    axis %= len(x.shape)
    if from_end:
        x = reverse(b, x, [axis])
    n, rank = x.shape[axis], len(x.shape)
    window = [n if d == axis else 1 for d in range(rank)]
    padding = [[n - 1, 0] if d == axis else [0, 0] for d in range(rank)]
    scalar = TensorType(x.dtype, ())
    y = b.op1("stablehlo.reduce_window", [x, b.scalar(init, x.dtype)], x.type,
              {"window_dimensions": i64_array(window), "window_strides": i64_array([1] * rank),
               "padding": i64_matrix(padding)},
              [([scalar, scalar], lambda p, q: [b.binary(combine, p, q)])])
    if exclusive:  # shift by one along the axis, the identity in front
        low, high = [0] * rank, [0] * rank
        low[axis], high[axis] = 1, -1
        y = b.op1("stablehlo.pad", [y, b.scalar(init, x.dtype)], y.type,
                  {"edge_padding_low": i64_array(low), "edge_padding_high": i64_array(high),
                   "interior_padding": i64_array([0] * rank)})
    return reverse(b, y, [axis]) if from_end else y


@lowers("squeeze", "unsqueeze")
def squeeze(b: Builder, node, args, out, attrs):
    return b.reshape(args[0], out[0].shape)
