"""The narrow dtypes (8-bit floats, f8e8m0fnu, f4e2m1fn, i2/u2/u4): text form, packed storage,
safetensors, and the `cast` op's conversions into them (round to nearest even, saturate, the fnuz
conventions, the power-of-two rounding of f8e8m0fnu)."""
import math

import ml_dtypes
import numpy as np
import pytest

import leptonc
from leptonc.ir import DType, Graph, TensorType, parse_ir, print_ir
from leptonc.ir.errors import LeptoncError
from leptonc.ir.packing import pack, packed_shape, unpack
from leptonc.runtime import safetensors

NARROW = [DType.f8e4m3fn, DType.f8e4m3fnuz, DType.f8e5m2, DType.f8e5m2fnuz, DType.f8e8m0fnu, DType.f4e2m1fn,
          DType.i4, DType.u4, DType.i2, DType.u2]
PACKED = [d for d in NARROW if d.is_packed]


def _sample(dtype: DType, n: int) -> np.ndarray:
    """n values of dtype covering its range (every code of the sub-byte types)."""
    if dtype.is_int:
        info = ml_dtypes.iinfo(dtype.numpy)
        return np.resize(np.arange(info.min, info.max + 1), n).astype(dtype.numpy)
    codes = np.resize(np.arange(1 << dtype.bits, dtype=np.uint8), n)
    return codes.view(dtype.numpy)


def _cast(x, dtype: DType, **attrs) -> np.ndarray:
    x = np.asarray(x)
    g = Graph("cast")
    v = g.add_input("x", TensorType(DType.from_numpy(x.dtype), x.shape))
    g.set_outputs([g.add("cast", v, dtype=dtype, **attrs)])
    (y,) = leptonc.run_reference(g, x)
    assert y.dtype == dtype.numpy
    return y


def test_properties():
    assert [d.bits for d in NARROW] == [8, 8, 8, 8, 8, 4, 4, 4, 2, 2]
    assert all(d.is_float for d in NARROW[:6]) and all(d.is_int for d in NARROW[6:])
    assert [d.is_signed for d in NARROW] == [True, True, True, True, False, True, True, False, True, False]
    assert DType.u2.itemsize == 0.25 and DType.f4e2m1fn.is_packed and not DType.f8e5m2.is_packed
    assert [d for d in DType if d.is_float8] == NARROW[:5]
    for d in DType:
        assert DType.from_numpy(d.numpy) is d and DType.parse(d.value) is d


def test_constants_of_every_dtype_print_and_parse_back_exactly():
    g = Graph("consts")
    for d in DType:
        g.add_constant(_sample(d, 8) if d in NARROW else np.arange(8).astype(d.numpy), f"c_{d.value}")
    g.set_outputs([n.output for n in g.nodes])
    text = print_ir(g)
    assert "const @c_i2 [-2, -1, 0, 1, -2, -1, 0, 1] : i2[8]" in text
    assert "const @c_f4e2m1fn [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0] : f4e2m1fn[8]" in text
    back = parse_ir(text)
    assert print_ir(back) == text
    for name, arr in g.constants.items():
        assert back.constants[name].dtype == arr.dtype and back.constants[name].tobytes() == arr.tobytes(), name


@pytest.mark.parametrize("dtype", PACKED, ids=str)
@pytest.mark.parametrize("shape", [(7,), (3, 5), (), (2, 0), (2, 8)])
def test_packing_round_trips(dtype, shape):
    a = _sample(dtype, math.prod(shape)).reshape(shape)
    p = pack(a)
    assert p.dtype == np.uint8 and p.shape == packed_shape(shape, dtype.bits)
    b = unpack(p, shape, dtype)
    assert b.dtype == a.dtype and b.tobytes() == a.tobytes()


def test_packing_is_onnx_layout():
    helper = pytest.importorskip("onnx.numpy_helper")
    a2 = _sample(DType.i2, 12)
    assert pack(a2).tobytes() == helper._pack_2bitx4(a2).tobytes()
    a4 = _sample(DType.f4e2m1fn, 16)
    assert pack(a4).tobytes() == helper._pack_4bitx2(a4).tobytes()
    assert list(pack(np.array([1, -2, -1, 0], ml_dtypes.int2))) == [0b00111001]


def test_safetensors_round_trips_every_dtype():
    tensors = {}
    for d in DType:
        a = _sample(d, 15) if d in NARROW else np.arange(15).astype(d.numpy)
        tensors[f"{d.value}"] = a.reshape(3, 5)
        tensors[f"{d.value}.t"] = np.ascontiguousarray(a.reshape(3, 5)[:, 1:])
        tensors[f"{d.value}.scalar"] = a.reshape(3, 5)[1, 1].reshape(())
    back = safetensors.loads(safetensors.dumps(tensors))
    for name, a in tensors.items():
        assert back[name].dtype == a.dtype and back[name].shape == a.shape and back[name].tobytes() == a.tobytes(), name


INPUTS = np.array([0.4789, 1e6, 1e-7, np.nan, np.inf, -np.inf, -1e-7, -1e6, 464, 465, -0.0], np.float32)
# the largest finite value, and what 464 and 465 become when saturating (rounded to nearest even, or clamped)
SATURATED = {DType.f8e4m3fn: (448, 448, 448), DType.f8e4m3fnuz: (240, 240, 240),
             DType.f8e5m2: (57344, 448, 448), DType.f8e5m2fnuz: (57344, 448, 448)}


