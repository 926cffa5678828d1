"""Elementwise ops: unary math, binary arithmetic and comparison (numpy broadcasting), where, cast."""
from __future__ import annotations

import ml_dtypes
import numpy as np

from ..dtypes import DType
from ..registry import ELEMENTWISE, define_op
from ..samples import op_samples
from ..types import TensorType
from .infer import broadcast, broadcast_shapes, compare, require, require_float, same_dtype

COMMUTATIVE = ELEMENTWISE | {"commutative"}
CHEAP = ELEMENTWISE | {"cheap"}


def _special():
    """scipy.special, imported when the reference first needs it (loading an artifact does not)."""
    from scipy import special

    return special


def _float_unary(t: TensorType) -> TensorType:
    require_float(t)
    return t


def _numeric_unary(t: TensorType) -> TensorType:
    require(t.dtype is not DType.bool, "operand must be numeric, got bool")
    return t


def _int_or_bool_unary(t: TensorType) -> TensorType:
    require(not t.dtype.is_float, f"operand must be an integer or bool type, got {t.dtype}")
    return t


def _to_bool(t: TensorType) -> TensorType:
    return TensorType(DType.bool, t.shape)


def _keep(fn):
    """Apply a numpy function and keep the input's dtype (numpy may widen f16/bf16)."""
    def run(x):
        return np.asarray(fn(x)).astype(x.dtype, copy=False)
    return run


_FLOAT_UNARY = {
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "sin": np.sin, "cos": np.cos, "tan": np.tan,
    "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh,
    "tanh": np.tanh, "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh,
    "erf": lambda x: _special().erf(x.astype(np.float64)),
    "sigmoid": lambda x: _special().expit(x.astype(np.float64)),
    "rsqrt": lambda x: 1.0 / np.sqrt(x.astype(np.float64)),
    "reciprocal": lambda x: 1.0 / x.astype(np.float64),
    "floor": np.floor, "ceil": np.ceil, "round": np.round,
}
for _name, _fn in _FLOAT_UNARY.items():
    define_op(_name, infer=_float_unary, traits=ELEMENTWISE)(_keep(_fn))

define_op("neg", infer=_numeric_unary, traits=CHEAP, precision="follow")(np.negative)
define_op("abs", infer=_numeric_unary, traits=CHEAP, precision="follow")(np.abs)
define_op("sign", infer=_numeric_unary, traits=ELEMENTWISE)(_keep(np.sign))
define_op("relu", infer=_numeric_unary, traits=ELEMENTWISE, precision="follow")(lambda x: np.maximum(x, np.zeros((), x.dtype)))
define_op("not", infer=lambda t: (require(t.dtype is DType.bool, "operand must be bool"), t)[1],
          traits=ELEMENTWISE)(np.logical_not)
define_op("bitwise_not", infer=_int_or_bool_unary, traits=ELEMENTWISE)(np.invert)
define_op("isnan", infer=lambda t: (require_float(t), _to_bool(t))[1], traits=ELEMENTWISE)(np.isnan)


@define_op("isinf", infer=lambda t, **_: (require_float(t), _to_bool(t))[1], traits=ELEMENTWISE,
           attrs={"detect_positive": ("bool", True), "detect_negative": ("bool", True)})
def isinf(x, detect_positive, detect_negative):
    """True where x is +inf (if detect_positive) or -inf (if detect_negative)."""
    return (np.isposinf(x) & detect_positive) | (np.isneginf(x) & detect_negative)


