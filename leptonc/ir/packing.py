"""Storage of packed i4 tensors: two 4-bit values per byte.

In the IR (and in numpy) an i4 tensor holds one value per element
(`ml_dtypes.int4`). Stored (weights files, the buffers kernels read) it is
packed along its last axis: byte j of a row holds element 2j in its low
nibble and element 2j + 1 in its high nibble, two's complement. A row of odd
length is padded with a zero nibble, so every row starts on a byte. This
module is the one place that knows the layout.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np


def packed_shape(shape: tuple) -> tuple:
    """The uint8 shape that holds an i4 tensor of `shape`: the last axis halved, rounded up."""
    if not shape:
        return (1,)
    return tuple(shape[:-1]) + ((shape[-1] + 1) // 2,)


def pack_i4(values: np.ndarray) -> np.ndarray:
    """An int4 array (or ints in [-8, 7]) as packed uint8 bytes, two per byte along the last axis."""
    v = np.asarray(values)
    if v.ndim == 0:
        v = v.reshape(1)
    nib = (v.astype(np.int8) & 0x0F).astype(np.uint8)
    if nib.shape[-1] % 2:
        nib = np.concatenate([nib, np.zeros(nib.shape[:-1] + (1,), np.uint8)], axis=-1)
    return np.ascontiguousarray(nib[..., 0::2] | (nib[..., 1::2] << 4))


def unpack_i4(packed: np.ndarray, shape: tuple) -> np.ndarray:
    """The int4 array of `shape` that `pack_i4` stored in `packed`."""
    p = np.asarray(packed, dtype=np.uint8)
    if p.shape != packed_shape(tuple(shape)):
        raise ValueError(f"packed i4 data of shape {list(p.shape)} does not hold a tensor of shape {list(shape)}")
    nib = np.stack([p & 0x0F, p >> 4], axis=-1).reshape(p.shape[:-1] + (2 * p.shape[-1],))
    signed = (nib.astype(np.int8) ^ 8) - 8
    last = shape[-1] if shape else 1
    return signed[..., :last].reshape(shape).astype(ml_dtypes.int4)


def is_i4(array: np.ndarray) -> bool:
    return np.asarray(array).dtype == np.dtype(ml_dtypes.int4)


def stored(array: np.ndarray) -> np.ndarray:
    """The array as generated code reads it: i4 packed (pack_i4), anything else contiguous."""
    return pack_i4(array) if is_i4(array) else np.ascontiguousarray(array)
