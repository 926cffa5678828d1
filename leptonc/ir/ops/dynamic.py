"""Dynamic variants of layout ops: the shape-like operands (a target shape, slice bounds, pads,
axes, k, ...) are run-time tensors instead of attributes.

A frontend emits these only where such an operand is a genuine run-time input (an ONNX Reshape
whose shape is a graph input, say); known values become the static ops' attributes instead.
The results keep the rank where the operand types fix it and have "?" dims.
"""
from __future__ import annotations

import numpy as np

from .. import dims as D
from ..dtypes import DType
from ..registry import PURE, Attr, define_op
from ..samples import op_samples
from ..types import TensorType
from .infer import PAD_MODES, require
from .reduction import REDUCE_FNS

Q = D.UNKNOWN

# Each dynamic op (here and in image.py, signal.py, nn.py): the operands that its static form takes as
# attributes, and the static op(s) it becomes once they are known (passes/static_forms.py). A target that
# plans sizes before run time specializes a graph on the values of these operands (runtime/specialized.py).
SHAPE_OPERANDS: dict[str, tuple[int, ...]] = {
    "reshape_dynamic": (1,), "expand_dynamic": (1,), "tile_dynamic": (1,), "slice_dynamic": (1, 2, 3, 4),
    "pad_dynamic": (1, 2, 3), "full_dynamic": (0,), "range_dynamic": (0, 1, 2), "topk_dynamic": (1,),
    "squeeze_dynamic": (1,), "unsqueeze_dynamic": (1,), "split_dynamic": (1,), "reduce_dynamic": (1,),
    "cumulative_dynamic": (1,), "resize_dynamic": (1, 2, 3), "affine_grid_dynamic": (1,),
    "col2im_dynamic": (1, 2), "dft_dynamic": (1, 2), "stft_dynamic": (1, 3),
}
# The operands that set result sizes: the shape-like operands less pad's fill value and cumulative's axis,
# and every operand of mel_weight_matrix (signal.py). A target that needs every size before run time
# (stablehlo) needs these known; the others it reads at run time.
SIZE_OPERANDS: dict[str, tuple[int, ...]] = {
    **{op: tuple(i for i in ops if (op, i) not in {("pad_dynamic", 2), ("cumulative_dynamic", 1)})
       for op, ops in SHAPE_OPERANDS.items()},
    "mel_weight_matrix": (0, 1, 2, 3, 4),
}
STATIC_OPS: dict[str, tuple[str, ...]] = {
    "reshape_dynamic": ("reshape",), "expand_dynamic": ("broadcast_to",), "tile_dynamic": ("tile",),
    "slice_dynamic": ("slice",), "pad_dynamic": ("pad",), "full_dynamic": ("full",), "range_dynamic": ("range",),
    "topk_dynamic": ("topk",), "squeeze_dynamic": ("reshape",), "unsqueeze_dynamic": ("reshape",),
    "split_dynamic": ("split",), "reduce_dynamic": tuple(f"reduce_{k}" for k in REDUCE_FNS),
    "cumulative_dynamic": ("cumsum", "cumprod"), "resize_dynamic": ("resize",),
    "affine_grid_dynamic": ("affine_grid",), "col2im_dynamic": ("col2im",), "dft_dynamic": ("dft",),
    "stft_dynamic": ("stft",),
}


def checked_axes(axes, rank: int, what: str) -> tuple:
    """Axes in [-rank, rank) made non-negative; any other is a ValueError naming `what`."""
    bad = [a for a in axes if not -rank <= a < rank]
    if bad:
        raise ValueError(f"{what} {bad[0]} is out of range for rank {rank}")
    return tuple(a % rank for a in axes)


def _ints(a) -> tuple:
    return tuple(int(v) for v in np.asarray(a).reshape(-1))


def _vector_len(t: TensorType, what: str):
    require(t.dtype.is_int, f"{what} must be an integer tensor, got {t.dtype}")
    require(t.rank == 1, f"{what} must be a 1-D tensor, got rank {t.rank}")
    n = t.shape[0]
    require(isinstance(n, int), f"{what} must have a static length, got {t}")
    return n


