"""Mappings of elementwise ATen ops: arithmetic with torch's type promotion, comparisons, logic,
unary math and activations (gelu, silu, hardswish... decomposed into primitives)."""
from __future__ import annotations

import math

from ...ir import dims as D
from ...ir.dtypes import DType
from ...ir.graph import Value
from .registry import handles

# ATen unary ops whose IR op has the same name.
_UNARY = ("neg", "abs", "exp", "log", "sqrt", "rsqrt", "sin", "cos", "tan", "tanh", "sigmoid", "erf", "reciprocal",
          "floor", "ceil", "round", "sign", "relu", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh",
          "atanh", "isnan")


def _unary(op: str):
    def handle(imp, node, a):
        x = imp.v(a["self"])
        dtype = x.dtype if op == "isnan" else imp.meta_dtype(node)  # int inputs of float math are cast first
        return imp.add(op, imp.cast(x, dtype))
    return handle


for _op in _UNARY:
    handles(f"{_op}.default")(_unary(_op))


def _binary(op: str, *, compare: bool = False):
    def handle(imp, node, a):
        x, y = a["self"], a["other"]
        dtype = imp.promoted(x, y) if compare else imp.meta_dtype(node)
        xv, yv = imp.operand(x, dtype), imp.operand(y, dtype)
        if a.get("alpha") not in (None, 1):
            yv = imp.add("mul", yv, imp.scalar(a["alpha"], dtype))
        return imp.add(op, xv, yv)
    return handle


for _name, _op in {"add": "add", "sub": "sub", "mul": "mul", "maximum": "max", "minimum": "min"}.items():
    handles(f"{_name}.Tensor", f"{_name}.Scalar", f"{_name}.default")(_binary(_op))
for _name, _op in {"eq": "equal", "lt": "less", "le": "less_equal", "gt": "greater", "ge": "greater_equal"}.items():
    handles(f"{_name}.Tensor", f"{_name}.Scalar")(_binary(_op, compare=True))


@handles("ne.Tensor", "ne.Scalar")
def _ne(imp, node, a):
    return imp.add("not", _binary("equal", compare=True)(imp, node, a))


@handles("rsub.Scalar", "rsub.Tensor")
def _rsub(imp, node, a):
    return _binary("sub")(imp, node, {"self": a["other"], "other": a["self"], "alpha": a.get("alpha")})


@handles("div.Tensor", "div.Scalar", "div.Tensor_mode", "div.Scalar_mode")
def _divide(imp, node, a):
    mode = a.get("rounding_mode")
    dtype = imp.meta_dtype(node)
    x, y = imp.operand(a["self"], dtype), imp.operand(a["other"], dtype)
    if mode == "floor":
        return _floor_divide(imp, x, y)
    q = imp.add("div", x, y)  # integer division already truncates
    return _trunc(imp, q) if mode == "trunc" and dtype.is_float else q


def _trunc(imp, q: Value) -> Value:
    """Round toward zero: floor for positives, ceil for negatives."""
    positive = imp.add("greater_equal", q, imp.scalar(0, q.dtype))
    return imp.add("where", positive, imp.add("floor", q), imp.add("ceil", q))


def _floor_divide(imp, x: Value, y: Value) -> Value:
    if x.dtype.is_float:
        return imp.add("floor", imp.add("div", x, y))
    return imp.add("div", imp.add("sub", x, imp.add("mod", x, y)), y)  # exact: x - x mod y divides by y


@handles("floor_divide.default", "floor_divide.Scalar")
def _floor_div(imp, node, a):
    dtype = imp.meta_dtype(node)
    return _floor_divide(imp, imp.operand(a["self"], dtype), imp.operand(a["other"], dtype))


@handles("remainder.Tensor", "remainder.Scalar", "fmod.Tensor", "fmod.Scalar")
def _remainder(imp, node, a):
    dtype = imp.meta_dtype(node)
    return imp.add("mod", imp.operand(a["self"], dtype), imp.operand(a["other"], dtype),
                   fmod=str(node.target).startswith("aten.fmod"))


@handles("pow.Tensor_Scalar", "pow.Tensor_Tensor", "pow.Scalar")
def _pow(imp, node, a):
    dtype = imp.meta_dtype(node)
    base, exponent = a["self"], a["exponent"]
    if exponent in (2, 3):  # small integer powers as products: exact enough and much cheaper than pow
        x = imp.operand(base, dtype)
        square = imp.add("mul", x, x)
        return square if exponent == 2 else imp.add("mul", square, x)
    return imp.add("pow", imp.operand(base, dtype), imp.operand(exponent, dtype))


@handles("where.self", "where.ScalarSelf", "where.ScalarOther", "where.Scalar")
def _where(imp, node, a):
    dtype = imp.meta_dtype(node)
    cond = imp.cast(imp.v(a["condition"]), DType.bool)
    return imp.add("where", cond, imp.operand(a["self"], dtype), imp.operand(a["other"], dtype))


