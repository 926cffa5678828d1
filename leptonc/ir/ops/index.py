"""Indexing and selection ops: gather_nd, scatter_nd, nonzero, unique, reverse_sequence, trilu,
cumprod. Results whose size depends on the data (nonzero, unique) have "?" dims."""
from __future__ import annotations

import numpy as np

from .. import dims as D
from ..dtypes import DType
from ..indices import check_indices, write_positions
from ..registry import define_op
from ..samples import op_samples
from ..types import TensorType
from .infer import norm_axis, require

Q = D.UNKNOWN
_INDEX = (DType.i64, DType.i32)


def _gather_nd_infer(x: TensorType, idx: TensorType, batch_dims) -> TensorType:
    require(idx.dtype in _INDEX, f"gather_nd indices must be i64 or i32, got {idx.dtype}")
    require(idx.rank >= 1, "gather_nd indices need rank >= 1")
    k = idx.shape[-1]
    require(isinstance(k, int) and batch_dims + k <= x.rank,
            f"gather_nd: index depth {k} with {batch_dims} batch dims does not fit rank {x.rank}")
    return x.with_shape(idx.shape[:-1] + x.shape[batch_dims + k:])


@define_op("gather_nd", arity=2, infer=_gather_nd_infer, attrs={"batch_dims": ("int", 0)}, fusion="injective")
def gather_nd(x, idx, batch_dims):
    """out[b..., i...] = x[b..., idx[b..., i..., :]...] (the first batch_dims dims are shared)."""
    b = batch_dims
    batch = x.shape[:b]
    nb = int(np.prod(batch)) if b else 1
    k = idx.shape[-1]
    check_indices("gather_nd", idx, tuple(range(b, b + k)), x.shape)
    xs = x.reshape((nb,) + x.shape[b:])
    ids = idx.reshape((nb, -1, k)).astype(np.int64)
    ids = np.where(ids < 0, ids + np.array(x.shape[b:b + k], np.int64), ids)
    rows = np.arange(nb)[:, None]
    out = xs[(rows,) + tuple(ids[..., j] for j in range(k))]
    return np.asarray(out.reshape(idx.shape[:-1] + x.shape[b + k:]), order="C")


def _scatter_nd_infer(x: TensorType, idx: TensorType, upd: TensorType, reduction) -> TensorType:
    require(idx.dtype in _INDEX, f"scatter_nd indices must be i64 or i32, got {idx.dtype}")
    require(upd.dtype == x.dtype, "scatter_nd: updates dtype differs from data")
    require(reduction in ("none", "add", "mul", "max", "min"), f"unknown scatter reduction {reduction!r}")
    return x


_UFUNC = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


@define_op("scatter_nd", arity=3, infer=_scatter_nd_infer, attrs={"reduction": ("str", "none")})
def scatter_nd(x, idx, upd, reduction):
    """Copy of x with updates written (or combined) at the index tuples of idx's last dim."""
    out = x.copy()
    k = idx.shape[-1]
    check_indices("scatter_nd", idx, tuple(range(k)), x.shape)
    ids = idx.reshape(-1, k).astype(np.int64)
    ids = np.where(ids < 0, ids + np.array(x.shape[:k], np.int64), ids)
    u = upd.reshape((ids.shape[0],) + x.shape[k:])
    where = tuple(ids[:, j] for j in range(k))
    if reduction == "none":
        out[where] = u
    else:
        _UFUNC[reduction].at(out, where, u)
    return out


@define_op("nonzero", infer=lambda t: TensorType(DType.i64, (t.rank, Q)))
def nonzero(x):
    """The indices of the nonzero elements, one column per element (shape [rank, count])."""
    return np.array(np.nonzero(x), dtype=np.int64).reshape(x.ndim, -1)


def _unique_infer(t: TensorType, axis, sorted):
    if axis is None:
        y, n = (Q,), t.numel
    else:
        ax = norm_axis(axis, t.rank)
        y, n = t.shape[:ax] + (Q,) + t.shape[ax + 1:], t.shape[ax]
    return [t.with_shape(y), TensorType(DType.i64, (Q,)), TensorType(DType.i64, (n,)),
            TensorType(DType.i64, (Q,))]


@define_op("unique", infer=_unique_infer, attrs={"axis": ("any", None), "sorted": ("bool", True)})
def unique(x, axis, sorted):
    """The distinct elements (or slices along axis), the index of each one's first occurrence, the
    index into them of every input element, and their counts; sorted, or in order of appearance."""
    src = x.reshape(-1) if axis is None else x
    y, first, inverse, counts = np.unique(src, return_index=True, return_inverse=True, return_counts=True,
                                          axis=None if axis is None else axis % x.ndim)
    if not sorted:
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        y = np.take(y, order, axis=0 if axis is None else axis % x.ndim)
        first, counts, inverse = first[order], counts[order], rank[inverse.reshape(-1)]
    return (np.asarray(y, order="C"), first.astype(np.int64), inverse.reshape(-1).astype(np.int64),
            counts.astype(np.int64))


def _reverse_sequence_infer(x: TensorType, lens: TensorType, batch_axis, time_axis) -> TensorType:
    require(lens.dtype.is_int and lens.rank == 1, "reverse_sequence lengths must be a 1-D integer tensor")
    norm_axis(batch_axis, x.rank)
    norm_axis(time_axis, x.rank)
    return x


@define_op("reverse_sequence", arity=2, infer=_reverse_sequence_infer,
           attrs={"batch_axis": ("int", 1), "time_axis": ("int", 0)})
