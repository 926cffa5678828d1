"""The body of a kernel, written once for every target: each elementwise op as a composition of primitives.

A target implements `Ops`, the primitives of its language: literals, infix
arithmetic, comparisons, select, conversion, and a table of the math
functions it spells natively (`function`). Everything else is composed here,
once, against that protocol, with the semantics of the reference interpreter
(leptonc/ir/ops/elementwise.py):

- max, min and relu propagate NaN; reductions of max and min are NaN when the
  row holds one, and argmax/argmin return the first NaN's position (the last
  with select_last_index), as numpy does (`reduction_identity` and the
  emitters' NaN flags);
- integer division truncates and never traps: x / 0 is x, x % 0 is 0,
  INT_MIN / -1 wraps and INT_MIN % -1 is 0;
- float to integer casts give the minimum of the 64- or 32-bit integer the
  conversion goes through for NaN and out-of-range values (what x86, and so
  the reference, does), which narrower types then wrap;
- f16 and bf16 operands are widened to f32 where a target does not compute
  in them (`Ops.computes`), and the result rounded back.

A math function a target lacks is decomposed (tinygrad's way: a renderer
spells what it has, the rest is rewritten): tan as sin / cos, tanh from one
exp, atan as Cephes' range-reduced polynomial, pow from exp and log with the
sign rules of IEEE pow, Python's mod from fmod. Composites that need an
argument more than once bind it (`Ops.bind`) where the target can hold a
statement, so nothing is computed twice.

Adding an elementwise op: its registry entry (ir/ops/*), then one line in
`_UNARY` or `_BINARY` composing it from primitives (no target line), or a
name in `FUNCTIONS` with a composite here plus, for a target that has the
function natively, one entry in that target's function table.

Data movement shares its index rules here too: the pad constant and the position each pad mode reads, the kept
triangle of trilu, the combine and start of the scans (`SCANS`).
"""
from __future__ import annotations

import math
from typing import Callable

import ml_dtypes
import numpy as np

from ..ir import dims
from ..ir.dtypes import DType
from ..ir.errors import LeptoncError
from . import dim_expression

# math functions of one float argument that a target may spell natively (each has a composite below, or is
# required of every target)
FUNCTIONS = ("exp", "log", "sqrt", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh",
             "asinh", "acosh", "atanh", "erf", "floor", "ceil", "round", "trunc", "abs")
LOW_FLOATS = (DType.f16, DType.bf16)


