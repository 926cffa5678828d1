"""Reductions over explicit axes (an empty axes list reduces nothing), and argmax/argmin.

Reducing an empty set gives the identity of the reduction: 0 for sum, 1 for prod, -inf/+inf (the
dtype's lowest/highest value for integers) for max/min; the mean of nothing is NaN.
"""
from __future__ import annotations

import numpy as np

from ..dtypes import DType
from ..registry import PURE, define_op
from ..samples import op_samples
from ..types import TensorType
from .infer import norm_axes, norm_axis, require

REDUCTION = PURE | {"reduction"}


def _reduce_infer(t: TensorType, axes, keepdims) -> TensorType:
    axes = norm_axes(axes, t.rank)
    shape = [1 if i in axes else d for i, d in enumerate(t.shape)] if keepdims else \
        [d for i, d in enumerate(t.shape) if i not in axes]
    return t.with_shape(shape)


def _extreme(dtype: np.dtype, low: bool):
    if DType.from_numpy(dtype).is_float:
        return -np.inf if low else np.inf
    if dtype.kind == "b":
        return not low
    info = np.iinfo(dtype)
    return info.min if low else info.max


def _reducer(fn, accumulate_wide: bool, initial=None):
    def run(x, axes, keepdims):
        if not axes:
            return x
        axes = tuple(a % x.ndim for a in axes)
        src = x.astype(np.float64) if accumulate_wide and DType.from_numpy(x.dtype).is_float else x
        kw = {}
        if initial is not None and any(x.shape[a] == 0 for a in axes):
            kw["initial"] = initial(x.dtype)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            return np.asarray(fn(src, axis=axes, keepdims=keepdims, **kw)).astype(x.dtype)
    return run


REDUCE_FNS = {
    "sum": _reducer(np.sum, True), "mean": _reducer(np.mean, True), "prod": _reducer(np.prod, True),
    "max": _reducer(np.max, False, lambda dt: _extreme(dt, True)),
    "min": _reducer(np.min, False, lambda dt: _extreme(dt, False)),
}

_AXES = {"axes": "ints", "keepdims": ("bool", True)}
for _kind, _fn in REDUCE_FNS.items():
    define_op(f"reduce_{_kind}", infer=_reduce_infer, attrs=_AXES, traits=REDUCTION)(_fn)


def _arg_infer(t: TensorType, axis, keepdims, select_last_index) -> TensorType:
    require(t.rank > 0, "argmax/argmin need rank >= 1")
    ax = norm_axis(axis, t.rank)
    shape = [1 if i == ax else d for i, d in enumerate(t.shape)] if keepdims else \
        [d for i, d in enumerate(t.shape) if i != ax]
    return TensorType(DType.i64, shape)


def _arg(fn):
    def run(x, axis, keepdims, select_last_index):
        axis %= x.ndim
        if select_last_index:
            flipped = np.flip(x, axis)
            idx = x.shape[axis] - 1 - fn(flipped, axis=axis)
        else:
            idx = fn(x, axis=axis)
        idx = idx.astype(np.int64)
        return np.expand_dims(idx, axis) if keepdims else idx
    return run


_ARG = {"axis": ("int", 0), "keepdims": ("bool", True), "select_last_index": ("bool", False)}
define_op("argmax", infer=_arg_infer, attrs=_ARG, traits=REDUCTION)(_arg(np.argmax))
define_op("argmin", infer=_arg_infer, attrs=_ARG, traits=REDUCTION)(_arg(np.argmin))


@op_samples
def _samples(s):
    return {
        "reduce_sum": [
            s(s.f32(3, 4, 5), axes=(0, 2)),
            s(s.f32(3, 4), axes=(1,), keepdims=False),
            s(s.f32(3, 4), axes=()),
            s(s.ints(3, 4), axes=(-1,)),
        ],
        "reduce_mean": [s(s.f32(3, 4, 5), axes=(1,)), s(s.ints(3, 4), axes=(1,), keepdims=False)],
        "reduce_prod": [s(s.f32(3, 4, low=0.5, high=1.5), axes=(0,))],
        "reduce_max": [
            s(s.f32(3, 4), axes=(1,)),
            s(s.ints(3, 4), axes=(0, 1), keepdims=False),
            s(s.bools(3, 4), axes=(1,)),
        ],
        "reduce_min": [s(s.f32(3, 4), axes=(0,))],
        "argmax": [
            s(s.f32(3, 5), axis=1),
            s(np.array([[1, 3, 3, 0]], np.float32), axis=1),
            s(np.array([[1, 3, 3, 0]], np.float32), axis=1, select_last_index=True),
        ],
        "argmin": [s(s.f32(3, 5), axis=0, keepdims=False), s(s.ints(4, 6), axis=-1)],
    }