def reverse_sequence(x, lens, batch_axis, time_axis):
    """Reverse the first lens[b] steps along time_axis of each batch entry b."""
    xt = np.moveaxis(x, (batch_axis, time_axis), (0, 1))
    t = np.arange(xt.shape[1])[None, :]
    ln = lens.astype(np.int64)[:, None]
    src = np.where(t < ln, ln - 1 - t, t)
    out = np.take_along_axis(xt, src.reshape(src.shape + (1,) * (xt.ndim - 2)), axis=1)
    return np.asarray(np.moveaxis(out, (0, 1), (batch_axis, time_axis)), order="C")


def _trilu_infer(x: TensorType, *k, upper, diagonal) -> TensorType:
    require(x.rank >= 2, "trilu needs rank >= 2")
    if k:
        require(k[0].dtype.is_int and k[0].numel == 1, "trilu's k operand must be one integer")
    return x


@define_op("trilu", arity=(1, 2), infer=_trilu_infer, attrs={"upper": ("bool", True), "diagonal": ("int", 0)})
def trilu(x, *k, upper, diagonal):
    """The upper (or lower) triangle of the last two dims from diagonal k (k operand, else attribute)."""
    kk = int(np.asarray(k[0]).reshape(-1)[0]) if k else diagonal
    return np.triu(x, kk) if upper else np.tril(x, kk)


def _cumprod_infer(t: TensorType, axis, exclusive, reverse) -> TensorType:
    norm_axis(axis, t.rank)
    return t


@define_op("cumprod", infer=_cumprod_infer,
           attrs={"axis": "int", "exclusive": ("bool", False), "reverse": ("bool", False)})
def cumprod(x, axis, exclusive, reverse):
    """Running product along axis, optionally exclusive and/or from the end."""
    y = np.flip(x, axis) if reverse else x
    out = np.cumprod(y, axis=axis, dtype=x.dtype)
    if exclusive:
        out = np.concatenate([np.ones_like(np.take(out, [0], axis=axis)),
                              np.take(out, np.arange(out.shape[axis] - 1), axis=axis)], axis=axis)
    return np.flip(out, axis) if reverse else out


def _tensor_scatter_infer(cache: TensorType, upd: TensorType, idx: TensorType, axis, mode) -> TensorType:
    require(upd.dtype == cache.dtype and upd.rank == cache.rank, "tensor_scatter: update must match the cache's dtype and rank")
    require(idx.dtype is DType.i64 and idx.rank == 1, "tensor_scatter write indices must be a 1-D i64 tensor")
    require(mode in ("linear", "circular"), f"unknown tensor_scatter mode {mode!r}")
    require(0 < norm_axis(axis, cache.rank), "tensor_scatter axis must not be the batch axis")
    return cache


@define_op("tensor_scatter", arity=3, infer=_tensor_scatter_infer, attrs={"axis": ("int", -2), "mode": ("str", "linear")})
def tensor_scatter(cache, upd, idx, axis, mode):
    """Copy of the cache with each batch entry's update written along axis from its write index
    (wrapping around with mode "circular")."""
    axis %= cache.ndim
    out = cache.copy()
    steps = upd.shape[axis]
    if mode == "linear":
        check_indices("tensor_scatter", write_positions(idx, steps), (axis,), cache.shape, wraps=False)
    pos = idx.reshape((-1,) + (1,) * (cache.ndim - 1)) + \
        np.arange(steps).reshape((1,) * axis + (steps,) + (1,) * (cache.ndim - axis - 1))
    if mode == "circular":
        pos = pos % cache.shape[axis]
    np.put_along_axis(out, np.broadcast_to(pos, upd.shape), upd, axis)
    return out


@op_samples
def _samples(s):
    return {
        "gather_nd": [
            s(s.f32(4, 5, 3), s.ints(2, 6, 2, low=-4, high=4)),
            s(s.f32(2, 4, 5), s.ints(2, 3, 1, low=0, high=4, dtype=np.int32), batch_dims=1),
        ],
        "scatter_nd": [
            s(s.f32(4, 5), np.array([[0, 1], [3, -1]]), s.f32(2)),
            s(s.f32(4, 5), np.array([[1], [1]]), s.f32(2, 5), reduction="add"),
        ],
        "reverse_sequence": [
            s(s.f32(5, 3, 2), np.array([5, 2, 0])),
            s(s.f32(3, 4), np.array([1, 4, 2], np.int32), batch_axis=0, time_axis=1),
        ],
        "trilu": [s(s.f32(2, 4, 5)), s(s.f32(4, 5), upper=False, diagonal=-1), s(s.f32(4, 5), np.array([2]))],
        "cumprod": [
            s(s.f32(3, 5, low=0.5, high=1.5), axis=1),
            s(s.ints(4, 3, low=1, high=3), axis=0, exclusive=True, reverse=True),
        ],
        "tensor_scatter": [
            s(s.f32(2, 6, 3), s.f32(2, 2, 3), np.array([1, 4])),
            s(s.f32(2, 5, 3), s.f32(2, 3, 3), np.array([3, 0]), axis=1, mode="circular"),
        ],
        "nonzero": [s(np.array([[0.0, 1.5, 0.0], [-2.0, 0.0, 3.0]], np.float32))],
        "unique": [s(np.array([3, 1, 3, 2, 1]), sorted=True), s(np.array([[1, 2], [1, 2], [0, 5]]), axis=0)],
    }