class Ops:
    """The primitives of one target's kernel language: a table of spellings (format strings over {a}, {b},
    {c}, {sym} and {t}, the target's name of the result's element type) and a table of math functions.

    A subclass fills the tables, `type_name`, `literal` and `function`; `function` returns None for a
    function the target lacks, which this module's composite then replaces."""

    target = ""
    error: type[LeptoncError] = LeptoncError
    TYPES: dict[DType, str] = {}   # the element type of each dtype the target computes with
    DIM_CONSTANT = "{}"            # an integer constant in a size expression
    DIM_MUL = "*"                  # the product in a size expression
    INFIX = ""         # a sym b in dtype, sym one of + - * / % & | ^ << >> (/, % truncate between integers)
    INT_DIV = "/"      # the truncating division of integers
    COMPARE = "(({a}) {sym} ({b}))"  # a sym b as a bool, sym one of == != < <= > >=
    AND = OR = ""      # the operators of two bools
    NOT = ""           # the negation of a bool
    INVERT = ""        # bitwise not of an integer
    NEG_FLOAT = ""     # -a
    NEG_INT = ""       # -a, wrapping (INT_MIN stays INT_MIN)
    SELECT = ""        # a where the bool c else b
    CONVERT = ""       # the plain conversion (never to bool; float to integer only in range)

    def type_name(self, dtype: DType, where: str = "") -> str:
        try:
            return self.TYPES[dtype]
        except KeyError:
            raise self.error(f"{where}: dtype {dtype} is not supported by the {self.target} target "
                             f"(supported: {', '.join(d.value for d in self.TYPES)})") from None

    def dim(self, d, where: str = "") -> str:
        """A dim as an integer expression over the symbol variables."""
        if isinstance(d, int):
            return self.DIM_CONSTANT.format(d)
        if d == dims.UNKNOWN:
            raise self.error(f"{where}: a data-dependent dim ('?') is not supported by the {self.target} target")
        text = dim_expression(d, self.DIM_CONSTANT.format, mul=self.DIM_MUL)
        return text[1:-1] if len(dims.terms(d)) == 1 and "*" not in text else text

    def numel(self, shape, where: str = "") -> str:
        return self.dim(dims.product(shape), where)

    def literal(self, value, dtype: DType) -> str:
        raise NotImplementedError

    def function(self, name: str, args: list[str], dtype: DType) -> str | None:
        """`name` (one of FUNCTIONS; pow, fmod, or maximum/minimum propagating NaN, of two floats; ipow of two
        integers) applied in dtype."""
        raise NotImplementedError

    def infix(self, sym: str, a: str, b: str, dtype: DType) -> str:
        """(a divisor that truncates is never 0 nor, for a signed type, -1: the composites guard it)"""
        sym = self.INT_DIV if sym == "/" and not dtype.is_float else sym
        return self.INFIX.format(a=a, b=b, sym=sym, t=self.type_name(dtype))

    def compare(self, sym: str, a: str, b: str) -> str:
        return self.COMPARE.format(a=a, b=b, sym=sym)

    def logical(self, sym: str, a: str, b: str) -> str:
        return f"(({a}) {self.AND if sym == 'and' else self.OR} ({b}))"

    def logical_not(self, a: str) -> str:
        return self.NOT.format(a=a)

    def invert(self, a: str, dtype: DType) -> str:
        return self.INVERT.format(a=a, t=self.type_name(dtype))

    def negate(self, a: str, dtype: DType) -> str:
        return (self.NEG_FLOAT if dtype.is_float else self.NEG_INT).format(a=a, t=self.type_name(dtype))

    def select(self, cond: str, a: str, b: str, dtype: DType) -> str:
        return self.SELECT.format(c=cond, a=a, b=b, t=self.type_name(dtype))

    def convert(self, a: str, src: DType, dst: DType) -> str:
        return self.CONVERT.format(a=a, t=self.type_name(dst))

    def computes(self, dtype: DType) -> bool:
        """Whether elementwise math runs in dtype itself (else in f32, rounded back)."""
        return True

    def to_e8m0(self, a: str, src: DType, saturate: bool, round: str) -> str:
        """`a` cast to f8e8m0fnu: the power of two that `round` picks from |a| (the `cast` op's rules)."""
        raise self.unsupported("a cast to f8e8m0fnu")

    def bind(self, expr: str, dtype: DType) -> str:
        """A name for expr's value where the target can hold a statement; else expr itself."""
        return expr

    def unsupported(self, what: str) -> LeptoncError:
        return self.error(f"{what} is not supported by the {self.target} target")


class _Body:
    """Composes ops from one target's primitives (`ops`), with `bind` holding repeated subexpressions."""

    def __init__(self, ops: Ops, bind: Callable[[str, DType], str] | None):
        self.o = ops
        self.bind = bind or ops.bind

    def lit(self, value, dt: DType) -> str:
        return self.o.literal(value, dt)

    def fn(self, name: str, x: str, dt: DType) -> str:
        native = self.o.function(name, [x], dt)
        if native is not None:
            return native
        composite = _COMPOSITES.get(name)
        if composite is None:
            raise self.o.unsupported(f"{name} over {dt}")
        return composite(self, x, dt)

    def add(self, a, b, dt):
        return self.o.infix("+", a, b, dt)

    def sub(self, a, b, dt):
        return self.o.infix("-", a, b, dt)

    def mul(self, a, b, dt):
        return self.o.infix("*", a, b, dt)

    def div(self, a, b, dt):
        return self.o.infix("/", a, b, dt)

    def where(self, c, a, b, dt):
        return self.o.select(c, a, b, dt)

    def isnan(self, a):
        return self.o.compare("!=", a, a)

    def either(self, *conds):
        out = conds[0]
        for c in conds[1:]:
            out = self.o.logical("or", out, c)
        return out

    def odd(self, f: str, dt: DType) -> str:
        """f (an integral float) is odd."""
        half = self.fn("floor", self.mul(f, self.lit(0.5, dt), dt), dt)
        return self.o.compare("!=", self.sub(f, self.mul(self.lit(2.0, dt), half, dt), dt), self.lit(0, dt))

    def mirrored(self, x: str, y: str, dt: DType) -> str:
        """y for x >= 0, -y for x < 0 (odd functions computed on |x|)."""
        y = self.bind(y, dt)
        return self.where(self.o.compare("<", x, self.lit(0, dt)), self.o.negate(y, dt), y, dt)


