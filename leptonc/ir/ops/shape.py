"""Layout and data-movement ops: const, reshape, transpose, broadcast_to, concat, split, slice,
pad, gather/scatter, tile, full, range, shape_of, topk, cumsum.

Shapes in attributes are explicit: frontends resolve -1 and 0 before they build a reshape.
"""
from __future__ import annotations

import numpy as np

from .. import dims as D
from ..dtypes import DType
from ..errors import IRError
from ..indices import check_indices
from ..registry import PURE, Attr, define_op
from ..samples import op_samples
from ..types import TensorType
from .infer import PAD_MODES, broadcast_shapes, norm_axes, norm_axis, require, require_same, same_dtype

VIEW = PURE | {"view"}
BIG = 2 ** 62


def _const_infer(**_):
    raise IRError("a const's type comes from its array in graph.constants")


@define_op("const", arity=0, infer=_const_infer, attrs={"name": "str"})
def const(name):
    """A named constant of the graph (its array lives in graph.constants)."""
    raise IRError("const is evaluated by the interpreter from graph.constants")


def _reshape_infer(t: TensorType, shape) -> TensorType:
    require(all(d == D.UNKNOWN or not isinstance(d, int) or d >= 0 for d in shape),
            f"reshape target {list(shape)} has a negative dim (resolve -1 before building the op)")
    have, want = D.product(t.shape), D.product(shape)
    require_same(have, want, f"cannot reshape {t} ({have} elements) to {list(shape)} ({want} elements)")
    return t.with_shape(shape)


@define_op("reshape", infer=_reshape_infer, attrs={"shape": "shape"}, traits=VIEW, precision="follow")
def reshape(x, shape):
    """Same elements in row-major order, new shape."""
    return x.reshape(shape)


def resolve_reshape(in_shape, target, allow_zero: bool = False) -> tuple:
    """ONNX/torch reshape targets (0 copies a dim, -1 infers one) as explicit dims."""
    out = [in_shape[i] if (d == 0 and not allow_zero) else d for i, d in enumerate(target)]
    if -1 in out:
        known = D.product(d for d in out if d != -1)
        out[out.index(-1)] = D.divide_exact(D.product(in_shape), known)
    return tuple(out)


def _transpose_infer(t: TensorType, perm) -> TensorType:
    require(sorted(perm) == list(range(t.rank)), f"perm {list(perm)} is not a permutation of rank {t.rank}")
    return t.with_shape([t.shape[p] for p in perm])


define_op("transpose", infer=_transpose_infer, attrs={"perm": "ints"}, traits=VIEW, precision="follow")(
    lambda x, perm: np.transpose(x, perm))


def _broadcast_to_infer(t: TensorType, shape) -> TensorType:
    require(len(shape) >= t.rank, f"cannot broadcast rank {t.rank} to rank {len(shape)}")
    for d, s in zip(t.shape, shape[len(shape) - t.rank:]):
        if d != 1:
            require_same(d, s, f"cannot broadcast {t} to {list(shape)}")
    return t.with_shape(shape)


define_op("broadcast_to", infer=_broadcast_to_infer, attrs={"shape": "shape"}, traits=VIEW, fusion="broadcast",
          precision="follow")(
    lambda x, shape: np.array(np.broadcast_to(x, shape)))  # np.array, not ascontiguousarray: keeps rank 0


def _concat_infer(*ts: TensorType, axis) -> TensorType:
    require(len({t.rank for t in ts}) == 1, "concat operands differ in rank")
    ax = norm_axis(axis, ts[0].rank)
    dtype = same_dtype(*ts)
    shape = list(ts[0].shape)
    for t in ts[1:]:
        for i, (a, b) in enumerate(zip(shape, t.shape)):
            if i != ax:
                require_same(a, b, f"concat operands differ in dim {i}: {a} vs {b}")
                if not isinstance(a, int) and isinstance(b, int) or a == D.UNKNOWN:
                    shape[i] = b  # the operands agree at run time: keep the better known size
        shape[ax] = D.add(shape[ax], t.shape[ax])
    return TensorType(dtype, shape)


define_op("concat", arity=(1, None), infer=_concat_infer, attrs={"axis": "int"}, fusion="injective",
          precision="follow")(
    lambda *xs, axis: np.concatenate(xs, axis=axis))


def _split_infer(t: TensorType, axis, sizes) -> list:
    ax = norm_axis(axis, t.rank)
    if isinstance(t.shape[ax], int):
        require(sum(sizes) == t.shape[ax], f"split sizes {list(sizes)} do not add up to dim {t.shape[ax]}")
    return [t.with_shape(t.shape[:ax] + (s,) + t.shape[ax + 1:]) for s in sizes]