def _unknown(t: TensorType, rank: int, dtype: DType | None = None) -> TensorType:
    return TensorType(dtype or t.dtype, (Q,) * rank)


def resolve_target(in_shape, target, allowzero: bool) -> tuple:
    """ONNX reshape semantics on concrete sizes: 0 copies the input dim (unless allowzero), -1 infers."""
    out = [in_shape[i] if d == 0 and not allowzero else d for i, d in enumerate(target)]
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1]))
        out[out.index(-1)] = int(np.prod(in_shape)) // known if known else 0
    return tuple(out)


@define_op("reshape_dynamic", arity=2, attrs={"allowzero": ("bool", False)}, traits=PURE | {"view"},
           infer=lambda x, s, allowzero: _unknown(x, _vector_len(s, "reshape_dynamic shape")))
def reshape_dynamic(x, shape, allowzero):
    """Reshape to a run-time target (ONNX semantics: 0 copies a dim unless allowzero, -1 infers one)."""
    return x.reshape(resolve_target(x.shape, _ints(shape), allowzero))


@define_op("expand_dynamic", arity=2,
           infer=lambda x, s: _unknown(x, max(x.rank, _vector_len(s, "expand_dynamic shape"))))
def expand_dynamic(x, shape):
    """Broadcast x against a run-time shape (numpy rules: the result takes the larger of each dim)."""
    return np.asarray(np.broadcast_to(x, np.broadcast_shapes(x.shape, _ints(shape))), order="C")


def _tile_infer(x, r):
    require(_vector_len(r, "tile_dynamic repeats") == x.rank, "tile_dynamic needs one repeat per dim")
    return _unknown(x, x.rank)


define_op("tile_dynamic", arity=2, infer=_tile_infer)(lambda x, repeats: np.tile(x, _ints(repeats)))


def _slice_infer(x, starts, ends, axes, steps):
    n = _vector_len(starts, "slice_dynamic starts")
    for t, what in ((ends, "ends"), (axes, "axes"), (steps, "steps")):
        require(_vector_len(t, f"slice_dynamic {what}") == n, "slice_dynamic operands differ in length")
    return _unknown(x, x.rank)


@define_op("slice_dynamic", arity=5, infer=_slice_infer, traits=PURE | {"view"})
def slice_dynamic(x, starts, ends, axes, steps):
    """x[start:end:step] on each listed axis, bounds given at run time (Python slice semantics)."""
    index = [slice(None)] * x.ndim
    for s, e, a, st in zip(_ints(starts), _ints(ends), checked_axes(_ints(axes), x.ndim, "slice axis"), _ints(steps)):
        if st == 0:
            raise ValueError("slice step 0")
        index[a] = slice(s, e, st)
    return np.asarray(x[tuple(index)], order="C")


def _pad_infer(x, pads, value, axes, mode):
    _vector_len(pads, "pad_dynamic pads")
    _vector_len(axes, "pad_dynamic axes")
    require(value.rank == 0 or value.numel == 1, "pad_dynamic value must be one element")
    return _unknown(x, x.rank)


@define_op("pad_dynamic", arity=4, infer=_pad_infer, attrs={"mode": Attr("str", "constant", choices=PAD_MODES)})
def pad_dynamic(x, pads, value, axes, mode):
    """Pad the listed axes (pads = begins then ends, negative pads crop) with run-time amounts."""
    from .shape import pad

    pads, axes = _ints(pads), checked_axes(_ints(axes), x.ndim, "pad axis")
    full = [0] * (2 * x.ndim)
    for i, a in enumerate(axes):
        full[a], full[a + x.ndim] = pads[i], pads[i + len(axes)]
    v = np.asarray(value).reshape(-1)[0].item() if np.asarray(value).size else 0
    return pad(x, tuple(full), mode, v)


@define_op("full_dynamic", arity=1, attrs={"value": ("any", 0), "dtype": "dtype"},
           infer=lambda s, value, dtype: TensorType(dtype, (Q,) * _vector_len(s, "full_dynamic shape")))
