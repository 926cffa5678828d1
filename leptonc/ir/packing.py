"""Storage of the sub-byte types (i4, u4, f4e2m1fn: two per byte; i2, u2: four per byte).

In the IR (and in numpy) such a tensor holds one value per element (`ml_dtypes.int4`, ...). Stored
(weights files, the buffers kernels read) it is packed along its last axis: with b bits an element,
byte j of a row holds elements (8/b)j .. (8/b)j + 8/b - 1, the first in the lowest bits (for i4:
element 2j in the low nibble, 2j + 1 in the high nibble), each as its b-bit code (two's complement
for the signed integers, the float4 encoding for f4e2m1fn) -- the layout of ONNX's packed tensors.
A row whose length is not a multiple of 8/b is padded with zero codes, so every row starts on a
byte. This module is the one place that knows the layout.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

from .dtypes import DType


def _bits(dtype: DType) -> int:
    if not dtype.is_packed:
        raise ValueError(f"dtype {dtype} is not a packed sub-byte type")
    return dtype.bits


def packed_shape(shape: tuple, bits: int = 4) -> tuple:
    """The uint8 shape that holds a tensor of `shape` with `bits`-bit elements: the last axis divided by
    8 / bits, rounded up."""
    per = 8 // bits
    if not shape:
        return (1,)
    return tuple(shape[:-1]) + ((shape[-1] + per - 1) // per,)


def pack(values: np.ndarray) -> np.ndarray:
    """An array of a sub-byte type as packed uint8 bytes along the last axis."""
    v = np.asarray(values)
    bits = _bits(DType.from_numpy(v.dtype))
    per, mask = 8 // bits, (1 << bits) - 1
    if v.ndim == 0:
        v = v.reshape(1)
    codes = v.view(np.uint8) & np.uint8(mask)
    pad = -codes.shape[-1] % per
    if pad:
        codes = np.concatenate([codes, np.zeros(codes.shape[:-1] + (pad,), np.uint8)], axis=-1)
    out = np.zeros(codes.shape[:-1] + (codes.shape[-1] // per,), np.uint8)
    for k in range(per):
        out |= codes[..., k::per] << np.uint8(k * bits)
    return out


def unpack(packed: np.ndarray, shape: tuple, dtype: DType) -> np.ndarray:
    """The array of `shape` and sub-byte `dtype` that `pack` stored in `packed`."""
    bits = _bits(dtype)
    per, mask = 8 // bits, (1 << bits) - 1
    p = np.asarray(packed, dtype=np.uint8)
    if p.shape != packed_shape(tuple(shape), bits):
        raise ValueError(f"packed {dtype} data of shape {list(p.shape)} does not hold a tensor of shape {list(shape)}")
    codes = np.stack([(p >> np.uint8(k * bits)) & np.uint8(mask) for k in range(per)], axis=-1)
    codes = codes.reshape(p.shape[:-1] + (per * p.shape[-1],))
    last = shape[-1] if shape else 1
    # ml_dtypes keeps a sub-byte value as its code in the low bits of a byte, as `pack` reads it
    return np.ascontiguousarray(codes[..., :last]).reshape(shape).view(dtype.numpy)


def is_packed(array: np.ndarray) -> bool:
    """Whether the array's dtype is a sub-byte type (stored packed)."""
    return DType.from_numpy(np.asarray(array).dtype).is_packed


def pack_i4(values: np.ndarray) -> np.ndarray:
    """An int4 array (or ints in [-8, 7]) as packed uint8 bytes, two per byte along the last axis."""
    return pack(np.asarray(values).astype(ml_dtypes.int4))


def unpack_i4(packed: np.ndarray, shape: tuple) -> np.ndarray:
    """The int4 array of `shape` that `pack_i4` stored in `packed`."""
    return unpack(packed, shape, DType.i4)


def is_i4(array: np.ndarray) -> bool:
    return np.asarray(array).dtype == np.dtype(ml_dtypes.int4)


def stored(array: np.ndarray) -> np.ndarray:
    """The array as generated code reads it: sub-byte types packed (`pack`), anything else contiguous."""
    return pack(array) if is_packed(array) else np.ascontiguousarray(array)