@define_op("split", infer=_split_infer, attrs={"axis": "int", "sizes": "ints"}, fusion="injective",
           precision="follow")
def split(x, axis, sizes):
    """Cut x along axis into pieces of the given sizes."""
    return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


def _slice_dim(d, start, end, step):
    if isinstance(d, int):
        return len(range(*slice(start, end, step).indices(d)))
    if step == 1 and start >= 0 and end >= BIG:
        return D.sub(d, start)
    if step == 1 and start >= 0 and end < 0:
        return D.sub(d, start - end)
    if step == 1 and 0 <= start <= end < BIG:
        return end - start  # takes d >= end for granted: _slice_needs makes every runtime check it
    return D.UNKNOWN


def _slice_needs(types, starts, ends, axes, steps) -> list:
    """The symbolic axes that _slice_dim takes to be at least `end` long."""
    (t,) = types
    out = []
    for s, e, a, st in zip(starts, ends, norm_axes(axes, t.rank), steps):
        d = t.shape[a]
        if isinstance(d, str) and d != D.UNKNOWN and st == 1 and 0 <= s <= e < BIG:
            out.append((0, a, D.sub(d, e), f"a slice to {e}"))
    return out


def _slice_infer(t: TensorType, starts, ends, axes, steps) -> TensorType:
    require(len(starts) == len(ends) == len(axes) == len(steps), "slice starts/ends/axes/steps differ in length")
    require(all(s != 0 for s in steps), "slice step 0")
    shape = list(t.shape)
    for s, e, a, st in zip(starts, ends, norm_axes(axes, t.rank), steps):
        shape[a] = _slice_dim(shape[a], s, e, st)
    return t.with_shape(shape)


@define_op("slice", infer=_slice_infer, traits=VIEW, precision="follow", needs=_slice_needs,
           attrs={"starts": "ints", "ends": "ints", "axes": "ints", "steps": "ints"})
def slice_(x, starts, ends, axes, steps):
    """x[start:end:step] on each listed axis (Python slice semantics, ends clamped)."""
    index = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        index[a] = slice(s, e, st)
    return np.array(x[tuple(index)])  # a copy that keeps rank 0


def _pad_infer(t: TensorType, pads, mode, value) -> TensorType:
    require(len(pads) == 2 * t.rank, f"pad needs {2 * t.rank} pads for rank {t.rank}, got {len(pads)}")
    for i, d in enumerate(t.shape):
        kept = D.add(d, min(pads[i], 0) + min(pads[i + t.rank], 0))
        require(mode == "constant" or max(pads[i], pads[i + t.rank]) <= 0 or not D.same(kept, 0),
                f"pad mode {mode!r} cannot pad axis {i}, which holds no elements")
    return t.with_shape([D.add(d, pads[i] + pads[i + t.rank]) for i, d in enumerate(t.shape)])


@define_op("pad", infer=_pad_infer, fusion="injective", precision="follow",
           attrs={"pads": "ints", "mode": Attr("str", "constant", choices=PAD_MODES), "value": ("float", 0.0)})
def pad(x, pads, mode, value):
    """Pad (pads = all begins then all ends; negative pads crop) with a constant, reflect, edge or wrap."""
    r = x.ndim
    if r == 0:
        return x.copy()
    crop = tuple(slice(max(-pads[i], 0), x.shape[i] - max(-pads[i + r], 0)) for i in range(r))
    x = x[crop]
    widths = [(max(pads[i], 0), max(pads[i + r], 0)) for i in range(r)]
    if mode == "constant":
        return np.pad(x, widths, mode="constant", constant_values=np.array(value).astype(x.dtype))
    return np.pad(x, widths, mode={"reflect": "reflect", "edge": "edge", "wrap": "wrap"}[mode])


def _gather_infer(t: TensorType, idx: TensorType, axis) -> TensorType:
    require(idx.dtype in (DType.i64, DType.i32), f"gather indices must be i64 or i32, got {idx.dtype}")
    ax = norm_axis(axis, t.rank)
    return t.with_shape(t.shape[:ax] + idx.shape + t.shape[ax + 1:])


@define_op("gather", arity=2, infer=_gather_infer, attrs={"axis": ("int", 0)}, fusion="injective",
           precision="follow")
def gather(x, idx, axis):
    """Take slices of x along axis at the indices (negative indices count from the end; ir/indices.py)."""
    check_indices("gather", idx, (axis % x.ndim,), x.shape)
    idx = np.where(idx < 0, idx + x.shape[axis], idx)
    return np.take(x, idx, axis=axis)


def _gather_elements_infer(t: TensorType, idx: TensorType, axis) -> TensorType:
    require(idx.rank == t.rank, "gather_elements: indices must have the data's rank")
    norm_axis(axis, t.rank)
    return t.with_shape(idx.shape)