def _int_div(a, b):
    """Integer division truncating toward zero (C semantics, as ONNX and torch's trunc mode)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return ((a - np.fmod(a, b)) // np.where(b == 0, 1, b)).astype(a.dtype)


def _div(a, b):
    """a / b; between integers it truncates toward zero, never traps: x / 0 is x (a zero divisor counts
    as 1) and INT_MIN / -1 is INT_MIN (wraps)."""
    if a.dtype.kind in "iu":
        return _int_div(a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.true_divide(a, b)).astype(a.dtype, copy=False)


_BINARY = {  # name: (numpy function, traits)
    "add": (np.add, COMMUTATIVE | CHEAP), "sub": (np.subtract, CHEAP), "mul": (np.multiply, COMMUTATIVE | CHEAP),
    "max": (np.maximum, COMMUTATIVE), "min": (np.minimum, COMMUTATIVE),
}
for _name, (_fn, _traits) in _BINARY.items():
    define_op(_name, arity=2, infer=broadcast, traits=_traits, precision="follow")(
        lambda a, b, _fn=_fn: np.asarray(_fn(a, b)).astype(a.dtype, copy=False))

define_op("div", arity=2, infer=broadcast, traits=ELEMENTWISE)(_div)


def _pow_infer(a: TensorType, b: TensorType) -> TensorType:
    require(a.dtype is not DType.bool and b.dtype is not DType.bool, "pow needs numeric operands")
    return TensorType(a.dtype, broadcast_shapes(a.shape, b.shape))


@define_op("pow", arity=2, infer=_pow_infer, traits=ELEMENTWISE)
def pow_(a, b):
    """a ** b in a's dtype (the exponent may have another numeric dtype)."""
    if a.dtype.kind in "iu":
        return np.power(a, b.astype(a.dtype)) if b.dtype.kind in "iu" else \
            np.power(a.astype(np.float64), b).astype(a.dtype)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return np.power(a.astype(np.float64), b.astype(np.float64)).astype(a.dtype)


