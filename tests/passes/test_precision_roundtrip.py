"""quantize/dequantize round trips (error <= scale / 2 inside the range) and the packed i4 layout."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from leptonc.ir import DType, Graph, TensorType
from leptonc.ir.ops.quant import RANGES
from leptonc.ir.packing import pack_i4, packed_shape, unpack_i4
from leptonc.runtime import safetensors
from leptonc.runtime.reference import run_reference

QDTYPES = [DType.i8, DType.u8, DType.i4]


def _roundtrip(x: np.ndarray, scale: np.ndarray, zp: np.ndarray | None, dtype: DType, axis: int, group: int):
    g = Graph("rt")
    xv = g.add_input("x", TensorType(DType.f32, x.shape))
    params = [g.add_constant(scale, "scale")] + ([g.add_constant(zp, "zp")] if zp is not None else [])
    q = g.add("quantize", xv, *params, dtype=dtype, axis=axis, group=group)
    y = g.add("dequantize", q, *params, axis=axis, group=group)
    g.set_outputs([q, y])
    return run_reference(g, x)


def _representable(x, scale, zp, dtype):
    """x clipped to the range the quantized type covers at this scale and zero point."""
    lo, hi = RANGES[dtype]
    z = 0 if zp is None else zp.astype(np.float32)
    return np.clip(x, (lo - z) * scale, (hi - z) * scale)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), dtype=st.sampled_from(QDTYPES), granularity=st.sampled_from(["tensor", "channel", "group"]),
       with_zp=st.booleans())
def test_quantize_dequantize_error_within_half_a_step(data, dtype, granularity, with_zp):
    rows = data.draw(st.integers(1, 4))
    group = data.draw(st.sampled_from([2, 4, 8]))
    cols = group * data.draw(st.integers(1, 4))
    x = data.draw(hnp.arrays(np.float32, (rows, cols), elements=st.floats(-100, 100, width=32)))
    axis = 1 if granularity == "group" else 0
    pshape = {"tensor": (), "channel": (rows,), "group": (rows, cols // group)}[granularity]
    scale = data.draw(hnp.arrays(np.float32, pshape, elements=st.floats(0.015625, 8, width=32)))
    lo, hi = RANGES[dtype]
    zp = data.draw(hnp.arrays(np.int64, pshape, elements=st.integers(lo, hi))).astype(dtype.numpy) if with_zp else None
    q, y = _roundtrip(x, scale, zp, dtype, axis, 0 if granularity != "group" else group)
    assert q.dtype == dtype.numpy
    from leptonc.ir.ops.quant import expand

    s = expand(scale, 2, axis, group if granularity == "group" else 0)
    z = None if zp is None else expand(zp, 2, axis, group if granularity == "group" else 0)
    inside = _representable(x, s, z, dtype)
    assert np.all(np.abs(y - inside) <= s / 2 * (1 + 1e-5) + 1e-6)


def test_quantize_saturates_and_rounds_half_to_even():
    q, _ = _roundtrip(np.array([[0.5, 1.5, 2.5, -0.5, 1000.0, -1000.0]], np.float32), np.float32(1.0), None,
                      DType.i8, 0, 0)
    assert q.tolist() == [[0, 2, 2, 0, 127, -128]]


@settings(max_examples=100, deadline=None)
@given(hnp.arrays(np.int8, hnp.array_shapes(min_dims=1, max_dims=3, max_side=7), elements=st.integers(-8, 7)))
def test_i4_pack_unpack_round_trip(values):
    packed = pack_i4(values)
    assert packed.dtype == np.uint8 and packed.shape == packed_shape(values.shape)
    back = unpack_i4(packed, values.shape)
    assert back.dtype == np.dtype(ml_dtypes.int4)
    np.testing.assert_array_equal(back.astype(np.int8), values)


def test_i4_layout_low_nibble_first():
    packed = pack_i4(np.array([[1, -2, 7]], np.int8))
    assert packed.tolist() == [[0xE1, 0x07]]  # 1 | (-2 & 0xF) << 4, then 7 and a zero pad nibble


def test_i4_weights_round_trip_through_safetensors_packed():
    w = np.random.default_rng(0).integers(-8, 8, (6, 9)).astype(ml_dtypes.int4)
    blob = safetensors.dumps({"w": w})
    assert len(blob) < 8 + 200 + 6 * 5 + 8  # header plus 5 bytes a row: two values per byte
    back = safetensors.loads(blob)["w"]
    np.testing.assert_array_equal(back.astype(np.int8), w.astype(np.int8))


def test_unpack_rejects_a_mismatched_shape():
    with pytest.raises(ValueError, match="does not hold"):
        unpack_i4(np.zeros((2, 3), np.uint8), (2, 7))
