"""Lowering of reductions (stablehlo.reduce with a scalar body) and argmax/argmin
(a two-operand reduce over values and their indices)."""
from __future__ import annotations

import numpy as np

from ...ir.dtypes import DType
from ...ir.types import TensorType
from .builder import Builder, Val
from .rules import lowers

COMBINE = {"reduce_sum": "add", "reduce_mean": "add", "reduce_prod": "multiply",
           "reduce_max": "maximum", "reduce_min": "minimum"}


def identity(op: str, dtype: DType):
    """The init value of a reduction: the identity of its combining op in dtype."""
    if op in ("reduce_sum", "reduce_mean"):
        return 0
    if op == "reduce_prod":
        return 1
    low = op == "reduce_max"
    if dtype is DType.bool:
        return not low
    if dtype.is_float:
        return -np.inf if low else np.inf
    info = np.iinfo(dtype.numpy)
    return info.min if low else info.max


def accumulator(op: str, dtype: DType) -> DType:
    """Sums and products of narrow floats accumulate in f32; means of integers in f64 (as the reference)."""
    if op == "reduce_mean" and not dtype.is_float:
        return DType.f64
    if op in ("reduce_sum", "reduce_mean", "reduce_prod") and dtype in (DType.f16, DType.bf16):
        return DType.f32
    return dtype


@lowers(*COMBINE)
def reduce(b: Builder, node, args, out, attrs):
    return reduce_axes(b, node.op, args[0], attrs["axes"], out[0])


def reduce_axes(b: Builder, op: str, x: Val, axes, out: TensorType) -> Val:
    """reduce_sum/mean/prod/max/min of x over axes, reshaped to out (which keeps dims or not)."""
    axes = sorted({a % max(len(x.shape), 1) for a in axes})
    if not axes:
        return x
    acc = accumulator(op, x.dtype)
    r = b.reduce(b.convert(x, acc), b.scalar(identity(op, acc), acc), axes, COMBINE[op])
    if op == "reduce_mean":
        count = int(np.prod([x.shape[a] for a in axes]))
        r = b.binary("divide", r, b.full(count, r.type))
    return b.reshape(b.convert(r, x.dtype), out.shape)


@lowers("argmax", "argmin")
def arg_reduce(b: Builder, node, args, out, attrs):
    x = args[0]
    indices = arg_extreme(b, x, attrs["axis"] % len(x.shape), node.op == "argmax", attrs["select_last_index"])
    return b.reshape(indices, out[0].shape)


def arg_extreme(b: Builder, x: Val, axis: int, largest: bool, last: bool = False) -> Val:
    """The i64 index of the largest (or smallest) element along axis (removed); ties go to the first
    index (the last with `last`), and NaN wins as in numpy."""
    idx = b.iota(TensorType(DType.i64, x.shape), axis)
    better = "GT" if largest else "LT"
    tie_index = "GT" if last else "LT"
    sv, si = TensorType(x.dtype, ()), TensorType(DType.i64, ())

    def body(av: Val, ai: Val, bv: Val, bi: Val):
        wins = b.compare(av, bv, better)
        if x.dtype.is_float:
            wins = b.binary("or", wins, b.compare(av, av, "NE"))
        tie = b.binary("and", b.compare(av, bv, "EQ"), b.compare(ai, bi, tie_index))
        return [b.select(wins, av, bv), b.select(b.binary("or", wins, tie), ai, bi)]

    init_v = b.scalar(identity("reduce_max" if largest else "reduce_min", x.dtype), x.dtype)
    reduced = TensorType(DType.i64, [d for i, d in enumerate(x.shape) if i != axis])
    _, indices = b.op("stablehlo.reduce", [x, idx, init_v, b.scalar(0, DType.i64)],
                      [reduced.with_dtype(x.dtype), reduced],
                      {"dimensions": f"array<i64: {axis}>"}, [([sv, si, sv, si], body)])
    return indices
