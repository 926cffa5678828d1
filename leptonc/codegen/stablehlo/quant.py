"""Lowering of quantize/dequantize and the quantized matmuls (matmul_wq, matmul_integer,
matmul_w8a8). Integer products accumulate in i32 dot_generals, as the reference does."""
from __future__ import annotations

from ...ir.dtypes import DType
from ...ir.ops.quant import RANGES
from ...ir.types import TensorType
from .builder import Builder, Val
from .linalg import dot, matmul
from .reduction import reduce_axes
from .rules import lowers


def expand_param(b: Builder, p: Val, shape, axis: int, group: int) -> Val:
    """A scale or zero point broadcast to the shape it applies to: per tensor, channel or group."""
    rank = len(shape)
    if not p.shape:
        return b.broadcast_in_dim(p, shape, ())
    axis %= rank
    if not group:
        return b.broadcast_in_dim(p, shape, [axis])
    # per group: each entry covers `group` consecutive elements along axis
    spread = tuple(shape[:axis]) + (shape[axis] // group, group) + tuple(shape[axis + 1:])
    dims = [d if d <= axis else d + 1 for d in range(rank)]
    return b.reshape(b.broadcast_in_dim(p, spread, dims), shape)


def dequantized(b: Builder, q: Val, scale: Val, zero_point: Val | None, axis: int, group: int) -> Val:
    """(q - zero_point) * scale in f32."""
    v = b.convert(q, DType.i32)
    if zero_point is not None:
        v = b.binary("subtract", v, b.convert(expand_param(b, zero_point, q.shape, axis, group), DType.i32))
    s = b.convert(expand_param(b, scale, q.shape, axis, group), DType.f32)
    return b.binary("multiply", b.convert(v, DType.f32), s)


def saturate(b: Builder, v: Val, lo: int, hi: int) -> Val:
    return b.binary("minimum", b.binary("maximum", v, b.full(lo, v.type)), b.full(hi, v.type))


@lowers("quantize")
def quantize(b: Builder, node, args, out, attrs):
    """clip(round_half_even(x / scale) + zero_point) in the narrow type."""
    x, scale, *zp = args
    axis, group = attrs["axis"], attrs["group"]
    s = b.convert(expand_param(b, scale, x.shape, axis, group), DType.f32)
    q = b.unary("round_nearest_even", b.binary("divide", b.convert(x, DType.f32), s))
    if zp:
        q = b.binary("add", q, b.convert(expand_param(b, zp[0], x.shape, axis, group), DType.f32))
    q = saturate(b, q, *RANGES[attrs["dtype"]])
    return b.convert(b.convert(q, DType.i32), attrs["dtype"])


@lowers("dequantize")
def dequantize(b: Builder, node, args, out, attrs):
    q, scale, *zp = args
    v = dequantized(b, q, scale, zp[0] if zp else None, attrs["axis"], attrs["group"])
    return b.convert(v, out[0].dtype)


@lowers("matmul_wq")
def matmul_wq(b: Builder, node, args, out, attrs):
    """x @ dequantize(w).T in f32: the weight [N, K] contracts on its second dim."""
    x, w, scale, *zp = args
    group = attrs["group"]
    wf = dequantized(b, w, scale, zp[0] if zp else None, 1 if group else 0, group)
    xf = b.convert(x, DType.f32)
    y = dot(b, xf, wf, ([], []), ([len(x.shape) - 1], [1]), tuple(x.shape[:-1]) + (w.shape[0],))
    return b.convert(y, out[0].dtype)


@lowers("matmul_integer")
def matmul_integer(b: Builder, node, args, out, attrs):
    """(a - a_zero_point) @ (b - b_zero_point) in i32; a's zero point is per row, b's per column."""
    a, w = b.convert(args[0], DType.i32), b.convert(args[1], DType.i32)
    if len(args) > 2:
        zp = b.convert(args[2], DType.i32)
        per_row = bool(zp.shape) and len(a.shape) > 1
        zp = b.broadcast_in_dim(zp, a.shape, [len(a.shape) - 2]) if per_row else b.broadcast_to(zp, a.shape)
        a = b.binary("subtract", a, zp)
    if len(args) > 3:
        zp = b.convert(args[3], DType.i32)
        w = b.binary("subtract", w, b.broadcast_to(zp, w.shape))
    return matmul(b, node, [a, w], out, {})


@lowers("matmul_w8a8")
def matmul_w8a8(b: Builder, node, args, out, attrs):
    """Rows of x quantized to int8 (scale max|row| / 127), an i32 dot with the int8 weight, rescaled."""
    x, w, scale = args
    last = len(x.shape) - 1
    row = tuple(x.shape[:-1]) + (1,)
    amax = reduce_axes(b, "reduce_max", b.unary("abs", x), [last], TensorType(DType.f32, row))
    amax = b.select(b.compare(amax, b.full(0, amax.type), "GT"), amax, b.full(1, amax.type))
    ratio = b.binary("divide", b.full(127, amax.type), amax)
    q = b.unary("round_nearest_even", b.binary("multiply", x, b.broadcast_in_dim(ratio, x.shape, range(len(row)))))
    q = b.convert(saturate(b, q, -127, 127), DType.i32)
    acc = dot(b, q, b.convert(w, DType.i32), ([], []), ([last], [1]), out[0].shape)
    s = b.binary("divide", amax, b.full(127, amax.type))
    y = b.binary("multiply", b.convert(acc, DType.f32), b.broadcast_in_dim(s, out[0].shape, range(len(row))))
    return b.binary("multiply", y, b.broadcast_to(scale, out[0].shape))
