"""Elementwise ONNX ops: unary math, binary arithmetic and comparison, variadic Sum/Mean/Max/Min,
Where, Cast/CastLike, Clip and the common activations (the rest expand from their ONNX function)."""
from __future__ import annotations

import numpy as np

from ....ir.dtypes import DType
from ..importer import dtype_of
from ..registry import onnx_op
from .common import norm_axis, unsupported

_UNARY = {
    "Abs": "abs", "Neg": "neg", "Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Sin": "sin", "Cos": "cos",
    "Tan": "tan", "Asin": "asin", "Acos": "acos", "Atan": "atan", "Sinh": "sinh", "Cosh": "cosh",
    "Tanh": "tanh", "Asinh": "asinh", "Acosh": "acosh", "Atanh": "atanh", "Erf": "erf", "Sigmoid": "sigmoid",
    "Reciprocal": "reciprocal", "Floor": "floor", "Ceil": "ceil", "Round": "round", "Sign": "sign",
    "Relu": "relu", "Not": "not", "BitwiseNot": "bitwise_not", "IsNaN": "isnan",
}
_BINARY = {
    "Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow", "Equal": "equal", "Less": "less",
    "LessOrEqual": "less_equal", "Greater": "greater", "GreaterOrEqual": "greater_equal", "And": "and",
    "Or": "or", "Xor": "xor", "BitwiseAnd": "bitwise_and", "BitwiseOr": "bitwise_or", "BitwiseXor": "bitwise_xor",
}


@onnx_op(*_UNARY)
def unary(cx):
    return cx.b.op(_UNARY[cx.op_type], cx.x(0))


@onnx_op(*_BINARY)
def binary(cx):
    return cx.b.op(_BINARY[cx.op_type], cx.x(0), cx.x(1))


@onnx_op("IsInf")
def isinf(cx):
    return cx.b.op("isinf", cx.x(0), detect_positive=bool(cx.a("detect_positive", 1)),
                   detect_negative=bool(cx.a("detect_negative", 1)))


@onnx_op("Mod")
def mod(cx):
    return cx.b.op("mod", cx.x(0), cx.x(1), fmod=bool(cx.a("fmod", 0)))


@onnx_op("BitShift")
def bit_shift(cx):
    return cx.b.op("bit_shift", cx.x(0), cx.x(1), direction=cx.a("direction").lower())


@onnx_op("Sum", "Mean", "Max", "Min")
def variadic(cx):
    b = cx.b
    xs = [x for x in cx.inputs if x is not None]
    op = {"Sum": "add", "Mean": "add", "Max": "max", "Min": "min"}[cx.op_type]
    out = xs[0]
    for x in xs[1:]:
        out = b.op(op, out, x)
    if cx.op_type == "Mean" and len(xs) > 1:
        out = b.op("div", out, b.scalar(len(xs), out.dtype))
    return out


@onnx_op("Where")
def where(cx):
    return cx.b.op("where", cx.x(0), cx.x(1), cx.x(2))


def onnx_cast(cx, x, to: DType):
    """x converted to `to` as ONNX Cast does: to an 8-bit float the node's `saturate` (default 1) says
    whether out-of-range values clamp; to float8e8m0 its `round_mode` (default "up") rounds."""
    attrs = {}
    if to.is_float8:
        attrs["saturate"] = bool(cx.a("saturate", 1))
    if to is DType.f8e8m0fnu:
        attrs["round"] = cx.a("round_mode", "up")
    return cx.b.cast(x, to, **attrs)


@onnx_op("Cast")
def cast(cx):
    return onnx_cast(cx, cx.x(0), dtype_of(cx.a("to"), "Cast to "))


@onnx_op("CastLike")
def cast_like(cx):
    return onnx_cast(cx, cx.x(0), cx.x(1).dtype)


@onnx_op("Identity")
def identity(cx):
    return cx.x(0)


@onnx_op("Clip")
def clip(cx):
    b, x = cx.b, cx.x(0)
    if cx.version < 11:
        lo, hi = cx.a("min"), cx.a("max")
        lo = None if lo is None else b.scalar(lo, x.dtype)
        hi = None if hi is None else b.scalar(hi, x.dtype)
    else:
        lo, hi = cx.x(1), cx.x(2)
    if lo is not None:
        x = b.op("max", x, lo)
    if hi is not None:
        x = b.op("min", x, hi)
    return x