# ---------------------------------------------------------------- composites of math functions

def _tan(k: _Body, x, dt):
    return k.div(k.fn("sin", x, dt), k.fn("cos", x, dt), dt)


def _sinh(k: _Body, x, dt):
    return k.mul(k.sub(k.fn("exp", x, dt), k.fn("exp", k.o.negate(x, dt), dt), dt), k.lit(0.5, dt), dt)


def _cosh(k: _Body, x, dt):
    return k.mul(k.add(k.fn("exp", x, dt), k.fn("exp", k.o.negate(x, dt), dt), dt), k.lit(0.5, dt), dt)


def _tanh(k: _Body, x, dt):
    """From one exp of -2|x|: no overflow; below |x| = 0.1, where 1 - exp(-2|x|) cancels, its odd Taylor
    polynomial to x^7 (relative error under 1e-9 there)."""
    a = k.bind(k.fn("abs", x, dt), dt)
    t = k.bind(k.fn("exp", k.mul(k.lit(-2.0, dt), a, dt), dt), dt)
    one = k.lit(1.0, dt)
    a2 = k.bind(k.mul(a, a, dt), dt)
    series = k.lit(-17 / 315, dt)
    for c in (2 / 15, -1 / 3, 1.0):
        series = k.add(k.mul(series, a2, dt), k.lit(c, dt), dt)
    small = k.o.compare("<", a, k.lit(0.1, dt))
    return k.mirrored(x, k.where(small, k.mul(a, series, dt), k.div(k.sub(one, t, dt), k.add(one, t, dt), dt), dt), dt)


def _asinh(k: _Body, x, dt):
    a = k.bind(k.fn("abs", x, dt), dt)
    return k.mirrored(x, k.fn("log", k.add(a, k.fn("sqrt", k.add(k.mul(a, a, dt), k.lit(1.0, dt), dt), dt), dt),
                                                                                                  dt), dt)


def _acosh(k: _Body, x, dt):
    return k.fn("log", k.add(x, k.fn("sqrt", k.sub(k.mul(x, x, dt), k.lit(1.0, dt), dt), dt), dt), dt)


def _atanh(k: _Body, x, dt):
    one = k.lit(1.0, dt)
    return k.mul(k.lit(0.5, dt), k.fn("log", k.div(k.add(one, x, dt), k.sub(one, x, dt), dt), dt), dt)


def _single_precision(k: _Body, name: str, dt: DType) -> None:
    if dt is DType.f64:
        raise k.o.unsupported(f"{name} over f64 (its composite is accurate to f32)")


def _atan(k: _Body, x, dt):
    """Cephes' atanf: |x| reduced to [0, tan(pi/8)] around 0, pi/4 or pi/2, then an odd polynomial."""
    _single_precision(k, "atan", dt)
    c = k.o.compare
    a = k.bind(k.fn("abs", x, dt), dt)
    big = k.bind(c(">", a, k.lit(2.414213562373095, dt)), DType.bool)
    mid = k.bind(c(">", a, k.lit(0.4142135623730950, dt)), DType.bool)
    one = k.lit(1.0, dt)
    r = k.where(big, k.o.negate(k.div(one, k.where(big, a, one, dt), dt), dt),
                k.where(mid, k.div(k.sub(a, one, dt), k.add(a, one, dt), dt), a, dt), dt)
    r = k.bind(r, dt)
    z = k.bind(k.mul(r, r, dt), dt)
    p = k.lit(8.05374449538e-2, dt)
    for coef in (-1.38776856032e-1, 1.99777106478e-1, -3.33329491539e-1):
        p = k.add(k.mul(p, z, dt), k.lit(coef, dt), dt)
    y0 = k.where(big, k.lit(math.pi / 2, dt), k.where(mid, k.lit(math.pi / 4, dt), k.lit(0.0, dt), dt), dt)
    return k.mirrored(x, k.add(y0, k.add(k.mul(k.mul(p, z, dt), r, dt), r, dt), dt), dt)


