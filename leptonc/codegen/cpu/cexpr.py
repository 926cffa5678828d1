"""C spellings: element types, literals, symbolic dims, and the expression of each elementwise op."""
from __future__ import annotations

import math

import numpy as np

from ...ir import dims as D
from ...ir.dtypes import DType
from ...ir.errors import LeptoncError
from .. import dim_expression, symbol_var  # noqa: F401  (symbol_var is part of this module's API)

C_TYPES = {
    DType.f32: "float", DType.f64: "double", DType.i64: "int64_t", DType.i32: "int32_t",
    DType.i16: "int16_t", DType.i8: "int8_t", DType.u8: "uint8_t", DType.u16: "uint16_t",
    DType.u32: "uint32_t", DType.u64: "uint64_t", DType.bool: "uint8_t",
    DType.i4: "uint8_t",  # packed two per byte (leptonc/ir/packing.py); only the quantized kernels read it
}


class UnsupportedError(LeptoncError):
    """Something the cpu target cannot compile (names the node and what is missing)."""


def ctype(dtype: DType, where: str = "") -> str:
    try:
        return C_TYPES[dtype]
    except KeyError:
        raise UnsupportedError(f"{where}: dtype {dtype} is not supported by the cpu target "
                               f"(supported: {', '.join(d.value for d in C_TYPES)})") from None


def cdim(d, where: str = "") -> str:
    """A dim as a C int64 expression over the symbol variables."""
    if isinstance(d, int):
        return f"INT64_C({d})"
    if d == D.UNKNOWN:
        raise UnsupportedError(f"{where}: a data-dependent dim ('?') is not supported by the cpu target")
    return dim_expression(d, lambda c: f"INT64_C({c})")


def cnumel(shape, where: str = "") -> str:
    return cdim(D.product(shape), where)


def literal(value, dtype: DType) -> str:
    """A scalar as a C literal of the dtype's C type."""
    if dtype.is_float:
        f = float(value)
        if math.isnan(f):
            return "NAN" if dtype is DType.f32 else "((double)NAN)"
        if math.isinf(f):
            text = "INFINITY" if dtype is DType.f32 else "((double)INFINITY)"
            return text if f > 0 else "(-" + text + ")"
        if dtype is DType.f32:
            return f"{float(np.float32(f))!r}f"
        return repr(f)
    if dtype is DType.bool:
        return "1" if value else "0"
    v = int(value)
    if dtype is DType.i64 and v == -(1 << 63):
        return "INT64_MIN"
    return f"(({ctype(dtype)}){v}{'LL' if dtype is DType.i64 or abs(v) > 2**31 - 1 else ''})"


_F32_FUNCS = {"exp": "expf", "log": "logf", "sqrt": "sqrtf", "sin": "sinf", "cos": "cosf", "tan": "tanf",
              "asin": "asinf", "acos": "acosf", "atan": "atanf", "sinh": "sinhf", "cosh": "coshf",
              "tanh": "tanhf", "asinh": "asinhf", "acosh": "acoshf", "atanh": "atanhf", "erf": "erff",
              "floor": "floorf", "ceil": "ceilf", "round": "rintf"}


def _float_func(op: str, dtype: DType) -> str:
    name = _F32_FUNCS[op]
    return name if dtype is DType.f32 else name[:-1]


