"""squeeze / unsqueeze: drop or insert size-1 dims by axis. Unlike a reshape they need no sizes,
so they keep dims that are unknown ("?") before run time."""
from __future__ import annotations

import numpy as np

from ..registry import PURE, define_op
from ..samples import op_samples
from ..types import TensorType
from .infer import norm_axes, require

VIEW = PURE | {"view"}


def _squeeze_infer(t: TensorType, axes) -> TensorType:
    axes = norm_axes(axes, t.rank)
    for a in axes:
        require(t.shape[a] == 1 or not isinstance(t.shape[a], int),
                f"squeeze axis {a} has size {t.shape[a]}, not 1")
    return t.with_shape([d for i, d in enumerate(t.shape) if i not in axes])


@define_op("squeeze", infer=_squeeze_infer, attrs={"axes": "ints"}, traits=VIEW)
def squeeze(x, axes):
    """Drop the listed size-1 dims."""
    return np.squeeze(x, tuple(a % x.ndim for a in axes)) if axes else x


def _unsqueeze_infer(t: TensorType, axes) -> TensorType:
    rank = t.rank + len(axes)
    axes = norm_axes(axes, rank)
    rest = iter(t.shape)
    return t.with_shape([1 if i in axes else next(rest) for i in range(rank)])


@define_op("unsqueeze", infer=_unsqueeze_infer, attrs={"axes": "ints"}, traits=VIEW)
def unsqueeze(x, axes):
    """Insert size-1 dims at the listed axes (axes index the result)."""
    rank = x.ndim + len(axes)
    return np.expand_dims(x, tuple(sorted(a % rank for a in axes))) if axes else x


def _bitcast_infer(t: TensorType, dtype) -> TensorType:
    require(dtype.itemsize == t.dtype.itemsize and not dtype.is_packed and not t.dtype.is_packed,
            f"bitcast needs dtypes of one width, got {t.dtype} and {dtype}")
    return t.with_dtype(dtype)


@define_op("bitcast", infer=_bitcast_infer, attrs={"dtype": "dtype"}, traits=VIEW)
def bitcast(x, dtype):
    """The same bytes read as another dtype of the same width."""
    return np.asarray(x, order="C").view(dtype.numpy).reshape(x.shape)


@op_samples
def _samples(s):
    return {
        "squeeze": [s(s.f32(2, 1, 3, 1), axes=(1, -1))],
        "unsqueeze": [s(s.f32(2, 3), axes=(0, -1))],
        "bitcast": [
            s(s.f32(2, 3), dtype="i32"),
            s(s.ints(4, dtype=np.int32), dtype="f32"),
            s(s.ints(4, low=0, high=3, dtype=np.uint8), dtype="i8"),
        ],
    }