def _asin(k: _Body, x, dt):
    one = k.lit(1.0, dt)
    return k.fn("atan", k.div(x, k.fn("sqrt", k.mul(k.sub(one, x, dt), k.add(one, x, dt), dt), dt), dt), dt)


def _acos(k: _Body, x, dt):
    one = k.lit(1.0, dt)
    t = k.fn("sqrt", k.div(k.sub(one, x, dt), k.add(one, x, dt), dt), dt)
    return k.mul(k.lit(2.0, dt), k.fn("atan", t, dt), dt)


def _round(k: _Body, x, dt):
    """Round half to even, as numpy.round."""
    f = k.bind(k.fn("floor", x, dt), dt)
    d = k.bind(k.sub(x, f, dt), dt)
    c = k.o.compare
    half = k.lit(0.5, dt)
    up = k.add(f, k.lit(1.0, dt), dt)
    return k.where(c(">", d, half), up, k.where(c("<", d, half), f, k.where(k.odd(f, dt), up, f, dt), dt), dt)


def _trunc(k: _Body, x, dt):
    return k.where(k.o.compare("<", x, k.lit(0, dt)), k.fn("ceil", x, dt), k.fn("floor", x, dt), dt)


def _abs(k: _Body, x, dt):
    return k.where(k.o.compare("<", x, k.lit(0, dt)), k.o.negate(x, dt), x, dt)


_COMPOSITES = {"tan": _tan, "sinh": _sinh, "cosh": _cosh, "tanh": _tanh, "asinh": _asinh, "acosh": _acosh,
               "atanh": _atanh, "atan": _atan, "asin": _asin, "acos": _acos, "round": _round, "trunc": _trunc,
               "abs": _abs}


# ---------------------------------------------------------------- binary composites

def _fmod(k: _Body, a, b, dt):
    """C's fmod: the remainder takes the dividend's sign; between integers x % 0 and INT_MIN % -1 are 0. Without a
    native fmod, floats compute a - trunc(a / b) * b, with fmod's value at an infinite divisor and a zero
    remainder's sign (exact while the quotient fits the mantissa)."""
    if dt.is_float:
        native = k.o.function("fmod", [a, b], dt)
        if native is not None:
            return native
        a, b = k.bind(a, dt), k.bind(b, dt)
        r = k.bind(k.sub(a, k.mul(k.fn("trunc", k.div(a, b, dt), dt), b, dt), dt), dt)
        c = k.o.compare
        finite_by_infinite = k.o.logical("and", c("==", k.sub(a, a, dt), k.lit(0, dt)),
                                         c("==", k.fn("abs", b, dt), k.lit(math.inf, dt)))
        signed_zero = k.mul(a, k.lit(0, dt), dt)  # a zero remainder takes the dividend's sign
        return k.where(finite_by_infinite, a, k.where(c("==", r, k.lit(0, dt)), signed_zero, r, dt), dt)
    plain = k.bind(_plain_divisor(k, b, dt), DType.bool)
    return k.where(plain, k.o.infix("%", a, k.where(plain, b, k.lit(1, dt), dt), dt), k.lit(0, dt), dt)


def _pymod(k: _Body, a, b, dt):
    """Python's %: the remainder takes the divisor's sign."""
    r = _fmod(k, a, b, dt)
    if not dt.is_signed:
        return r
    r = k.bind(r, dt)
    c, zero = k.o.compare, k.lit(0, dt)
    wrong_sign = k.o.logical("and", c("!=", r, zero), c("!=", c("<", r, zero), c("<", b, zero)))
    return k.where(wrong_sign, k.add(r, b, dt), r, dt)


