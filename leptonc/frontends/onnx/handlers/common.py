"""Helpers shared by the mappings."""
from __future__ import annotations

import numpy as np

from ....ir import dims as D
from ....ir.errors import LeptoncError, UnsupportedOpError
from ....ir.graph import Value


def norm_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise LeptoncError(f"axis {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


def unsupported(cx, why: str):
    raise UnsupportedOpError(f"{cx.op_type}: {why}")


def scalar_like(b, value, like: Value) -> Value:
    """A rank-0 constant of like's dtype."""
    return b.scalar(value, like.dtype)


def broadcast_to_rank(b, v: Value, rank: int, axis: int = 0) -> Value:
    """v (rank r) reshaped so that its dims start at `axis` of a rank-`rank` tensor (trailing 1s)."""
    shape = (1,) * axis + tuple(v.shape) + (1,) * (rank - axis - v.type.rank)
    return b.reshape(v, shape) if v.type.rank != rank else v


def product(dims):
    return D.product(dims)


def static_ints(b, v, what: str, cx=None):
    vals = b.ints(v)
    if vals is None:
        raise UnsupportedOpError(f"{what} must be known while importing (a constant), not a run-time value")
    return vals


def np_dtype(v: Value):
    return v.dtype.numpy


def as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


__all__ = ["np", "D", "norm_axis", "unsupported", "scalar_like", "broadcast_to_rank", "product", "static_ints",
           "np_dtype", "as_list"]