@define_op("mod", arity=2, infer=broadcast, traits=ELEMENTWISE, attrs={"fmod": ("bool", False)})
def mod(a, b, fmod):
    """Remainder: sign of the divisor (Python %), or of the dividend with fmod=true (C fmod). Between
    integers it never traps: x % 0 is 0 (a zero divisor counts as 1, as in div) and INT_MIN % -1 is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.fmod(a, b) if fmod else np.mod(a, b)).astype(a.dtype, copy=False)


_COMPARE = {"equal": (np.equal, True), "less": (np.less, False), "less_equal": (np.less_equal, False),
            "greater": (np.greater, False), "greater_equal": (np.greater_equal, False)}
for _name, (_fn, _comm) in _COMPARE.items():
    define_op(_name, arity=2, infer=compare, traits=COMMUTATIVE if _comm else ELEMENTWISE)(_fn)


def _bool_binary(a: TensorType, b: TensorType) -> TensorType:
    require(a.dtype is DType.bool and b.dtype is DType.bool, "logical ops need bool operands")
    return broadcast(a, b)


def _bits_binary(a: TensorType, b: TensorType, **_) -> TensorType:
    require(not a.dtype.is_float, f"bitwise ops need integer or bool operands, got {a.dtype}")
    return broadcast(a, b)


for _name, _fn in {"and": np.logical_and, "or": np.logical_or, "xor": np.logical_xor}.items():
    define_op(_name, arity=2, infer=_bool_binary, traits=COMMUTATIVE)(_fn)
for _name, _fn in {"bitwise_and": np.bitwise_and, "bitwise_or": np.bitwise_or,
                   "bitwise_xor": np.bitwise_xor}.items():
    define_op(_name, arity=2, infer=_bits_binary, traits=COMMUTATIVE)(_fn)


@define_op("bit_shift", arity=2, infer=_bits_binary, traits=ELEMENTWISE, attrs={"direction": "str"})
def bit_shift(a, b, direction):
    """Shift a left or right by b bits (direction "left" or "right")."""
    return (np.left_shift if direction == "left" else np.right_shift)(a, b).astype(a.dtype)


def _where_infer(c: TensorType, a: TensorType, b: TensorType) -> TensorType:
    require(c.dtype is DType.bool, f"where: condition must be bool, got {c.dtype}")
    return TensorType(same_dtype(a, b), broadcast_shapes(c.shape, a.shape, b.shape))


define_op("where", arity=3, infer=_where_infer, traits=ELEMENTWISE, precision="follow")(
    lambda c, a, b: np.where(c, a, b).astype(a.dtype, copy=False))


ROUND_MODES = ("nearest", "up", "down")


def _cast_infer(t: TensorType, dtype: DType, saturate: bool, round: str) -> TensorType:
    require(not saturate or dtype.is_float8,
            f"cast: saturate applies to the 8-bit float types, not to {dtype}")
    require(round in ROUND_MODES, f"cast: round must be one of {', '.join(ROUND_MODES)}, got {round!r}")
    require(round == "nearest" or dtype is DType.f8e8m0fnu,
            f"cast: round = {round!r} applies to f8e8m0fnu only, not to {dtype}")
    return t.with_dtype(dtype)


@define_op("cast", infer=_cast_infer, traits=ELEMENTWISE,
           attrs={"dtype": "dtype", "saturate": ("bool", False), "round": ("str", "nearest")})
def cast(x, dtype, saturate, round):
    """Convert to another dtype: floats to ints truncate toward zero, NaN to bool is true; to a narrower
    float, round to nearest even, with out-of-range values becoming inf or NaN as the type allows
    (f4e2m1fn, which has neither, saturates, and NaN becomes a zero). `saturate` (8-bit floats) clamps
    them, infinities included, to the largest finite value instead. To f8e8m0fnu (powers of two),
    `round` picks the power: nearest (ties up), up or down, from |x|; out of range (and 0) is NaN
    unless `saturate`, which clamps to 2^-127 .. 2^127 (inf to 2^127). A cast to the operand's own
    dtype is the identity."""
    source = DType.from_numpy(x.dtype)
    if source is dtype:
        return x
    if source.is_float and source.bits < 16:
        x = x.astype(np.float32)  # exact: every narrow float is an f32
    elif source.is_packed:
        x = x.astype(np.int64)  # exact (and ml_dtypes converts between its sub-byte ints only through it)
    if dtype is DType.f8e8m0fnu:
        return to_f8e8m0(x, saturate, round)
    target = dtype.numpy
    if saturate:
        info = ml_dtypes.finfo(target)
        x = np.clip(x, float(info.min), float(info.max))  # NaN stays NaN
    if x.dtype.kind == "f" and target.kind in "iu":
        with np.errstate(invalid="ignore"):
            return np.trunc(x.astype(np.float64)).astype(target)
    if x.dtype.kind not in "iub" and target == np.bool_:
        return x.astype(np.float64) != 0
    with np.errstate(over="ignore", invalid="ignore"):  # out of range is inf or NaN, as documented
        return x.astype(target)


def to_f8e8m0(x: np.ndarray, saturate: bool, round: str) -> np.ndarray:
    """|x| as a power of two 2^e, e in [-127, 127] (f8e8m0fnu), rounding the exponent as `round` says:
    down: the largest 2^e <= |x|; up: the smallest 2^e >= |x|; nearest: the nearer of the two, ties
    (|x| = 1.5 * 2^e) up. NaN is NaN; 0, inf and exponents out of range are NaN, or with `saturate`
    the nearest end of the range (0 -> 2^-127, inf -> 2^127)."""
    a = np.abs(np.asarray(x, dtype=np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        frac, exp = np.frexp(a)  # a = frac * 2^exp, frac in [0.5, 1)
    e = exp.astype(np.int64) - 1
    m = 2 * frac  # a = m * 2^e, m in [1, 2)
    if round == "up":
        e = e + (m > 1)
    elif round == "nearest":
        e = e + (m >= 1.5)
    finite = np.isfinite(a) & (a > 0)
    if saturate:
        e = np.where(np.isinf(a), 127, np.where(a == 0, -127, np.clip(e, -127, 127)))
        bad = np.isnan(a)
    else:
        bad = ~finite | (e < -127) | (e > 127)
    code = np.where(bad, 0xFF, np.clip(e, -127, 127) + 127).astype(np.uint8)
    return code.view(ml_dtypes.float8_e8m0fnu)


@op_samples
def _samples(s):
    return {
        "exp": [s(s.f32(3, 4))],
        "log": [s(s.f32(3, 4, low=0.1))],
        "sqrt": [s(s.f32(3, 4, low=0.1))],
        "sin": [s(s.f32(3, 4))],
        "cos": [s(s.f32(3, 4))],
        "tan": [s(s.f32(3, 4))],
        "asin": [s(s.f32(5, low=-0.9, high=0.9))],
        "acos": [s(s.f32(5, low=-0.9, high=0.9))],
        "atan": [s(s.f32(3, 4))],
        "sinh": [s(s.f32(3, 4))],
        "cosh": [s(s.f32(3, 4))],
        "tanh": [s(s.f32(3, 4))],
        "asinh": [s(s.f32(3, 4))],
        "acosh": [s(s.f32(5, low=1.1, high=4))],
        "atanh": [s(s.f32(5, low=-0.9, high=0.9))],
        "erf": [s(s.f32(3, 4))],
        "sigmoid": [s(s.f32(3, 4))],
        "rsqrt": [s(s.f32(3, 4, low=0.1))],
        "reciprocal": [s(s.f32(3, 4, low=0.5))],
        "floor": [s(s.f32(3, 4))],
        "ceil": [s(s.f32(3, 4))],
        "round": [s(s.f32(3, 4)), s(np.array([0.5, 1.5, 2.5, -0.5, -1.5, 2.4], np.float32))],
        "neg": [s(s.f32(3, 4)), s(s.ints(6))],
        "abs": [s(s.f32(3, 4)), s(s.ints(6))],
        "sign": [s(s.f32(3, 4)), s(s.ints(6)), s(s.ints(6, low=0, dtype=np.uint8))],
        "relu": [s(s.f32(3, 4)), s(s.ints(6, dtype=np.int32))],
        "not": [s(s.bools(2, 3))],
        "bitwise_not": [s(s.ints(6, dtype=np.int32))],
        "isnan": [s(np.array([0.0, np.nan, np.inf, -1.0], np.float32))],
        "isinf": [
            s(np.array([0.0, np.nan, np.inf, -np.inf], np.float32)),
            s(np.array([0.0, np.nan, np.inf, -np.inf], np.float32), detect_negative=False),
        ],
        "add": [s(s.f32(2, 3), s.f32(3))],
        "sub": [s(s.f32(2, 1), s.f32(1, 3))],
        "mul": [s(s.f32(2, 3), s.f32(2, 3))],
        "max": [s(s.f32(4), s.f32(4))],
        "min": [s(s.ints(4), s.ints(4))],
        "div": [
            s(s.f32(2, 3), s.f32(2, 3, low=0.5)),
            s(s.ints(8), s.ints(8, low=1)),
            s(s.ints(8), -s.ints(8, low=1)),
        ],
        "pow": [
            s(s.f32(2, 3, low=0.1), s.f32(2, 3)),
            s(s.f32(3, low=0.1), s.ints(3, low=0, high=3)),
            s(s.ints(4, low=0, high=4), s.ints(4, low=0, high=4)),
            s(s.ints(4, low=1, high=9), np.full(4, 0.5, np.float32)),
        ],
        "mod": [
            s(s.ints(8), s.ints(8, low=1)),
            s(s.ints(8), -s.ints(8, low=1)),
            s(s.f32(8), s.f32(8, low=0.5)),
            s(s.f32(8), s.f32(8, low=0.5), fmod=True),
            s(s.ints(8), s.ints(8, low=1), fmod=True),
        ],
        "equal": [s(s.ints(6, low=0, high=3), s.ints(6, low=0, high=3))],
        "less": [s(s.f32(2, 3), s.f32(3))],
        "less_equal": [s(s.ints(6, low=0, high=3), s.ints(6, low=0, high=3))],
        "greater": [s(s.f32(4), s.f32(4))],
        "greater_equal": [s(s.ints(6, low=0, high=3, dtype=np.uint8), s.ints(6, low=0, high=3, dtype=np.uint8))],
        "and": [s(s.bools(5), s.bools(5))],
        "or": [s(s.bools(5), s.bools(1))],
        "xor": [s(s.bools(5), s.bools(5))],
        "bitwise_and": [s(s.ints(5, dtype=np.int32), s.ints(5, dtype=np.int32))],
        "bitwise_or": [s(s.ints(5, low=0, dtype=np.uint8), s.ints(5, low=0, dtype=np.uint8))],
        "bitwise_xor": [s(s.ints(5), s.ints(5))],
        "bit_shift": [
            s(s.ints(5, low=0, high=100, dtype=np.uint8), s.ints(5, low=0, high=4, dtype=np.uint8), direction="left"),
            s(s.ints(5, low=-100, high=100, dtype=np.int32), s.ints(5, low=0, high=4, dtype=np.int32), direction="right"),
            s(s.ints(5, low=0, high=200, dtype=np.uint8), s.ints(5, low=0, high=4, dtype=np.uint8), direction="right"),
        ],
        "where": [s(s.bools(2, 3), s.f32(2, 3), s.f32(3))],
        "cast": [
            s(s.f32(6) * 3, dtype="i32"),
            s(np.array([0.0, np.nan, -1.5], np.float32), dtype="bool"),
            s(s.ints(6), dtype="f32"),
            s(s.bools(4), dtype="f32"),
            s(s.f32(6), dtype="f16"),
            s(s.f32(6), dtype="bf16"),
            s(np.array([3.7, -1.2, 1.0, -0.0, 6.9, -7.5], np.float32), dtype="i4"),
            s(s.ints(6), dtype="bool"),
            s(s.ints(6), dtype="i8"),
        ],
    }
