"""Triton spellings: element types, literals, symbolic dims, and the expression of each elementwise op.

This is the Triton twin of the cpu target's `cexpr.py`: the same op set with
the same numpy semantics (NaN-propagating max/min and relu, C-style integer
division guarded against zero, Python-style `mod`), written as Triton
expressions over tile variables. Functions that Triton's core language lacks
(tanh, round-half-even, pow, Python mod) are `@triton.jit` helpers of the
generated module's prelude (prelude.py), so they also run under
TRITON_INTERPRET=1, which knows only the core language.
"""
from __future__ import annotations

import math

import numpy as np

from ...ir import dims as D
from ...ir.dtypes import DType
from ...ir.errors import LeptoncError
from .. import dim_expression, symbol_var  # noqa: F401  (symbol_var is part of this module's API)

TL_TYPES = {
    DType.f32: "tl.float32", DType.f16: "tl.float16", DType.bf16: "tl.bfloat16", DType.f64: "tl.float64",
    DType.i64: "tl.int64", DType.i32: "tl.int32", DType.i16: "tl.int16", DType.i8: "tl.int8",
    DType.u8: "tl.uint8", DType.bool: "tl.int1",
}

TORCH_TYPES = {
    DType.f32: "float32", DType.f16: "float16", DType.bf16: "bfloat16", DType.f64: "float64",
    DType.i64: "int64", DType.i32: "int32", DType.i16: "int16", DType.i8: "int8", DType.u8: "uint8",
    DType.bool: "bool",
}


class UnsupportedError(LeptoncError):
    """Something the triton target cannot compile (names the node and what is missing)."""


def tltype(dtype: DType, where: str = "") -> str:
    try:
        return TL_TYPES[dtype]
    except KeyError:
        raise UnsupportedError(f"{where}: dtype {dtype} is not supported by the triton target "
                               f"(supported: {', '.join(d.value for d in TL_TYPES)})") from None


def tdim(d, where: str = "") -> str:
    """A dim as an integer expression over the kernel's symbol arguments."""
    if isinstance(d, int):
        return str(d)
    if d == D.UNKNOWN:
        raise UnsupportedError(f"{where}: a data-dependent dim ('?') is not supported by the triton target")
    text = dim_expression(d, str, mul=" * ")
    return text[1:-1] if len(D.terms(d)) == 1 and "*" not in text else text


def tnumel(shape, where: str = "") -> str:
    return tdim(D.product(shape), where)


def literal(value, dtype: DType) -> str:
    """A scalar as a Triton literal (floats keep the tile's type when combined with it)."""
    if dtype.is_float:
        f = float(value)
        if math.isnan(f):
            return 'float("nan")'
        if math.isinf(f):
            return 'float("inf")' if f > 0 else '(-float("inf"))'
        return repr(float(np.float32(f))) if dtype is DType.f32 else repr(f)
    if dtype is DType.bool:
        return "True" if value else "False"
    return str(int(value))


_CORE = {"exp": "tl.exp", "log": "tl.log", "sqrt": "tl.sqrt_rn", "sin": "tl.sin", "cos": "tl.cos",
         "erf": "tl.erf", "floor": "tl.floor", "ceil": "tl.ceil", "sigmoid": "lep_sigmoid", "rsqrt": "tl.rsqrt",
         "tanh": "lep_tanh", "round": "lep_rint"}


LOW_FLOATS = (DType.f16, DType.bf16)


def elementwise_expr(op: str, attrs: dict, args: list[str], in_dtypes: list[DType], out: DType) -> str:
    """The Triton expression computing elementwise `op` from argument expressions (numpy semantics).

    f16/bf16 operands are widened to f32 and the result rounded back, as numpy computes them (and as
    Triton's math and its interpreter, which holds bf16 as raw bits, need)."""
    if op in ("cast", "where") or not any(d in LOW_FLOATS for d in in_dtypes):
        return _expr(op, attrs, args, in_dtypes, out)
    wide = [f"tl.cast({a}, tl.float32)" if d in LOW_FLOATS else a for a, d in zip(args, in_dtypes)]
    expr = _expr(op, attrs, wide, [DType.f32 if d in LOW_FLOATS else d for d in in_dtypes],
                 DType.f32 if out in LOW_FLOATS else out)
    return f"({expr}).to({tltype(out)})" if out in LOW_FLOATS else expr