@define_op("gather_elements", arity=2, infer=_gather_elements_infer, attrs={"axis": ("int", 0)},
           fusion="injective")
def gather_elements(x, idx, axis):
    """out[i][j][k] = x[idx[i][j][k]][j][k] for axis 0, and so on."""
    check_indices("gather_elements", idx, (axis % x.ndim,), x.shape)
    idx = np.where(idx < 0, idx + x.shape[axis], idx)
    return np.take_along_axis(x, idx, axis=axis)


def _scatter_elements_infer(t: TensorType, idx: TensorType, upd: TensorType, axis, reduction) -> TensorType:
    require(reduction in ("none", "add", "mul", "max", "min"), f"unknown scatter reduction {reduction!r}")
    require(idx.rank == t.rank == upd.rank, "scatter_elements: data, indices and updates differ in rank")
    require(upd.dtype is t.dtype, "scatter_elements: updates dtype differs from data")
    norm_axis(axis, t.rank)
    return t


_UFUNC = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


@define_op("scatter_elements", arity=3, infer=_scatter_elements_infer,
           attrs={"axis": ("int", 0), "reduction": ("str", "none")})
def scatter_elements(x, idx, upd, axis, reduction):
    """Copy of x with updates written (or combined) at the positions indices give along axis."""
    check_indices("scatter_elements", idx, (axis % x.ndim,), x.shape)
    out = x.copy()
    idx = np.where(idx < 0, idx + x.shape[axis], idx)
    grid = list(np.indices(idx.shape, sparse=True))
    grid[axis] = idx
    if reduction == "none":
        out[tuple(grid)] = upd
    else:
        _UFUNC[reduction].at(out, tuple(np.broadcast_arrays(*grid)), upd)
    return out


def _tile_infer(t: TensorType, repeats) -> TensorType:
    require(len(repeats) == t.rank, f"tile needs {t.rank} repeats, got {len(repeats)}")
    return t.with_shape([D.mul(d, r) for d, r in zip(t.shape, repeats)])


define_op("tile", infer=_tile_infer, attrs={"repeats": "ints"}, fusion="injective")(
    lambda x, repeats: np.tile(x, repeats))


@define_op("full", arity=0, infer=lambda shape, value, dtype: TensorType(dtype, shape),
           attrs={"shape": "shape", "value": "float", "dtype": "dtype"})
def full(shape, value, dtype):
    """A tensor of the given shape filled with one value."""
    return np.full(shape, value, dtype=dtype.numpy)


def _range_infer(start, limit, delta, dtype) -> TensorType:
    require(delta != 0, "range delta 0")
    return TensorType(dtype, (max(int(np.ceil((limit - start) / delta)), 0),))


@define_op("range", arity=0, infer=_range_infer,
           attrs={"start": "float", "limit": "float", "delta": "float", "dtype": "dtype"})
def range_(start, limit, delta, dtype):
    """start, start+delta, ... below limit."""
    n = max(int(np.ceil((limit - start) / delta)), 0)
    return (start + delta * np.arange(n, dtype=np.float64)).astype(dtype.numpy)


def _shape_of_infer(t: TensorType, start, end) -> TensorType:
    s, e, _ = slice(start, end if end is not None else None).indices(t.rank)
    return TensorType(DType.i64, (max(e - s, 0),))


@define_op("shape_of", infer=_shape_of_infer, attrs={"start": ("int", 0), "end": ("any", None)},
           traits=PURE | {"shape"})
def shape_of(x, start, end):
    """The shape of x (dims start..end) as an i64 vector."""
    return np.array(x.shape[slice(start, end)], dtype=np.int64)


def _topk_infer(t: TensorType, k, axis, largest, sorted) -> list:
    ax = norm_axis(axis, t.rank)
    if isinstance(t.shape[ax], int):
        require(0 <= k <= t.shape[ax], f"topk k={k} exceeds dim {t.shape[ax]}")
    shape = t.shape[:ax] + (k,) + t.shape[ax + 1:]
    return [t.with_shape(shape), TensorType(DType.i64, shape)]


@define_op("topk", infer=_topk_infer,
           attrs={"k": Attr("int", low=0), "axis": ("int", -1), "largest": ("bool", True), "sorted": ("bool", True)})
def topk(x, k, axis, largest, sorted):
    """The k largest (or smallest) values along axis and their indices; ties keep the lower index."""
    key = -x if largest and x.dtype.kind != "u" else x
    if largest and x.dtype.kind == "u":
        key = np.iinfo(x.dtype).max - x
    idx = np.argsort(key, axis=axis, kind="stable")
    idx = np.take(idx, np.arange(k), axis=axis)
    return np.take_along_axis(x, idx, axis=axis), idx.astype(np.int64)


