"""Triton spellings: element types, literals, symbolic dims, and the primitives of a kernel body
(`TritonOps`; kernel_body.py composes every elementwise op from them, as it does for the cpu target)."""
from __future__ import annotations

import math

import numpy as np

from ...ir.dtypes import DType
from ...ir.errors import LeptoncError
from .. import symbol_var  # noqa: F401  (symbol_var is part of this module's API)
from ..kernel_body import LOW_FLOATS, Ops

TL_TYPES = {
    DType.f32: "tl.float32", DType.f16: "tl.float16", DType.bf16: "tl.bfloat16", DType.f64: "tl.float64",
    DType.i64: "tl.int64", DType.i32: "tl.int32", DType.i16: "tl.int16", DType.i8: "tl.int8",
    DType.u8: "tl.uint8", DType.u16: "tl.uint16", DType.u32: "tl.uint32", DType.u64: "tl.uint64",
    DType.bool: "tl.int1",
}

class UnsupportedError(LeptoncError):
    """Something the triton target cannot compile (names the node and what is missing)."""


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


_FUNCTIONS = {"exp": "tl.exp", "log": "tl.log", "sqrt": "tl.sqrt_rn", "sin": "tl.sin", "cos": "tl.cos",
              "erf": "tl.erf", "floor": "tl.floor", "ceil": "tl.ceil", "abs": "tl.abs"}


class TritonOps(Ops):
    """Triton's core-language primitives (kernel_body.py composes the ops from them). Only the core language:
    the interpreter (TRITON_INTERPRET=1) knows nothing else, so the math functions it lacks (tanh, atan, pow,
    round-half-even...) are kernel_body's composites. f16 and bf16 are computed in f32, as numpy does (and as
    Triton's math, and its interpreter, which holds bf16 as raw bits, need)."""

    target = "triton"
    error = UnsupportedError

    INFIX = "(({a}) {sym} ({b}))"
    INT_DIV = "//"
    AND, OR = "&", "|"
    NOT = "(({a}) == 0)"
    INVERT = "(~({a}))"
    NEG_FLOAT = "(-({a}))"
    NEG_INT = "(0 - ({a}))"
    SELECT = "tl.where({c}, {a}, {b}).to({t})"
    CONVERT = "({a}).to({t})"

    TYPES = TL_TYPES
    DIM_MUL = " * "
    literal = staticmethod(literal)

    def function(self, name: str, args: list[str], dtype: DType) -> str | None:
        if not dtype.is_float:
            return None
        if name == "sqrt" and dtype is DType.f64:  # tl.sqrt_rn is f32 only; f64's sqrt rounds correctly
            return f"tl.sqrt({args[0]})"
        if name in ("maximum", "minimum"):
            return f"tl.{name}({args[0]}, {args[1]}, propagate_nan=tl.PropagateNan.ALL)"
        return f"{_FUNCTIONS[name]}({', '.join(args)})" if name in _FUNCTIONS else None

    def convert(self, a: str, src: DType, dst: DType) -> str:
        """Between bf16 and a non-float type, through f32 (as ml_dtypes converts; the interpreter would take
        bf16's raw bits for the integer)."""
        if DType.bf16 in (src, dst) and not (src.is_float and dst.is_float):
            return super().convert(super().convert(a, src, DType.f32), DType.f32, dst)
        return super().convert(a, src, dst)

    def computes(self, dtype: DType) -> bool:
        return dtype not in LOW_FLOATS


TRITON = TritonOps()
tltype, tdim, tnumel = TRITON.type_name, TRITON.dim, TRITON.numel
