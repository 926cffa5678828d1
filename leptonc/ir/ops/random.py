"""Ops that draw random numbers. They are not pure: no pass may fold, merge or drop them as if
they were."""
from __future__ import annotations

import numpy as np

from ..dtypes import DType
from ..registry import define_op
from ..samples import op_samples
from ..types import TensorType
from .infer import require


def _dropout_infer(x: TensorType, ratio: TensorType, training: TensorType, seed) -> list:
    require(ratio.numel == 1 and ratio.dtype.is_float, "dropout ratio must be one float")
    require(training.numel == 1 and training.dtype is DType.bool, "dropout training flag must be one bool")
    return [x, x.with_dtype(DType.bool)]


@define_op("dropout", arity=3, infer=_dropout_infer, attrs={"seed": ("any", None)}, traits=frozenset())
def dropout(x, ratio, training, seed):
    """In training mode, zero each element with probability `ratio` and scale the rest by
    1 / (1 - ratio); otherwise the identity. Also returns the keep mask."""
    r = float(np.asarray(ratio).reshape(-1)[0])
    if not bool(np.asarray(training).reshape(-1)[0]) or r == 0.0:
        return x, np.ones(x.shape, np.bool_)
    mask = np.random.default_rng(seed).uniform(size=x.shape) >= r
    return (x * mask / np.asarray(1 - r, x.dtype)).astype(x.dtype), mask


@op_samples
def _samples(s):
    return {
        "dropout": [s(s.f32(2, 3), s.scalar(0.5, np.float32), s.scalar(False, np.bool_))],
    }