def _plain_divisor(k: _Body, b, dt):
    """Where an integer divisor divides as the hardware does: not 0 and, for a signed type, not -1."""
    nonzero = k.o.compare("!=", b, k.lit(0, dt))
    return k.o.logical("and", nonzero, k.o.compare("!=", b, k.lit(-1, dt))) if dt.is_signed else nonzero


def _int_div(k: _Body, a, b, dt):
    """Truncating; x / 0 is x and x / -1 is -x, wrapping."""
    q = k.div(a, k.where(_plain_divisor(k, b, dt), b, k.lit(1, dt), dt), dt)
    if dt.is_signed:
        q = k.where(k.o.compare("==", b, k.lit(-1, dt)), k.o.negate(a, dt), q, dt)
    return k.where(k.o.compare("==", b, k.lit(0, dt)), a, q, dt)


def _float_pow(k: _Body, a, b, dt):
    """IEEE pow: negative bases keep the sign of odd integral exponents and give NaN for non-integral ones
    (except -inf); x ** 0 and 1 ** y are 1."""
    native = k.o.function("pow", [a, b], dt)
    if native is not None:
        return native
    c = k.o.compare
    m = k.bind(k.fn("exp", k.mul(b, k.fn("log", k.fn("abs", a, dt), dt), dt), dt), dt)
    integral = c("==", k.fn("floor", b, dt), b)
    negative = k.where(integral, k.where(k.odd(b, dt), k.o.negate(m, dt), m, dt),
                       k.where(c("==", a, k.lit(-math.inf, dt)), m, k.lit(math.nan, dt), dt), dt)
    y = k.where(c("<", a, k.lit(0, dt)), negative, m, dt)
    one = k.lit(1.0, dt)
    return k.where(c("==", b, k.lit(0, dt)), one, k.where(c("==", a, one), one, y, dt), dt)


def _pow(k: _Body, a, b, dt, bt, out):
    if dt.is_float and bt is dt:
        return _float_pow(k, a, b, dt)
    if dt.is_float or bt.is_float:  # computed in f64, as the reference does
        wide = _float_pow(k, k.o.convert(a, dt, DType.f64), b if bt is DType.f64 else k.o.convert(b, bt, DType.f64),
                          DType.f64)
        return _cast(k, wide, DType.f64, out) if not dt.is_float else k.o.convert(wide, DType.f64, out)
    native = k.o.function("ipow", [a, k.o.convert(b, bt, dt) if bt is not dt else b], dt)
    if native is None:
        raise k.o.unsupported(f"pow of {dt} by {bt}")
    return native


def pow_const(k: _Body, base: str, exponent: float, dt: DType) -> str | None:
    """x**1, x**2, x**3, x**0.5 as multiplications or a square root (exact in numpy's sense up to rounding)."""
    if exponent == 1.0:
        return f"({base})"
    if exponent == 2.0:
        return k.mul(base, base, dt)
    if exponent == 3.0:
        return k.mul(k.mul(base, base, dt), base, dt)
    if exponent == 0.5:
        return k.fn("sqrt", base, dt)
    return None


# ---------------------------------------------------------------- casts

def _saturated(k: _Body, a, src: DType, dst: DType) -> str:
    """`a` clamped to the finite range of 8-bit float dst (infinities too; NaN stays NaN), as a cast with
    `saturate` first does; an integer `a` as an f64."""
    if not src.is_float:
        a, src = k.o.convert(a, src, DType.f64), DType.f64
    top = float(ml_dtypes.finfo(dst.numpy).max)
    a = k.bind(a, src)
    c = k.o.compare
    return k.where(c(">", a, k.lit(top, src)), k.lit(top, src), k.where(c("<", a, k.lit(-top, src)),
                                                                         k.lit(-top, src), a, src), src)


