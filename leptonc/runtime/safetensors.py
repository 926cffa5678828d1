"""The safetensors format with numpy alone: an 8-byte header length, a JSON header, raw little-endian data."""
from __future__ import annotations

import json
import struct

import numpy as np

from ..ir.dtypes import DType
from ..ir.errors import LeptoncError
from ..ir.packing import packed_shape, stored, unpack

# The safetensors codes, and leptonc's own for the types safetensors lacks (F8_E4M3FNUZ, F8_E5M2FNUZ,
# I4, U4, I2, U2). Sub-byte types (I4, U4, I2, U2, F4) are packed along the last axis as
# leptonc/ir/packing.py lays them out; the header gives the unpacked shape.
_CODES = {DType.f32: "F32", DType.f64: "F64", DType.f16: "F16", DType.bf16: "BF16", DType.i64: "I64",
          DType.i32: "I32", DType.i16: "I16", DType.i8: "I8", DType.u8: "U8", DType.u16: "U16",
          DType.u32: "U32", DType.u64: "U64", DType.bool: "BOOL",
          DType.f8e4m3fn: "F8_E4M3", DType.f8e5m2: "F8_E5M2", DType.f8e8m0fnu: "F8_E8M0",
          DType.f8e4m3fnuz: "F8_E4M3FNUZ", DType.f8e5m2fnuz: "F8_E5M2FNUZ", DType.f4e2m1fn: "F4",
          DType.i4: "I4", DType.u4: "U4", DType.i2: "I2", DType.u2: "U2"}
_DTYPES = {v: k for k, v in _CODES.items()}


def chunks(tensors: dict[str, np.ndarray]):
    """The safetensors encoding of `tensors` as a sequence of byte chunks (contiguous arrays are not copied)."""
    header, arrays, offset = {}, [], 0
    for name, arr in tensors.items():
        arr = np.asarray(arr)
        arr = np.ascontiguousarray(arr).reshape(arr.shape)  # (ascontiguousarray alone makes 0-d 1-d)
        dtype = DType.from_numpy(arr.dtype)
        if dtype not in _CODES:
            raise LeptoncError(f"weight '{name}' has dtype {dtype}, which safetensors cannot store")
        raw = stored(arr)  # sub-byte types packed
        raw = np.ascontiguousarray(raw.astype(raw.dtype.newbyteorder("<"), copy=False))
        header[name] = {"dtype": _CODES[dtype], "shape": list(arr.shape), "data_offsets": [offset, offset + raw.nbytes]}
        arrays.append(raw)
        offset += raw.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    yield struct.pack("<Q", len(text)) + text
    for raw in arrays:
        if raw.nbytes:
            yield memoryview(raw.reshape(-1).view(np.uint8))


def dumps(tensors: dict[str, np.ndarray]) -> bytes:
    return b"".join(bytes(c) for c in chunks(tensors))


def loads(blob: bytes) -> dict[str, np.ndarray]:
    """The tensors of a safetensors blob (views into it, read-only); a malformed blob is a LeptoncError."""
    try:
        (n,) = struct.unpack_from("<Q", blob, 0)
        header = json.loads(bytes(blob[8:8 + n]))
        base = 8 + n
        out = {}
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            begin, end = entry["data_offsets"]
            dtype = _DTYPES[entry["dtype"]]
            shape = tuple(int(d) for d in entry["shape"])
            if not 0 <= begin <= end <= len(blob) - base:
                raise ValueError(f"tensor '{name}' lies outside the data")
            if dtype.is_packed:
                packed = np.frombuffer(blob, np.uint8, count=end - begin, offset=base + begin)
                out[name] = unpack(packed.reshape(packed_shape(shape, dtype.bits)), shape, dtype)
                continue
            dtype = dtype.numpy
            arr = np.frombuffer(blob, dtype=dtype, count=(end - begin) // dtype.itemsize, offset=base + begin)
            out[name] = arr.reshape(shape)
        return out
    except (struct.error, ValueError, KeyError, TypeError, json.JSONDecodeError) as e:
        raise LeptoncError(f"malformed safetensors data: {e}") from None