def elementwise_expr(op: str, attrs: dict, args: list[str], in_dtypes: list[DType], out: DType) -> str:
    """The C expression computing elementwise `op` from argument expressions (numpy semantics)."""
    t = ctype(out)
    a = args[0]
    dt = in_dtypes[0]
    f = dt.is_float
    if op in _F32_FUNCS:
        return f"{_float_func(op, dt)}({a})"
    one = literal(1, dt) if f else "1"
    zero = literal(0, dt) if f else "0"
    if op == "rsqrt":
        return f"({one} / {_float_func('sqrt', dt)}({a}))"
    if op == "reciprocal":
        return f"({one} / ({a}))"
    if op == "sigmoid":
        return f"({one} / ({one} + {_float_func('exp', dt)}(-({a}))))"
    if op == "neg":
        return f"(({t})-({a}))"
    if op == "abs":
        return f"{'fabsf' if dt is DType.f32 else 'fabs'}({a})" if f else f"(({t})(({a}) < 0 ? -({a}) : ({a})))"
    if op == "sign":
        return f"(({a}) > 0 ? {one} : ({a}) < 0 ? ({t})-{one} : ({a}))" if f else \
            f"(({t})((({a}) > 0) - (({a}) < 0)))"
    if op == "relu":
        return f"((({a}) > {zero} || ({a}) != ({a})) ? ({a}) : {zero})" if f else f"(({a}) > 0 ? ({a}) : 0)"
    if op == "not":
        return f"((uint8_t)!({a}))"
    if op == "bitwise_not":
        return f"((uint8_t)!({a}))" if dt is DType.bool else f"(({t})~({a}))"
    if op == "isnan":
        return f"((uint8_t)(({a}) != ({a})))"
    if op == "isinf":
        pos = f"(({a}) == INFINITY)" if attrs["detect_positive"] else "0"
        neg = f"(({a}) == -INFINITY)" if attrs["detect_negative"] else "0"
        return f"((uint8_t)({pos} || {neg}))"
    if op == "cast":
        return _cast(a, dt, out)
    if len(args) >= 2:
        b = args[1]
        if op in ("add", "sub", "mul"):
            sym = {"add": "+", "sub": "-", "mul": "*"}[op]
            if dt is DType.bool:
                return f"((uint8_t)(({a}) {'|' if op == 'add' else '&' if op == 'mul' else '^'} ({b})))"
            return f"(({t})(({a}) {sym} ({b})))"
        if op == "div":
            return f"(({a}) / ({b}))" if f else f"lep_idiv_{t}(({a}), ({b}))"
        if op in ("max", "min"):
            cmp = ">" if op == "max" else "<"
            if f:
                return f"((({a}) {cmp} ({b}) || ({a}) != ({a})) ? ({a}) : ({b}))"
            return f"(({a}) {cmp} ({b}) ? ({a}) : ({b}))"
        if op == "pow":
            return _pow(a, b, dt, in_dtypes[1], t)
        if op == "mod":
            return _mod(a, b, dt, t, attrs["fmod"])
        cmp = {"equal": "==", "less": "<", "less_equal": "<=", "greater": ">", "greater_equal": ">="}
        if op in cmp:
            return f"((uint8_t)(({a}) {cmp[op]} ({b})))"
        logic = {"and": "&&", "or": "||", "xor": "!="}
        if op in logic:
            return f"((uint8_t)((({a}) != 0) {logic[op]} (({b}) != 0)))"
        bits = {"bitwise_and": "&", "bitwise_or": "|", "bitwise_xor": "^"}
        if op in bits:
            return f"(({t})(({a}) {bits[op]} ({b})))"
        if op == "bit_shift":
            return f"(({t})(({a}) {'<<' if attrs['direction'] == 'left' else '>>'} ({b})))"
    if op == "where":
        return f"(({a}) ? ({args[1]}) : ({args[2]}))"
    raise UnsupportedError(f"elementwise op '{op}' has no C form in the cpu target")


def _cast(a: str, src: DType, dst: DType) -> str:
    if dst is DType.bool:
        return f"((uint8_t)(({a}) != 0))"
    if src.is_float and not dst.is_float:
        # NaN and out-of-range conversions are undefined in C; x86 (and so numpy) gives the minimum of the
        # 64- or 32-bit integer the conversion goes through, which narrower types then wrap
        if dst in (DType.i64, DType.u64, DType.u32):
            via = f"((({a}) != ({a}) || ({a}) >= 9.2233720368547758e18 || ({a}) < -9.2233720368547758e18) " \
                  f"? INT64_MIN : (int64_t)({a}))"
        else:
            via = f"((({a}) != ({a}) || ({a}) >= 2147483648.0 || ({a}) < -2147483648.0) ? INT32_MIN : " \
                  f"(int32_t)({a}))"
        return f"(({ctype(dst)}){via})"
    return f"(({ctype(dst)})({a}))"


def _pow(a: str, b: str, dt: DType, bt: DType, t: str) -> str:
    if dt.is_float:
        fn = "powf" if dt is DType.f32 and bt is DType.f32 else "pow"
        return f"(({t}){fn}(({a}), ({b})))"
    if bt.is_float:
        return f"(({t})pow((double)({a}), (double)({b})))"
    return f"lep_ipow_{t}(({a}), ({b}))"


def _mod(a: str, b: str, dt: DType, t: str, fmod: bool) -> str:
    if dt.is_float:
        fn = "fmodf" if dt is DType.f32 else "fmod"
        if fmod:
            return f"{fn}(({a}), ({b}))"
        return f"lep_pymod_{t}(({a}), ({b}))"
    if fmod:
        return f"lep_fmod_{t}(({a}), ({b}))"
    return f"lep_pymod_{t}(({a}), ({b}))"


def pow_const(base: str, exponent: float, dtype: DType) -> str | None:
    """x**2, x**3, x**0.5, x**-1 as multiplications or a sqrt (exact in numpy's sense up to rounding)."""
    if exponent == 1.0:
        return f"({base})"
    if exponent == 2.0:
        return f"(({base}) * ({base}))"
    if exponent == 3.0:
        return f"(({base}) * ({base}) * ({base}))"
    if exponent == 0.5:
        return f"{_float_func('sqrt', dtype)}({base})"
    return None
