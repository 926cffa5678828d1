"""Element types of the IR and their numpy counterparts.

Besides the usual ones, the IR has the narrow types of low-precision inference, each with its
`ml_dtypes` numpy type (one value per byte in numpy):

  - 8-bit floats (OCP FP8): f8e4m3fn (max 448, NaN but no inf), f8e5m2 (IEEE-like: inf and NaN),
    f8e4m3fnuz and f8e5m2fnuz (max 240 / 57344, one NaN encoding, no inf, no negative zero), and
    f8e8m0fnu (a power of two 2^-127 .. 2^127 and NaN: the shared scale of the MX formats);
  - f4e2m1fn, the 4-bit float of MXFP4/NVFP4 (0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives);
  - the sub-byte integers i2, u2, i4, u4, stored packed (leptonc/ir/packing.py).

Conversions into these types are defined by the `cast` op (leptonc/ir/ops/elementwise.py).
"""
from __future__ import annotations

import enum

import ml_dtypes
import numpy as np


class DType(enum.Enum):
    f32 = "f32"
    f16 = "f16"
    bf16 = "bf16"
    f64 = "f64"
    f8e4m3fn = "f8e4m3fn"
    f8e4m3fnuz = "f8e4m3fnuz"
    f8e5m2 = "f8e5m2"
    f8e5m2fnuz = "f8e5m2fnuz"
    f8e8m0fnu = "f8e8m0fnu"
    f4e2m1fn = "f4e2m1fn"
    i64 = "i64"
    i32 = "i32"
    i16 = "i16"
    i8 = "i8"
    u8 = "u8"
    u16 = "u16"
    u32 = "u32"
    u64 = "u64"
    i4 = "i4"  # sub-byte types are packed in storage (leptonc/ir/packing.py); one per element in numpy
    u4 = "u4"
    i2 = "i2"
    u2 = "u2"
    bool = "bool"

    def __repr__(self) -> str:
        return f"DType.{self.value}"

    def __str__(self) -> str:
        return self.value

    @property
    def numpy(self) -> np.dtype:
        return _TO_NUMPY[self]

    @property
    def is_float(self) -> bool:
        return self in _FLOATS

    @property
    def is_float8(self) -> bool:
        """One of the 8-bit float types (the types a saturating `cast` applies to)."""
        return self in _FLOAT8

    @property
    def is_int(self) -> bool:
        return not self.is_float and self is not DType.bool

    @property
    def is_signed(self) -> bool:
        return (self.is_float and self is not DType.f8e8m0fnu) or self in _SIGNED_INTS

    @property
    def bits(self) -> int:
        """Bits of one element in storage (8 for bool)."""
        return _SUB_BYTE_BITS.get(self) or 8 * self.numpy.itemsize

    @property
    def is_packed(self) -> bool:
        """A sub-byte type: several elements share a byte in storage (leptonc/ir/packing.py)."""
        return self in _SUB_BYTE_BITS

    @property
    def itemsize(self) -> float:
        """Bytes of one element in storage (a fraction for the packed types)."""
        return self.bits / 8

    @staticmethod
    def from_numpy(dtype) -> "DType":
        dt = np.dtype(dtype)
        try:
            return _FROM_NUMPY[dt]
        except KeyError:
            from .errors import LeptoncError

            raise LeptoncError(f"numpy dtype {dt} has no leptonc dtype (supported: "
                               f"{', '.join(d.value for d in DType)})") from None

    @staticmethod
    def parse(text: str) -> "DType":
        try:
            return DType(text)
        except ValueError:
            from .errors import LeptoncError

            raise LeptoncError(f"unknown dtype {text!r} (known: {', '.join(d.value for d in DType)})") from None


_TO_NUMPY = {
    DType.f32: np.dtype(np.float32),
    DType.f16: np.dtype(np.float16),
    DType.bf16: np.dtype(ml_dtypes.bfloat16),
    DType.f64: np.dtype(np.float64),
    DType.f8e4m3fn: np.dtype(ml_dtypes.float8_e4m3fn),
    DType.f8e4m3fnuz: np.dtype(ml_dtypes.float8_e4m3fnuz),
    DType.f8e5m2: np.dtype(ml_dtypes.float8_e5m2),
    DType.f8e5m2fnuz: np.dtype(ml_dtypes.float8_e5m2fnuz),
    DType.f8e8m0fnu: np.dtype(ml_dtypes.float8_e8m0fnu),
    DType.f4e2m1fn: np.dtype(ml_dtypes.float4_e2m1fn),
    DType.i64: np.dtype(np.int64),
    DType.i32: np.dtype(np.int32),
    DType.i16: np.dtype(np.int16),
    DType.i8: np.dtype(np.int8),
    DType.u8: np.dtype(np.uint8),
    DType.u16: np.dtype(np.uint16),
    DType.u32: np.dtype(np.uint32),
    DType.u64: np.dtype(np.uint64),
    DType.i4: np.dtype(ml_dtypes.int4),
    DType.u4: np.dtype(ml_dtypes.uint4),
    DType.i2: np.dtype(ml_dtypes.int2),
    DType.u2: np.dtype(ml_dtypes.uint2),
    DType.bool: np.dtype(np.bool_),
}
_FROM_NUMPY = {v: k for k, v in _TO_NUMPY.items()}
_FLOAT8 = frozenset({DType.f8e4m3fn, DType.f8e4m3fnuz, DType.f8e5m2, DType.f8e5m2fnuz, DType.f8e8m0fnu})
_FLOATS = frozenset({DType.f32, DType.f16, DType.bf16, DType.f64, DType.f4e2m1fn}) | _FLOAT8
_SIGNED_INTS = frozenset({DType.i64, DType.i32, DType.i16, DType.i8, DType.i4, DType.i2})
_SUB_BYTE_BITS = {DType.i4: 4, DType.u4: 4, DType.f4e2m1fn: 4, DType.i2: 2, DType.u2: 2}