def _cumsum_infer(t: TensorType, axis, exclusive, reverse) -> TensorType:
    norm_axis(axis, t.rank)
    return t


@define_op("cumsum", infer=_cumsum_infer,
           attrs={"axis": "int", "exclusive": ("bool", False), "reverse": ("bool", False)})
def cumsum(x, axis, exclusive, reverse):
    """Running sum along axis, optionally exclusive and/or from the end."""
    y = np.flip(x, axis) if reverse else x
    out = np.cumsum(y, axis=axis, dtype=x.dtype)
    if exclusive:
        out = np.concatenate([np.zeros_like(np.take(out, [0], axis=axis)),
                              np.take(out, np.arange(out.shape[axis] - 1), axis=axis)], axis=axis)
    return np.flip(out, axis) if reverse else out


@op_samples
def _samples(s):
    return {
        "reshape": [s(s.f32(2, 3, 4), shape=(6, 4))],
        "transpose": [s(s.f32(2, 3, 4), perm=(2, 0, 1))],
        "broadcast_to": [s(s.f32(3, 1), shape=(2, 3, 4))],
        "concat": [s(s.f32(2, 3), s.f32(2, 1), s.f32(2, 2), axis=1), s(s.ints(1, 3), s.ints(2, 3), axis=-2)],
        "split": [s(s.f32(6, 4), axis=0, sizes=(1, 2, 3))],
        "slice": [
            s(s.f32(6, 7), starts=(1, 0), ends=(5, 2 ** 62), axes=(0, 1), steps=(2, 1)),
            s(s.f32(6, 7), starts=(-1,), ends=(-2 ** 62,), axes=(1,), steps=(-2,)),
            s(s.f32(6, 7), starts=(4,), ends=(1,), axes=(0,), steps=(-1,)),
            s(s.f32(6, 7), starts=(2,), ends=(-1,), axes=(-1,), steps=(1,)),
        ],
        "pad": [
            s(s.f32(3, 4), pads=(1, 0, 2, 3)),
            s(s.f32(3, 4), pads=(1, -1, 0, 2), value=1.5),
            s(s.f32(3, 4), pads=(2, 1, 1, 3), mode="reflect"),
            s(s.f32(2, 3), pads=(0, 5, 0, 4), mode="reflect"),
            s(s.f32(3, 4), pads=(2, 1, 1, 3), mode="edge"),
            s(s.f32(3, 4), pads=(2, -1, 1, 3), mode="wrap"),
        ],
        "gather": [
            s(s.f32(5, 3), s.ints(2, 4, low=-5, high=5), axis=0),
            s(s.f32(2, 5, 3), s.ints(4, low=-5, high=5, dtype=np.int32), axis=1),
            s(s.f32(5, 3), s.ints(low=0, high=5), axis=0),
        ],
        "gather_elements": [
            s(s.f32(3, 4), s.ints(3, 2, low=-4, high=4), axis=1),
            s(s.f32(3, 4), s.ints(2, 4, low=0, high=3), axis=0),
        ],
        "scatter_elements": [
            s(s.f32(3, 4), np.array([[0, 2], [1, 3], [3, 0]]), s.f32(3, 2), axis=1),
            s(s.f32(3, 4), np.array([[0, 0], [1, 1], [3, 3]]), s.f32(3, 2), axis=1, reduction="add"),
            s(s.f32(3, 4), np.array([[0, 1, 2, 0]]), s.f32(1, 4), axis=0, reduction="max"),
        ],
        "tile": [s(s.f32(2, 3), repeats=(2, 3)), s(s.ints(2, 1, 2), repeats=(1, 4, 2))],
        "full": [s(shape=(2, 3), value=1.5, dtype="f32"), s(shape=(4,), value=7, dtype="i64")],
        "range": [
            s(start=1.0, limit=10.0, delta=2.5, dtype="f32"),
            s(start=5.0, limit=0.0, delta=-1.0, dtype="i64"),
        ],
        "shape_of": [s(s.f32(2, 3, 4)), s(s.f32(2, 3, 4), start=1, end=-1)],
        "topk": [
            s(s.f32(3, 6), k=3),
            s(s.f32(5, 2), k=2, axis=0, largest=False),
            s(np.array([[1, 2, 2, 1, 3]], np.float32), k=4),
        ],
        "cumsum": [
            s(s.f32(3, 5), axis=1),
            s(s.ints(4, 3), axis=0, exclusive=True),
            s(s.f32(3, 5), axis=-1, reverse=True, exclusive=True),
        ],
    }