def _expr(op: str, attrs: dict, args: list[str], in_dtypes: list[DType], out: DType) -> str:
    a = args[0]
    dt = in_dtypes[0]
    f = dt.is_float
    if op in _CORE and f:
        return f"{_CORE[op]}({a})"
    if op == "tan" and f:
        return f"(tl.sin({a}) / tl.cos({a}))"
    if op == "sinh" and f:
        return f"((tl.exp({a}) - tl.exp(-({a}))) * 0.5)"
    if op == "cosh" and f:
        return f"((tl.exp({a}) + tl.exp(-({a}))) * 0.5)"
    if op == "asinh" and f:
        return f"lep_asinh({a})"
    if op == "acosh" and f:
        return f"tl.log(({a}) + tl.sqrt_rn(({a}) * ({a}) - 1.0))"
    if op == "atanh" and f:
        return f"(0.5 * tl.log((1.0 + ({a})) / (1.0 - ({a}))))"
    if op == "reciprocal":
        return f"(1.0 / ({a}))"
    if op == "neg":
        return f"(-({a}))"
    if op == "abs":
        return f"tl.abs({a})"
    if op == "sign":
        return f"tl.where(({a}) > 0, 1, tl.where(({a}) < 0, -1, ({a}))).to({tltype(out)})"
    if op == "relu":
        return f"tl.where((({a}) > 0) | (({a}) != ({a})), ({a}), 0).to({tltype(out)})"
    if op == "not":
        return f"(({a}) == 0)"
    if op == "bitwise_not":
        return f"(({a}) == 0)" if dt is DType.bool else f"(~({a}))"
    if op == "isnan":
        return f"(({a}) != ({a}))"
    if op == "isinf":
        pos = f"(({a}) == float(\"inf\"))" if attrs["detect_positive"] else "False"
        neg = f"(({a}) == -float(\"inf\"))" if attrs["detect_negative"] else "False"
        return f"({pos} | {neg})"
    if op == "cast":
        return cast(a, dt, out)
    if len(args) >= 2:
        b = args[1]
        if op in ("add", "sub", "mul"):
            if dt is DType.bool:
                return f"(({a}) {'|' if op == 'add' else '&' if op == 'mul' else '^'} ({b}))"
            return f"(({a}) {dict(add='+', sub='-', mul='*')[op]} ({b}))"
        if op == "div":
            return f"(({a}) / ({b}))" if f else _int_div(a, b, dt)
        if op in ("max", "min"):
            fn = "tl.maximum" if op == "max" else "tl.minimum"
            return f"{fn}(({a}), ({b}), propagate_nan=tl.PropagateNan.ALL)" if f else f"{fn}(({a}), ({b}))"
        if op == "pow":
            if f and in_dtypes[1].is_float:
                return f"lep_pow(({a}), ({b})).to({tltype(out)})"
            raise UnsupportedError(f"pow of {dt} by {in_dtypes[1]} is not supported by the triton target "
                                   "(float by float is)")
        if op == "mod":
            if attrs["fmod"]:
                return f"(({a}) - (({a}) / ({b})).to(tl.int64).to({tltype(dt)}) * ({b}))" if f else \
                    f"tl.where({_plain_divisor(b, dt)}, ({a}) % tl.where({_plain_divisor(b, dt)}, ({b}), 1), 0)"
            return f"lep_pymod_float(({a}), ({b}))" if f else \
                f"lep_pymod_int(({a}), tl.where({_plain_divisor(b, dt)}, ({b}), 1))"
        cmp = {"equal": "==", "less": "<", "less_equal": "<=", "greater": ">", "greater_equal": ">="}
        if op in cmp:
            return f"(({a}) {cmp[op]} ({b}))"
        logic = {"and": "&", "or": "|", "xor": "^"}
        if op in logic:
            return f"((({a}) != 0) {logic[op]} (({b}) != 0))"
        bits = {"bitwise_and": "&", "bitwise_or": "|", "bitwise_xor": "^"}
        if op in bits:
            return f"(({a}) {bits[op]} ({b}))"
        if op == "bit_shift":
            return f"(({a}) {'<<' if attrs['direction'] == 'left' else '>>'} ({b}))"
    if op == "where":
        return f"tl.where(({a}) != 0, ({args[1]}), ({args[2]}))"
    raise UnsupportedError(f"elementwise op '{op}' on {dt} has no Triton form in the triton target")


def cast(a: str, src: DType, dst: DType) -> str:
    if dst is DType.bool:
        return f"(({a}) != 0)"
    return f"({a}).to({tltype(dst)})"


def pow_const(base: str, exponent: float) -> str | None:
    """x**2, x**3, x**0.5, x**1 as multiplications or a square root."""
    if exponent == 1.0:
        return f"({base})"
    if exponent == 2.0:
        return f"(({base}) * ({base}))"
    if exponent == 3.0:
        return f"(({base}) * ({base}) * ({base}))"
    if exponent == 0.5:
        return f"tl.sqrt_rn({base})"
    return None


def _plain_divisor(b: str, dt: DType) -> str:
    """Where an integer divisor divides as the hardware does: not 0 (taken as 1) and, for a signed type, not -1
    (x / -1 is -x with wraparound, x % -1 is 0), whose INT_MIN case overflows (div's docstring)."""
    return f"(({b}) != 0)" if not dt.is_signed else f"((({b}) != 0) & (({b}) != -1))"


def _int_div(a: str, b: str, dt: DType) -> str:
    quotient = f"({a}) // tl.where({_plain_divisor(b, dt)}, ({b}), 1)"
    if dt.is_signed:
        quotient = f"tl.where(({b}) == -1, 0 - ({a}), {quotient})"
    return f"tl.where(({b}) == 0, ({a}), {quotient})"
