"""Lowering of elementwise ops: unary math, binary arithmetic and comparison, where, cast.

Operands are broadcast to the result shape numpy-style first (broadcast_in_dim),
since StableHLO elementwise ops take operands of one shape.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

from ...ir.dtypes import DType
from ...ir.errors import LeptoncError
from .builder import Builder, Val
from .rules import lowers

UNARY = {
    "exp": "stablehlo.exponential", "log": "stablehlo.log", "sqrt": "stablehlo.sqrt",
    "rsqrt": "stablehlo.rsqrt", "sin": "stablehlo.sine", "cos": "stablehlo.cosine", "tan": "stablehlo.tan",
    "tanh": "stablehlo.tanh", "sigmoid": "stablehlo.logistic", "floor": "stablehlo.floor",
    "ceil": "stablehlo.ceil", "round": "stablehlo.round_nearest_even", "not": "stablehlo.not",
    "bitwise_not": "stablehlo.not", "neg": "stablehlo.negate",
    # no StableHLO op of their own: CHLO, which XLA expands (as jax does)
    "asin": "chlo.asin", "acos": "chlo.acos", "atan": "chlo.atan", "sinh": "chlo.sinh", "cosh": "chlo.cosh",
    "asinh": "chlo.asinh", "acosh": "chlo.acosh", "atanh": "chlo.atanh", "erf": "chlo.erf",
}
BINARY = {"add": "add", "sub": "subtract", "mul": "multiply", "max": "maximum",
          "min": "minimum", "and": "and", "or": "or", "xor": "xor", "bitwise_and": "and",
          "bitwise_or": "or", "bitwise_xor": "xor"}
COMPARE = {"equal": "EQ", "less": "LT", "less_equal": "LE", "greater": "GT", "greater_equal": "GE"}


def operands_at(b: Builder, args: list[Val], shape) -> list[Val]:
    return [b.broadcast_to(a, shape) for a in args]


@lowers(*UNARY)
def unary(b: Builder, node, args, out, attrs):
    return b.unary(UNARY[node.op], args[0])


@lowers("reciprocal")
def reciprocal(b: Builder, node, args, out, attrs):
    x = args[0]
    return b.binary("divide", b.full(1, x.type), x)


@lowers("abs")
def abs_(b: Builder, node, args, out, attrs):
    x = args[0]
    return b.unary("abs", x) if x.dtype.is_signed else x


@lowers("sign")
def sign(b: Builder, node, args, out, attrs):
    x = args[0]
    if x.dtype.is_signed:
        return b.unary("sign", x)
    return b.binary("minimum", x, b.full(1, x.type))  # unsigned: 0 stays 0, anything else is 1


@lowers("relu")
def relu(b: Builder, node, args, out, attrs):
    x = args[0]
    return b.binary("maximum", x, b.full(0, x.type))


@lowers("isnan")
def isnan(b: Builder, node, args, out, attrs):
    return b.compare(args[0], args[0], "NE")


@lowers("isinf")
def isinf(b: Builder, node, args, out, attrs):
    x = args[0]
    hits = [b.compare(x, b.full(sign * np.inf, x.type), "EQ")
            for sign, on in ((1, attrs["detect_positive"]), (-1, attrs["detect_negative"])) if on]
    if not hits:
        return b.full(False, out[0])
    return hits[0] if len(hits) == 1 else b.binary("or", *hits)


@lowers(*BINARY)
def binary(b: Builder, node, args, out, attrs):
    x, y = operands_at(b, args, out[0].shape)
    return b.binary(BINARY[node.op], x, y)


def nonzero_divisor(b: Builder, y: Val) -> Val:
    """An integer divisor with 0 taken as 1, leptonc's rule (div's docstring) where XLA's is x / 0 = -1 and
    x % 0 = x (INT_MIN / -1 is INT_MIN in both)."""
    if y.dtype.is_float:
        return y
    return b.select(b.compare(y, b.full(0, y.type), "EQ"), b.full(1, y.type), y)


@lowers("div")
def div(b: Builder, node, args, out, attrs):
    x, y = operands_at(b, args, out[0].shape)
    return b.binary("divide", x, nonzero_divisor(b, y))


@lowers(*COMPARE)
def compare(b: Builder, node, args, out, attrs):
    x, y = operands_at(b, args, out[0].shape)
    return b.compare(x, y, COMPARE[node.op])


@lowers("pow")
def pow_(b: Builder, node, args, out, attrs):
    x, y = operands_at(b, args, out[0].shape)
    if x.dtype.is_float or y.dtype.is_int:
        return b.binary("power", x, b.convert(y, x.dtype))
    # an integer base with a float exponent is computed in f64 and truncated, as the reference does
    wide = b.binary("power", b.convert(x, DType.f64), b.convert(y, DType.f64))
    return b.convert(wide, x.dtype)


@lowers("mod")
def mod(b: Builder, node, args, out, attrs):
    x, y = operands_at(b, args, out[0].shape)
    y = nonzero_divisor(b, y)
    rem = b.binary("remainder", x, y)  # sign of the dividend (C fmod)
    if attrs["fmod"] or not x.dtype.is_signed:
        return rem
    zero = b.full(0, rem.type)
    nonzero = b.compare(rem, zero, "NE")
    signs_differ = b.compare(b.compare(rem, zero, "LT"), b.compare(y, zero, "LT"), "NE")
    return b.select(b.binary("and", nonzero, signs_differ), b.binary("add", rem, y), rem)


@lowers("bit_shift")
def bit_shift(b: Builder, node, args, out, attrs):
    x, y = operands_at(b, args, out[0].shape)
    if attrs["direction"] == "left":
        name = "shift_left"
    else:
        name = "shift_right_arithmetic" if x.dtype.is_signed else "shift_right_logical"
    return b.binary(name, x, y)


@lowers("where")
def where(b: Builder, node, args, out, attrs):
    c, x, y = operands_at(b, args, out[0].shape)
    return b.select(c, x, y)


@lowers("cast")
def cast(b: Builder, node, args, out, attrs):
    """XLA's convert, which rounds to nearest even and turns out-of-range values into inf or NaN as the
    IR's cast does; a narrow float widens to f32 first (exact), and `saturate` clamps to the largest
    finite value first (in f32 for an integer source: exact over the 8-bit floats' range)."""
    x, target = args[0], attrs["dtype"]
    if target is DType.f8e8m0fnu:  # XLA's power-of-two rounding differs at the ends of the range
        raise LeptoncError(f"stablehlo: {node.label}: a cast to f8e8m0fnu is not supported by the stablehlo "
                           "target (casts from it are)")
    if x.dtype.is_float and x.dtype.bits < 16:
        x = b.convert(x, DType.f32)
    if target.is_packed and target.is_int and x.dtype.is_float:
        # as the reference: truncate to i64 (NaN, infinities and |x| >= 2^63 give 0's low bits), then keep the
        # low bits (XLA's integer narrowing wraps; its float to sub-byte conversion would saturate instead)
        inside = b.compare(b.unary("abs", x), b.full(2.0 ** 63, x.type), "LT")
        x = b.convert(b.select(inside, x, b.full(0, x.type)), DType.i64)
    if attrs["saturate"]:
        if not x.dtype.is_float:
            x = b.convert(x, DType.f32)
        m = float(ml_dtypes.finfo(target.numpy).max)
        x = b.binary("minimum", b.binary("maximum", x, b.full(-m, x.type)), b.full(m, x.type))
    if target is DType.bool and x.dtype is not DType.bool:
        return b.compare(x, b.full(0, x.type), "NE")  # NaN != 0, so NaN casts to true
    return b.convert(x, target)


@lowers("bitcast")
def bitcast(b: Builder, node, args, out, attrs):
    """The same bytes read as another dtype (bool, stored as one byte, converts to and from u8/i8)."""
    x, target = args[0], attrs["dtype"]
    if target is DType.bool:
        return b.compare(x, b.full(0, x.type), "NE")
    if x.dtype is DType.bool:
        return b.convert(x, target)
    return b.op1("stablehlo.bitcast_convert", [x], out[0])