def _shift(k: _Body, left: bool, a, b, dt: DType, bt: DType) -> str:
    """a << b or a >> b (arithmetic for signed a), as numpy: a shift count outside [0, width) of the type the
    shift runs in (at least 32 bits) gives 0, or -1 shifting a negative a right, where C's is undefined."""
    a, b = k.bind(a, dt), k.bind(b, bt)
    width = max(32, dt.bits)
    inside = k.o.compare("<", b, k.lit(width, bt))
    if bt.is_signed:
        inside = k.o.logical("and", k.o.compare(">=", b, k.lit(0, bt)), inside)
    outside = k.lit(0, dt)
    if not left and dt.is_signed:
        outside = k.where(k.o.compare("<", a, k.lit(0, dt)), k.lit(-1, dt), outside, dt)
    return k.where(inside, k.o.infix("<<" if left else ">>", a, b, dt), outside, dt)


def _cast_op(k: _Body, attrs: dict, a, src: DType, dst: DType) -> str:
    """The `cast` op: to f8e8m0fnu by the target's power-of-two rounding; with `saturate`, clamped first."""
    if dst is DType.f8e8m0fnu and src is not dst:
        return k.o.to_e8m0(a, src, attrs.get("saturate", False), attrs.get("round", "nearest"))
    if attrs.get("saturate"):
        return _cast(k, _saturated(k, a, src, dst), src if src.is_float else DType.f64, dst)
    return _cast(k, a, src, dst)


def _cast(k: _Body, a, src: DType, dst: DType) -> str:
    if dst is src:
        return a
    if dst is DType.bool:
        return k.o.compare("!=", a, k.lit(0, src))
    if src.is_float and not dst.is_float:
        via, limit = (DType.i64, 2.0 ** 63) if dst in (DType.i64, DType.u64, DType.u32) else (DType.i32, 2.0 ** 31)
        c = k.o.compare
        bad = k.either(k.isnan(a), c(">=", a, k.lit(limit, src)), c("<", a, k.lit(-limit, src)))
        v = k.where(bad, k.lit(int(np.iinfo(via.numpy).min), via), k.o.convert(a, src, via), via)
        return v if via is dst else k.o.convert(v, via, dst)
    return k.o.convert(a, src, dst)


# ---------------------------------------------------------------- the op table

def _unary_float(name):
    return lambda k, at, a, dt, out: k.fn(name, a, dt)


def _relu(k, at, a, dt, out):
    zero = k.lit(0, dt)
    keep = k.o.compare(">", a, zero)
    return k.where(k.either(keep, k.isnan(a)) if dt.is_float else keep, a, zero, dt)


def _sign(k, at, a, dt, out):
    c, zero = k.o.compare, k.lit(0, dt)
    if not dt.is_signed:
        return k.where(c(">", a, zero), k.lit(1, dt), zero, dt)
    return k.where(c(">", a, zero), k.lit(1, dt), k.where(c("<", a, zero), k.lit(-1, dt), a, dt), dt)


def _isinf(k, at, a, dt, out):
    sides = [k.o.compare("==", a, k.lit(s * math.inf, dt))
             for s, on in ((1, at["detect_positive"]), (-1, at["detect_negative"])) if on]
    return k.either(*sides) if sides else k.lit(False, DType.bool)


def _extreme(sym):
    def lower(k, at, a, b, dt, bt, out):
        native = k.o.function("maximum" if sym == ">" else "minimum", [a, b], dt) if dt.is_float else None
        if native is not None:
            return native
        pick = k.o.compare(sym, a, b)
        return k.where(k.either(pick, k.isnan(a)) if dt.is_float else pick, a, b, dt)
    return lower


def _arith(sym, bool_sym):
    return lambda k, at, a, b, dt, bt, out: k.o.infix(bool_sym if dt is DType.bool else sym, a, b, dt)


