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
    # the sub-byte integers: one per byte, the code in its low bits, as numpy holds them (kernel_body.py reads
    # them masked); a weight is packed (leptonc/ir/packing.py), which only the quantized kernels read
    DType.i4: "uint8_t", DType.u4: "uint8_t", DType.i2: "uint8_t", DType.u2: "uint8_t",
    # the narrow floats, stored as their bits (one per byte for the 8- and 4-bit ones); only casts to and from
    # f32 read them (passes/widen_half.py computes the rest in f32)
    DType.f16: "uint16_t", DType.bf16: "uint16_t",
    **dict.fromkeys((DType.f8e4m3fn, DType.f8e4m3fnuz, DType.f8e5m2, DType.f8e5m2fnuz, DType.f4e2m1fn,
                     DType.f8e8m0fnu), "uint8_t"),
}
_HALF_NAMES = {DType.f16: "f16", DType.bf16: "bf16"}
# narrow.h's format of each 8- and 4-bit float: exponent bits, mantissa bits, bias, kind
NARROW_FORMATS = {DType.f8e4m3fn: (4, 3, 7, "LEP_FN"), DType.f8e4m3fnuz: (4, 3, 8, "LEP_FNUZ"),
                  DType.f8e5m2: (5, 2, 15, "LEP_IEEE"), DType.f8e5m2fnuz: (5, 2, 16, "LEP_FNUZ"),
                  DType.f4e2m1fn: (2, 1, 1, "LEP_F4")}


def c_itemsize(dtype: DType) -> int:
    """Bytes of one element in the buffers of generated code: a sub-byte type takes a byte (only weights are
    packed)."""
    return max(1, int(dtype.itemsize))


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
        nearest even, NaN and inf kept), the 8- and 4-bit floats with narrow.h's (from f64, so that an f64 is
        rounded once); a sub-byte integer keeps its code in the low bits of its byte."""
        if src is DType.f8e8m0fnu and dst is not src:
            return self.convert(f"lep_e8m0_to_f32({a})", DType.f32, dst)
        if src in NARROW_FORMATS and dst is not src:
            wide = f"lep_narrow_to_f32({a}, {', '.join(map(str, NARROW_FORMATS[src]))})"
            return wide if dst is DType.f32 else self.convert(wide, DType.f32, dst)
        if dst in NARROW_FORMATS and src is not dst:
            wide = a if src in (DType.f32, DType.f64) else self.convert(a, src, DType.f32)
            return f"lep_narrow_from_f64((double)({wide}), {', '.join(map(str, NARROW_FORMATS[dst]))})"
        if dst.is_packed and src is not dst:
            return f"((uint8_t)(({super().convert(a, src, DType.i64)}) & {(1 << dst.bits) - 1}))"
        if src in _HALF_NAMES and dst is not src:
            wide = f"lep_{_HALF_NAMES[src]}_to_f32({a})"
            return wide if dst is DType.f32 else self.convert(wide, DType.f32, dst)
        if dst in _HALF_NAMES and src is not dst:
            narrow = a if src is DType.f32 else self.convert(a, src, DType.f32)
            return f"lep_f32_to_{_HALF_NAMES[dst]}({narrow})"
        return super().convert(a, src, dst)

    def computes(self, dtype: DType) -> bool:
        return dtype not in _HALF_NAMES and dtype not in NARROW_FORMATS and dtype is not DType.f8e8m0fnu

    def to_e8m0(self, a: str, src: DType, saturate: bool, round: str) -> str:
        wide = a if src in (DType.f32, DType.f64) else self.convert(a, src, DType.f32)
        return f"lep_e8m0_from_f64((double)({wide}), {int(saturate)}, {('nearest', 'up', 'down').index(round)})"

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
