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


MAX_HEADER = 100 << 20  # bytes of JSON header at most (the limit of the safetensors reference reader)


def loads(blob: bytes) -> dict[str, np.ndarray]:
    """The tensors of a safetensors blob (views into it, read-only). A malformed blob is a LeptoncError:
    every tensor must lie inside the data, hold exactly its dtype times its shape in bytes, and overlap no
    other."""
    try:
        return _loads(blob)
    except (struct.error, ValueError, KeyError, TypeError, RecursionError) as e:
        raise LeptoncError(f"malformed safetensors data: {e}") from None


def _loads(blob) -> dict[str, np.ndarray]:
    (n,) = struct.unpack_from("<Q", blob, 0)
    if n > min(MAX_HEADER, len(blob) - 8):
        raise ValueError(f"a header of {n} bytes in a blob of {len(blob)}")
    header = json.loads(bytes(blob[8:8 + n]))
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    base, out, spans = 8 + n, {}, []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise ValueError(f"tensor '{name}': expected dtype, shape and data_offsets")
        dtype = _DTYPES[entry["dtype"]]
        shape, offsets = entry["shape"], entry["data_offsets"]
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise ValueError(f"tensor '{name}': shape {shape!r} is not a list of sizes")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets):
            raise ValueError(f"tensor '{name}': data_offsets {offsets!r} is not [begin, end]")
        begin, end = offsets
        if not 0 <= begin <= end <= len(blob) - base:
            raise ValueError(f"tensor '{name}' lies outside the data")
        shape = tuple(shape)
        count = int(np.prod(packed_shape(shape, dtype.bits) if dtype.is_packed else shape, dtype=object))
        if end - begin != count * (1 if dtype.is_packed else dtype.numpy.itemsize):
            raise ValueError(f"tensor '{name}' is {dtype}{list(shape)} but holds {end - begin} bytes")
        spans.append((begin, end, name))
        if dtype.is_packed:
            packed = np.frombuffer(blob, np.uint8, count=count, offset=base + begin)
            out[name] = unpack(packed.reshape(packed_shape(shape, dtype.bits)), shape, dtype)
        else:
            out[name] = np.frombuffer(blob, dtype=dtype.numpy, count=count, offset=base + begin).reshape(shape)
    spans.sort()
    for (_, end, a), (begin, _, b) in zip(spans, spans[1:]):
        if begin < end:
            raise ValueError(f"tensors '{a}' and '{b}' overlap")
    return out