def _s(cx, value, like=None):
    return cx.b.scalar(value, (like or cx.x(0)).dtype)


@onnx_op("LeakyRelu")
def leaky_relu(cx):
    b, x = cx.b, cx.x(0)
    alpha = cx.a("alpha", 0.01)
    return b.op("where", b.op("less", x, _s(cx, 0)), b.op("mul", x, _s(cx, alpha)), x)


@onnx_op("PRelu")
def prelu(cx):
    b, x, slope = cx.b, cx.x(0), cx.x(1)
    if slope.type.rank == 1 and x.type.rank > 2 and slope.shape[0] not in (1, x.shape[-1]) \
            and slope.shape[0] == x.shape[1]:
        # a per-channel slope as PRelu before opset 7 took it (models converted from opset 6 keep it)
        slope = b.reshape(slope, (slope.shape[0],) + (1,) * (x.type.rank - 2))
    return b.op("where", b.op("less", x, _s(cx, 0)), b.op("mul", x, slope), x)


@onnx_op("HardSigmoid")
def hard_sigmoid(cx):
    b, x = cx.b, cx.x(0)
    y = b.op("add", b.op("mul", x, _s(cx, cx.a("alpha", 0.2))), _s(cx, cx.a("beta", 0.5)))
    return b.op("min", b.op("max", y, _s(cx, 0)), _s(cx, 1))


@onnx_op("HardSwish")
def hard_swish(cx):
    b, x = cx.b, cx.x(0)
    y = b.op("add", b.op("mul", x, _s(cx, 1 / 6)), _s(cx, 0.5))
    return b.op("mul", x, b.op("min", b.op("max", y, _s(cx, 0)), _s(cx, 1)))


@onnx_op("Gelu")
def gelu(cx):
    b, x = cx.b, cx.x(0)
    if cx.a("approximate", "none") == "tanh":
        inner = b.op("mul", b.op("add", x, b.op("mul", b.op("mul", b.op("mul", x, x), x), _s(cx, 0.044715))),
                     _s(cx, float(np.sqrt(2 / np.pi))))
        return b.op("mul", b.op("mul", x, _s(cx, 0.5)), b.op("add", b.op("tanh", inner), _s(cx, 1)))
    erf = b.op("erf", b.op("mul", x, _s(cx, float(1 / np.sqrt(2)))))
    return b.op("mul", b.op("mul", x, _s(cx, 0.5)), b.op("add", erf, _s(cx, 1)))


def _softmax_input(cx):
    """(x as the softmax sees it, axes, restore): opset < 13 flattens to 2-D at axis."""
    b, x = cx.b, cx.x(0)
    rank = x.type.rank
    if cx.version >= 13:
        return x, (norm_axis(cx.a("axis", -1), rank),), lambda y: y
    axis = norm_axis(cx.a("axis", 1), rank)
    if axis == rank - 1:
        return x, (axis,), lambda y: y
    from ....ir import dims as D

    flat = b.reshape(x, (D.product(x.shape[:axis]), D.product(x.shape[axis:])))
    return flat, (1,), lambda y: b.reshape(y, x.shape)


@onnx_op("Softmax")
def softmax(cx):
    b = cx.b
    x, axes, restore = _softmax_input(cx)
    e = b.op("exp", b.op("sub", x, b.op("reduce_max", x, axes=axes)))
    return restore(b.op("div", e, b.op("reduce_sum", e, axes=axes)))


@onnx_op("LogSoftmax")
def log_softmax(cx):
    b = cx.b
    x, axes, restore = _softmax_input(cx)
    shifted = b.op("sub", x, b.op("reduce_max", x, axes=axes))
    return restore(b.op("sub", shifted, b.op("log", b.op("reduce_sum", b.op("exp", shifted), axes=axes))))


@onnx_op("Hardmax")
def hardmax(cx):
    b = cx.b
    x, axes, restore = _softmax_input(cx)
    ax = axes[0]
    idx = b.op("argmax", x, axis=ax)
    if not isinstance(x.shape[ax], int):
        unsupported(cx, "the reduced dim must be known")
    iota = b.const(np.arange(x.shape[ax], dtype=np.int64).reshape((-1,) + (1,) * (x.type.rank - ax - 1)))
    return restore(b.cast(b.op("equal", idx, iota), x.dtype))