_UNARY = {name: _unary_float(name) for name in FUNCTIONS if name != "trunc"}
_UNARY.update({
    "rsqrt": lambda k, at, a, dt, out: k.div(k.lit(1.0, dt), k.fn("sqrt", a, dt), dt),
    "reciprocal": lambda k, at, a, dt, out: k.div(k.lit(1.0, dt), a, dt),
    "sigmoid": lambda k, at, a, dt, out: k.div(k.lit(1.0, dt), k.add(k.lit(1.0, dt), k.fn(
        "exp", k.o.negate(a, dt), dt), dt), dt),
    "neg": lambda k, at, a, dt, out: k.o.negate(a, dt),
    "abs": lambda k, at, a, dt, out: k.fn("abs", a, dt) if dt.is_float else _abs(k, a, dt) if dt.is_signed else a,
    "sign": _sign,
    "relu": _relu,
    "not": lambda k, at, a, dt, out: k.o.logical_not(a),
    "bitwise_not": lambda k, at, a, dt, out: k.o.logical_not(a) if dt is DType.bool else k.o.invert(a, dt),
    "isnan": lambda k, at, a, dt, out: k.isnan(a),
    "isinf": _isinf,
    "cast": lambda k, at, a, dt, out: _cast_op(k, at, a, dt, out),
})
_BINARY = {
    "add": _arith("+", "|"), "sub": _arith("-", "^"), "mul": _arith("*", "&"),
    "div": lambda k, at, a, b, dt, bt, out: k.div(a, b, dt) if dt.is_float else _int_div(k, a, b, dt),
    "max": _extreme(">"), "min": _extreme("<"),
    "pow": lambda k, at, a, b, dt, bt, out: _pow(k, a, b, dt, bt, out),
    "mod": lambda k, at, a, b, dt, bt, out: (_fmod if at["fmod"] else _pymod)(k, a, b, dt),
    "equal": lambda k, at, a, b, dt, bt, out: k.o.compare("==", a, b),
    "less": lambda k, at, a, b, dt, bt, out: k.o.compare("<", a, b),
    "less_equal": lambda k, at, a, b, dt, bt, out: k.o.compare("<=", a, b),
    "greater": lambda k, at, a, b, dt, bt, out: k.o.compare(">", a, b),
    "greater_equal": lambda k, at, a, b, dt, bt, out: k.o.compare(">=", a, b),
    "and": lambda k, at, a, b, dt, bt, out: k.o.logical("and", a, b),
    "or": lambda k, at, a, b, dt, bt, out: k.o.logical("or", a, b),
    "xor": lambda k, at, a, b, dt, bt, out: k.o.compare("!=", a, b),
    "bitwise_and": _arith("&", "&"), "bitwise_or": _arith("|", "|"), "bitwise_xor": _arith("^", "^"),
    "bit_shift": lambda k, at, a, b, dt, bt, out: _shift(k, at["direction"] == "left", a, b, dt, bt),
}


def elementwise(ops: Ops, op: str, attrs: dict, args: list[str], in_dtypes: list[DType], out: DType,
                exponent: float | None = None, bind: Callable[[str, DType], str] | None = None) -> str:
    """The expression computing elementwise `op` from argument expressions in `ops`' language.

    `exponent`: pow's exponent when it is a constant (x**2 becomes x * x); `bind`: where the emitter can
    hold a statement, a function naming a subexpression (else Ops.bind)."""
    k = _Body(ops, bind)
    if any(d.is_packed and d.is_int for d in in_dtypes):  # a sub-byte integer is the code in a byte's low bits
        args = [_unpacked_int(ops, a, d) if d.is_packed and d.is_int else a for a, d in zip(args, in_dtypes)]
        in_dtypes = [_BYTE_OF.get(d, d) for d in in_dtypes]
    if op not in ("cast", "where") and any(d in LOW_FLOATS and not ops.computes(d) for d in in_dtypes):
        wide = [ops.convert(a, d, DType.f32) if d in LOW_FLOATS else a for a, d in zip(args, in_dtypes)]
        result = elementwise(ops, op, attrs, wide, [DType.f32 if d in LOW_FLOATS else d for d in in_dtypes],
                             DType.f32 if out in LOW_FLOATS else out, exponent, bind)
        return ops.convert(result, DType.f32, out) if out in LOW_FLOATS else result
    dt = in_dtypes[0]
    if op == "pow" and exponent is not None and dt.is_float:
        fast = pow_const(k, args[0], exponent, dt)
        if fast is not None:
            return fast
    if op == "where":
        return k.where(args[0], args[1], args[2], out)
    if op in _UNARY and len(args) == 1:
        return _UNARY[op](k, attrs, args[0], dt, out)
    if op in _BINARY and len(args) == 2:
        return _BINARY[op](k, attrs, args[0], args[1], dt, in_dtypes[1], out)
    raise ops.unsupported(f"elementwise op '{op}'")