def full_dynamic(shape, value, dtype):
    """A tensor of a run-time shape filled with one value."""
    return np.full(_ints(shape), value, dtype=dtype.numpy)


def _range_infer(start, limit, delta):
    require(all(t.numel == 1 for t in (start, limit, delta)), "range_dynamic operands must be single values")
    require(start.dtype == limit.dtype == delta.dtype, "range_dynamic operands differ in dtype")
    return TensorType(start.dtype, (Q,))


@define_op("range_dynamic", arity=3, infer=_range_infer)
def range_dynamic(start, limit, delta):
    """start, start + delta, ... up to (not including) limit; n = max(ceil((limit - start) / delta), 0)."""
    s, d = start.reshape(()), delta.reshape(())
    n = max(int(np.ceil((float(limit.reshape(())) - float(s)) / float(d))), 0)
    return (s + d * np.arange(n).astype(s.dtype)).astype(start.dtype)


def _topk_infer(x, k, axis, largest, sorted):
    require(k.dtype.is_int and k.numel == 1, "topk_dynamic k must be one integer")
    shape = list(x.shape)
    shape[axis % x.rank] = Q
    return [x.with_shape(shape), TensorType(DType.i64, shape)]


@define_op("topk_dynamic", arity=2, infer=_topk_infer,
           attrs={"axis": ("int", -1), "largest": ("bool", True), "sorted": ("bool", True)})
def topk_dynamic(x, k, axis, largest, sorted):
    """topk with a run-time k."""
    from .shape import topk

    k = int(np.asarray(k).reshape(-1)[0])
    (axis,) = checked_axes((axis,), x.ndim, "topk axis")
    if not 0 <= k <= x.shape[axis]:
        raise ValueError(f"topk k={k} is outside [0, {x.shape[axis]}]")
    return topk(x, k, axis, largest, sorted)


define_op("squeeze_dynamic", arity=2, traits=PURE | {"view"},
          infer=lambda x, a: _unknown(x, x.rank - _vector_len(a, "squeeze_dynamic axes")))(
    lambda x, axes: np.squeeze(x, checked_axes(_ints(axes), x.ndim, "squeeze axis")))


@define_op("unsqueeze_dynamic", arity=2, traits=PURE | {"view"},
           infer=lambda x, a: _unknown(x, x.rank + _vector_len(a, "unsqueeze_dynamic axes")))
def unsqueeze_dynamic(x, axes):
    """Insert size-1 dims at run-time axes (of the result)."""
    rank = x.ndim + len(_ints(axes))
    return np.expand_dims(x, tuple(sorted(checked_axes(_ints(axes), rank, "unsqueeze axis"))))


def _split_infer(x, sizes, axis, num):
    require(_vector_len(sizes, "split_dynamic sizes") == num, f"split_dynamic makes {num} pieces")
    shape = list(x.shape)
    shape[axis % x.rank] = Q
    return [x.with_shape(shape)] * num


@define_op("split_dynamic", arity=2, infer=_split_infer, attrs={"axis": "int", "num": "int"})
def split_dynamic(x, sizes, axis, num):
    """Cut x along axis into pieces of run-time sizes (non-negative, adding up to the dim)."""
    sizes = _ints(sizes)
    (axis,) = checked_axes((axis,), x.ndim, "split axis")
    if min(sizes, default=0) < 0 or sum(sizes) != x.shape[axis]:
        raise ValueError(f"split sizes {list(sizes)} do not cut dim {axis} of size {x.shape[axis]}")
    return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


def _reduce_infer(x, axes, kind, keepdims, noop_with_empty_axes):
    n = _vector_len(axes, "reduce_dynamic axes")
    require(kind in REDUCE_FNS, f"unknown reduction {kind!r}")
    if keepdims or (n == 0 and noop_with_empty_axes):
        return _unknown(x, x.rank)
    return _unknown(x, 0 if n == 0 else x.rank - n)


