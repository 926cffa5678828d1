"""C spellings: element types, literals, symbolic dims, and the primitives of a kernel body (`COps`)."""
from __future__ import annotations

import math

import numpy as np

from ...ir.dtypes import DType
from ...ir.errors import LeptoncError
from .. import symbol_var  # noqa: F401  (symbol_var is part of this module's API)
from ..kernel_body import Ops, elementwise

C_TYPES = {
    DType.f32: "float", DType.f64: "double", DType.i64: "int64_t", DType.i32: "int32_t",
    DType.i16: "int16_t", DType.i8: "int8_t", DType.u8: "uint8_t", DType.u16: "uint16_t",
    DType.u32: "uint32_t", DType.u64: "uint64_t", DType.bool: "uint8_t",
    DType.i4: "uint8_t",  # packed two per byte (leptonc/ir/packing.py); only the quantized kernels read it
    # stored as their bits; only casts to and from f32 read them (passes/widen_half.py widens the rest)
    DType.f16: "uint16_t", DType.bf16: "uint16_t",
}
_HALF_NAMES = {DType.f16: "f16", DType.bf16: "bf16"}


class UnsupportedError(LeptoncError):
    """Something the cpu target cannot compile (names the node and what is missing)."""


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


_F32_FUNCTIONS = {"exp": "expf", "log": "logf", "sqrt": "sqrtf", "sin": "sinf", "cos": "cosf", "tan": "tanf",
                  "asin": "asinf", "acos": "acosf", "atan": "atanf", "sinh": "sinhf", "cosh": "coshf",
                  "tanh": "tanhf", "asinh": "asinhf", "acosh": "acoshf", "atanh": "atanhf", "erf": "erff",
                  "floor": "floorf", "ceil": "ceilf", "round": "rintf", "trunc": "truncf", "abs": "fabsf",
                  "pow": "powf", "fmod": "fmodf"}


class COps(Ops):
    """C's primitives (kernel_body.py composes the ops from them): libm for the math functions, prelude.h's
    lep_ipow for integer powers."""

    target = "cpu"
    error = UnsupportedError

    INFIX = "(({t})(({a}) {sym} ({b})))"
    AND, OR = "&&", "||"
    NOT = "(!({a}))"
    INVERT = "(({t})~({a}))"
    NEG_FLOAT = "(({t})-({a}))"
    NEG_INT = "(({t})(0 - (uint64_t)({a})))"  # -INT_MIN would be undefined
    SELECT = "(({c}) ? ({a}) : ({b}))"
    CONVERT = "(({t})({a}))"

    TYPES = C_TYPES
    DIM_CONSTANT = "INT64_C({})"
    literal = staticmethod(literal)

    def convert(self, a: str, src: DType, dst: DType) -> str:
        """f16 and bf16 convert through f32 with prelude.h's lep_<half>_to_f32 and lep_f32_to_<half> (round to
        nearest even, NaN and inf kept)."""
        if src in _HALF_NAMES and dst is not src:
            wide = f"lep_{_HALF_NAMES[src]}_to_f32({a})"
            return wide if dst is DType.f32 else self.convert(wide, DType.f32, dst)
        if dst in _HALF_NAMES and src is not dst:
            narrow = a if src is DType.f32 else self.convert(a, src, DType.f32)
            return f"lep_f32_to_{_HALF_NAMES[dst]}({narrow})"
        return super().convert(a, src, dst)

    def computes(self, dtype: DType) -> bool:
        return dtype not in _HALF_NAMES

    def function(self, name: str, args: list[str], dtype: DType) -> str | None:
        spelled = ", ".join(f"({a})" if len(args) > 1 else a for a in args)
        if name == "ipow":
            return f"lep_ipow_{ctype(dtype)}({spelled})"
        if not dtype.is_float or name not in _F32_FUNCTIONS:
            return None
        fn = _F32_FUNCTIONS[name]
        return f"{fn if dtype is DType.f32 else fn[:-1]}({spelled})"


C = COps()
ctype, cdim, cnumel = C.type_name, C.dim, C.numel


def elementwise_expr(op: str, attrs: dict, args: list[str], in_dtypes: list[DType], out: DType,
                     exponent: float | None = None) -> str:
    """The C expression computing elementwise `op` from argument expressions (kernel_body.elementwise)."""
    return elementwise(C, op, attrs, args, in_dtypes, out, exponent)