@pytest.mark.parametrize("dtype", list(SATURATED), ids=str)
@pytest.mark.parametrize("src", [np.float32, np.float16, np.float64])
def test_saturating_cast_clamps_out_of_range_and_infinities(dtype, src):
    m, at464, at465 = SATURATED[dtype]
    with np.errstate(over="ignore"):
        x = INPUTS.astype(src)  # 1e6 is inf in f16
    y = _cast(x, dtype, saturate=True).astype(np.float32)
    rne = np.float32(0.4789).astype(dtype.numpy).astype(np.float32)
    np.testing.assert_array_equal(y, np.float32([rne, m, 0, np.nan, m, -m, 0, -m, at464, at465, 0]))
    fnuz = dtype in (DType.f8e4m3fnuz, DType.f8e5m2fnuz)
    assert np.signbit(y[-1]) == (not fnuz) and np.signbit(y[6]) == (not fnuz)  # fnuz types have no -0


def test_non_saturating_cast_follows_the_type():
    def cast(d):
        return _cast(INPUTS, d).astype(np.float32)[[1, 4, 5, 7]]
    nan4 = [np.nan] * 4
    np.testing.assert_array_equal(cast(DType.f8e4m3fn), nan4)  # no inf: out of range is NaN
    np.testing.assert_array_equal(cast(DType.f8e4m3fnuz), nan4)
    np.testing.assert_array_equal(cast(DType.f8e5m2fnuz), nan4)
    np.testing.assert_array_equal(cast(DType.f8e5m2), [np.inf, np.inf, -np.inf, -np.inf])
    # f4e2m1fn has neither inf nor NaN codes: out of range saturates
    np.testing.assert_array_equal(_cast(np.float32([7, -100, 2.5, 0.25]), DType.f4e2m1fn).astype(np.float32),
                                  [6, -6, 2, 0])


def test_float8_e8m0_rounding_and_saturation():
    x = np.float32([0.3, 1.0, 1.5, 3.0, 5.0, 6.0, 2.0**127 * 1.5, 0.0, np.inf, np.nan, 1e-40, -4.0])
    up = _cast(x, DType.f8e8m0fnu, round="up", saturate=True).astype(np.float64)
    down = _cast(x, DType.f8e8m0fnu, round="down", saturate=True).astype(np.float64)
    near = _cast(x, DType.f8e8m0fnu, round="nearest").astype(np.float64)
    lo, hi = 2.0**-127, 2.0**127
    np.testing.assert_array_equal(up, [0.5, 1, 2, 4, 8, 8, hi, lo, hi, np.nan, lo, 4])
    np.testing.assert_array_equal(down, [0.25, 1, 1, 2, 4, 4, hi, lo, hi, np.nan, lo, 4])
    # nearest, ties (1.5 * 2^e) up; without saturate 0, inf and out of range are NaN
    np.testing.assert_array_equal(near, [0.25, 1, 2, 4, 4, 8, np.nan, np.nan, np.nan, np.nan, np.nan, 4])


def test_cast_from_narrow_types_is_exact():
    for d in NARROW:
        a = _sample(d, 1 << min(d.bits, 8))
        np.testing.assert_array_equal(_cast(a, DType.f32), a.astype(np.float32))
    np.testing.assert_array_equal(_cast(np.float32([-9, -1, 3, 15, 16, 2.7]), DType.u4).astype(np.int32),
                                  np.float32([-9, -1, 3, 15, 16, 2.7]).astype(ml_dtypes.uint4).astype(np.int32))


@pytest.mark.parametrize("attrs, message", [
    ({"dtype": DType.f16, "saturate": True}, "saturate applies to the 8-bit float types, not to f16"),
    ({"dtype": DType.f8e4m3fn, "round": "up"}, "round = 'up' applies to f8e8m0fnu only"),
    ({"dtype": DType.f8e8m0fnu, "round": "away"}, "round must be one of nearest, up, down"),
])
def test_cast_attributes_are_checked(attrs, message):
    g = Graph("bad")
    x = g.add_input("x", TensorType(DType.f32, (2,)))
    with pytest.raises(LeptoncError, match=message):
        g.add("cast", x, **attrs)


def test_cast_attributes_print_and_parse():
    g = Graph("c")
    x = g.add_input("x", TensorType(DType.f32, (2,)))
    y = g.add("cast", x, dtype=DType.f8e8m0fnu, saturate=True, round="up")
    g.set_outputs([g.add("cast", g.add("cast", x, dtype=DType.f8e5m2), dtype=DType.f32), y])
    text = print_ir(g)
    assert 'cast(%x) {dtype = f8e8m0fnu, saturate = true, round = "up"} : f8e8m0fnu[2]' in text
    assert "cast(%x) {dtype = f8e5m2} : f8e5m2[2]" in text
    assert print_ir(parse_ir(text)) == text


@pytest.mark.parametrize("dtype", [DType.bf16, DType.f8e4m3fn])
def test_max_pool_reference_pads_ml_dtypes_floats_with_a_value_that_never_wins(dtype):
    from leptonc.ir.ops.nn import max_pool

    x = (np.random.default_rng(0).standard_normal((1, 2, 5, 5)) - 4).astype(dtype.numpy)  # all below zero
    got = max_pool(x, [2, 2], [2, 2], [1, 1, 1, 1], [1, 1], 0)
    want = max_pool(x.astype(np.float32), [2, 2], [2, 2], [1, 1, 1, 1], [1, 1], 0)
    np.testing.assert_array_equal(got.astype(np.float32), want)