@handles("clamp.default", "clamp.Tensor", "clamp_min.default", "clamp_max.default", "hardtanh.default")
def _clamp(imp, node, a):
    dtype = imp.meta_dtype(node)
    x = imp.operand(a["self"], dtype)
    low = a.get("min", a.get("min_val"))
    high = a.get("max", a.get("max_val"))
    if low is not None:
        x = imp.add("max", x, imp.operand(low, dtype))
    if high is not None:
        x = imp.add("min", x, imp.operand(high, dtype))
    return x


def _logical(bool_op: str, int_op: str):
    def handle(imp, node, a):
        dtype = imp.meta_dtype(node)
        x, y = imp.operand(a["self"], dtype), imp.operand(a["other"], dtype)
        return imp.add(bool_op if dtype is DType.bool else int_op, x, y)
    return handle


handles("bitwise_and.Tensor", "bitwise_and.Scalar")(_logical("and", "bitwise_and"))
handles("bitwise_or.Tensor", "bitwise_or.Scalar")(_logical("or", "bitwise_or"))
handles("bitwise_xor.Tensor", "bitwise_xor.Scalar")(_logical("xor", "bitwise_xor"))


@handles("bitwise_not.default")
def _bitwise_not(imp, node, a):
    x = imp.v(a["self"])
    return imp.add("not" if x.dtype is DType.bool else "bitwise_not", x)


@handles("logical_not.default")
def _logical_not(imp, node, a):
    return imp.add("not", imp.cast(imp.v(a["self"]), DType.bool))


@handles("logical_and.default", "logical_or.default", "logical_xor.default")
def _logical_binary(imp, node, a):
    op = str(node.target).split(".")[1].removeprefix("logical_")
    return imp.add(op, imp.cast(imp.v(a["self"]), DType.bool), imp.cast(imp.v(a["other"]), DType.bool))


@handles("_to_copy.default", "clone.default", "alias.default", "lift_fresh_copy.default", "detach.default",
          "contiguous.default")
def _copy(imp, node, a):
    return imp.cast(imp.v(a["self"]), imp.meta_dtype(node))


@handles("copy.default")
def _copy_into(imp, node, a):
    """copy(self, src): src's values in self's dtype and shape."""
    src = imp.cast(imp.v(a["src"]), imp.meta_dtype(node))
    shape = imp.meta_shape(node)
    same = src.type.rank == len(shape) and all(D.same(p, q) for p, q in zip(src.shape, shape))
    return src if same else imp.add("broadcast_to", src, shape=shape)


@handles("gelu.default")
def _gelu(imp, node, a):
    x = imp.v(a["self"])
    c = lambda value: imp.scalar(value, x.dtype)  # noqa: E731
    if a.get("approximate", "none") == "tanh":
        cube = imp.add("mul", imp.add("mul", x, x), x)
        inner = imp.add("mul", imp.add("add", x, imp.add("mul", cube, c(0.044715))), c(math.sqrt(2 / math.pi)))
        gate = imp.add("add", imp.add("tanh", inner), c(1.0))
    else:
        gate = imp.add("add", imp.add("erf", imp.add("mul", x, c(math.sqrt(0.5)))), c(1.0))
    return imp.add("mul", imp.add("mul", x, c(0.5)), gate)


@handles("silu.default")
def _silu(imp, node, a):
    x = imp.v(a["self"])
    return imp.add("mul", x, imp.add("sigmoid", x))


def _hardsigmoid_of(imp, x: Value) -> Value:
    shifted = imp.add("add", x, imp.scalar(3.0, x.dtype))
    clipped = imp.add("min", imp.add("relu", shifted), imp.scalar(6.0, x.dtype))
    return imp.add("div", clipped, imp.scalar(6.0, x.dtype))


@handles("hardsigmoid.default")
def _hardsigmoid(imp, node, a):
    return _hardsigmoid_of(imp, imp.v(a["self"]))


@handles("hardswish.default")
def _hardswish(imp, node, a):
    x = imp.v(a["self"])
    return imp.add("mul", x, _hardsigmoid_of(imp, x))


@handles("leaky_relu.default")
def _leaky_relu(imp, node, a):
    x = imp.v(a["self"])
    slope = a.get("negative_slope", 0.01)
    return imp.add("where", imp.add("greater", x, imp.scalar(0, x.dtype)), x,
                   imp.add("mul", x, imp.scalar(slope, x.dtype)))


@handles("elu.default")
def _elu(imp, node, a):
    x = imp.v(a["self"])
    c = lambda value: imp.scalar(value, x.dtype)  # noqa: E731
    alpha, scale, input_scale = a.get("alpha", 1), a.get("scale", 1), a.get("input_scale", 1)
    negative = imp.add("mul", imp.add("sub", imp.add("exp", imp.add("mul", x, c(input_scale))), c(1.0)),
                       c(alpha * scale))
    return imp.add("where", imp.add("greater", x, c(0)), imp.add("mul", x, c(scale)), negative)


@handles("log1p.default")
def _log1p(imp, node, a):
    x = imp.v(a["self"])
    return imp.add("log", imp.add("add", x, imp.scalar(1.0, x.dtype)))


@handles("expm1.default")
def _expm1(imp, node, a):
    x = imp.v(a["self"])
    return imp.add("sub", imp.add("exp", x), imp.scalar(1.0, x.dtype))