_BYTE_OF = {DType.i4: DType.i8, DType.i2: DType.i8, DType.u4: DType.u8, DType.u2: DType.u8}


def _unpacked_int(ops: Ops, a: str, dtype: DType) -> str:
    """A sub-byte integer's code (in the low bits of a byte, the high bits any) as an i8 or u8: masked, and
    sign-extended for the signed ones."""
    mask, top = (1 << dtype.bits) - 1, 1 << (dtype.bits - 1)
    code = f"(({a}) & {mask})"
    return ops.convert(f"(({code} ^ {top}) - {top})" if dtype.is_signed else code, _BYTE_OF[dtype], _BYTE_OF[dtype])


def constant_exponent(graph, node) -> float | None:
    """pow's exponent when it is a one-element constant."""
    if node.op != "pow":
        return None
    arr = graph.constant_of(node.inputs[1])
    return float(np.asarray(arr).reshape(())) if arr is not None and arr.size == 1 else None


def reduction_identity(op: str, dtype: DType):
    """The value a reduction starts from (sum 0, prod 1, max the lowest value, min the highest)."""
    if op in ("reduce_sum", "reduce_mean"):
        return 0
    if op == "reduce_prod":
        return 1
    high = op in ("reduce_min", "argmin")
    if dtype.is_float:
        return math.inf if high else -math.inf
    info = np.iinfo(dtype.numpy)
    return int(info.max if high else info.min)


def pad_constant(ops: Ops, node, where: str) -> str:
    """The value a pad writes outside its operand, in the target's language: constant mode is the one the
    cpu and triton kernels compute (edge, reflect and wrap are an error naming the mode)."""
    if node.attrs["mode"] != "constant":
        raise ops.error(f"{where}: pad mode {node.attrs['mode']!r} is not supported by the {ops.target} target "
                        "(constant is)")
    return ops.literal(node.attrs["value"], node.outputs[0].dtype)


def pad_source_index(ops: Ops, mode: str, j: str, m) -> str:
    """The position that pad mode `mode` (edge, reflect, wrap) reads along an axis of m > 0 kept elements (a
    dim), for position j counted from the first of them (j < 0 or j >= m lies in the padding), as numpy.pad
    does: edge repeats the border element, wrap repeats the axis, reflect mirrors it without repeating the
    border (with period 2m - 2, however wide the padding). An integer expression in i64."""
    i64, c = DType.i64, ops.compare
    n = ops.dim(m)
    if mode == "edge":
        last = ops.dim(dims.sub(m, 1))
        return ops.select(c("<", j, "0"), "0", ops.select(c(">", j, last), last, j, i64), i64)
    if mode == "wrap":
        r = ops.bind(ops.infix("%", j, n, i64), i64)
        return ops.select(c("<", r, "0"), ops.infix("+", r, n, i64), r, i64)
    if mode == "reflect":
        if isinstance(m, int):
            period = str(max(2 * m - 2, 1))
        else:
            period = ops.bind(ops.select(c(">", n, "1"), ops.dim(dims.sub(dims.mul(2, m), 2)), "1", i64), i64)
        a = ops.bind(ops.infix("%", ops.select(c("<", j, "0"), ops.negate(j, i64), j, i64), period, i64), i64)
        return ops.select(c(">=", a, n), ops.infix("-", period, a, i64), a, i64)
    raise ops.error(f"unknown pad mode {mode!r}")


# scan op -> (the elementwise op that combines the running value with the next element, the starting value)
SCANS = {"cumsum": ("add", 0), "cumprod": ("mul", 1)}


def trilu_keeps(ops: Ops, row: str, col: str, diagonal: str, upper: bool) -> str:
    """Whether trilu keeps the element at (row, col) of the last two dims (numpy.triu / tril from `diagonal`)."""
    return ops.compare(">=" if upper else "<=", f"{col} - {row}", diagonal)