@define_op("reduce_dynamic", arity=2, infer=_reduce_infer, traits=PURE | {"reduction"}, fusion="opaque",
           attrs={"kind": "str", "keepdims": ("bool", True), "noop_with_empty_axes": ("bool", False)})
def reduce_dynamic(x, axes, kind, keepdims, noop_with_empty_axes):
    """reduce_<kind> over run-time axes; no axes reduces everything (or nothing, if noop_with_empty_axes)."""
    axes = tuple(sorted(set(checked_axes(_ints(axes), max(x.ndim, 1), "reduce axis"))))
    if not axes:
        if noop_with_empty_axes:
            return x
        axes = tuple(range(x.ndim))
    return REDUCE_FNS[kind](x, axes, keepdims)


def _cumulative_infer(x, axis, kind, exclusive, reverse):
    require(axis.dtype.is_int and axis.numel == 1, "cumulative_dynamic axis must be one integer")
    require(kind in ("sum", "prod"), f"unknown cumulative kind {kind!r}")
    return x


@define_op("cumulative_dynamic", arity=2, infer=_cumulative_infer,
           attrs={"kind": "str", "exclusive": ("bool", False), "reverse": ("bool", False)})
def cumulative_dynamic(x, axis, kind, exclusive, reverse):
    """cumsum / cumprod along a run-time axis."""
    from .index import cumprod
    from .shape import cumsum

    (ax,) = checked_axes(_ints(axis), x.ndim, "cumulative axis")
    return (cumsum if kind == "sum" else cumprod)(x, ax, exclusive, reverse)


@op_samples
def _samples(s):
    return {
        "reshape_dynamic": [s(s.f32(2, 3, 4), s.const(0, -1)),
                            s(s.f32(2, 3, 4), np.array([4, -1], np.int64))],  # a run-time shape: specialized
        "expand_dynamic": [s(s.f32(3, 1), s.const(2, 1, 4))],
        "tile_dynamic": [s(s.f32(2, 3), s.const(2, 1))],
        "slice_dynamic": [s(s.f32(6, 7), s.const(1, -1), s.const(5, -8), s.const(0, 1), s.const(2, -2)),
                          s(s.f32(6, 7), np.array([-2], np.int64), np.array([0], np.int64), np.array([1], np.int64),
                            np.array([-1], np.int64))],
        "pad_dynamic": [
            s(s.f32(3, 4), s.const(1, 2, 0, -1), np.array([0.5], np.float32), s.const(0, 1)),
            s(s.f32(3, 4), s.const(1, 2), s.scalar(0.0, np.float32), s.const(1), mode="reflect"),
        ],
        "full_dynamic": [s(s.const(2, 3), value=2.5, dtype="f32")],
        "range_dynamic": [
            s(s.scalar(1.0, np.float32), s.scalar(4.0, np.float32), s.scalar(0.75, np.float32)),
            s(s.scalar(10), s.scalar(1), s.scalar(-3)),
            s(np.array(2, np.int64), np.array(11, np.int64), np.array(3, np.int64)),
        ],
        "topk_dynamic": [s(s.f32(3, 6), s.const(2))],
        "squeeze_dynamic": [s(s.f32(2, 1, 4), s.const(1))],
        "unsqueeze_dynamic": [s(s.f32(2, 4), s.const(0, 3))],
        "split_dynamic": [s(s.f32(6, 2), s.const(2, 4), axis=0, num=2)],
        "reduce_dynamic": [
            s(s.f32(3, 4, 5), s.const(0, 2), kind="max", keepdims=False),
            s(s.f32(3, 4), s.const(*()), kind="mean"),
            s(s.f32(3, 4, 5), np.array([-1, 0], np.int64), kind="sum"),
        ],
        "cumulative_dynamic": [
            s(s.f32(3, 4), s.scalar(1), kind="sum"),
            s(s.f32(3, 4, low=0.5, high=1.5), s.scalar(-2), kind="prod", exclusive=True, reverse=True),
            s(s.f32(3, 4), np.array(0, np.int64), kind="sum", reverse=True),
        ],
    }
