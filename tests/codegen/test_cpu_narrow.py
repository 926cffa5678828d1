"""The 8- and 4-bit floats, f8e8m0fnu and the sub-byte integers on the cpu target.

Casts between f32 (or f64) and each narrow float match ml_dtypes bit for bit, every code decoded and
values of random bits, ties and the edges of each range encoded, with and without `saturate`; a model
computing in a narrow float (widen-half: f32 between roundings) matches the reference interpreter
exactly; f8e8m0fnu casts by every rounding, saturating or not, as the reference, and an op computing in
it is an error; the sub-byte integers read and write their codes as numpy holds them, and wrap as it
does."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import leptonc
from leptonc.ir import DType, Graph, TensorType

NARROW = [DType.f8e4m3fn, DType.f8e4m3fnuz, DType.f8e5m2, DType.f8e5m2fnuz, DType.f4e2m1fn]
SUB_BYTE_INTS = [DType.i4, DType.u4, DType.i2, DType.u2]


def _cast_graph(src: DType, dst: DType, n: int, saturate: bool = False) -> Graph:
    g = Graph("cast")
    x = g.add_input("x", TensorType(src, (n,)))
    g.set_outputs([g.add("cast", x, dtype=dst, saturate=saturate)])
    return g


def _codes(dtype: DType) -> np.ndarray:
    return np.arange(2 ** dtype.bits, dtype=np.uint8).view(dtype.numpy)


def _wide_values(dtype: DType, wide) -> np.ndarray:
    """Every value of the type, the ties between neighbours and values just beside them, values beyond the
    range, infinities, NaNs and zeros of both signs, and values of random bits."""
    v = _codes(dtype).astype(np.float64)
    v = np.unique(v[np.isfinite(v)])
    mids = (v[1:] + v[:-1]) / 2
    top = float(ml_dtypes.finfo(dtype.numpy).max)
    edges = [0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, top * 1.01, top * 1.1, top * 2, 1e30,
             float(ml_dtypes.finfo(dtype.numpy).smallest_subnormal) / 2, 1e-30]
    beside = np.concatenate([mids * (1 + 2.0 ** -20), mids * (1 - 2.0 ** -20)])
    bits = np.random.default_rng(1).integers(0, 2 ** 32, 4000, dtype=np.uint64).astype(np.uint32)
    with np.errstate(invalid="ignore"):
        rand = bits.view(np.float32).astype(np.float64)
    scaled = np.random.default_rng(2).uniform(-2 * top, 2 * top, 4000)
    out = np.concatenate([v, mids, beside, edges, -np.array(edges), rand, scaled]).astype(wide)
    return out


def _same_codes(got: np.ndarray, want: np.ndarray) -> None:
    """Bit for bit, but a NaN only needs to be a NaN (ml_dtypes keeps payloads that carry no meaning)."""
    assert got.dtype == want.dtype
    nan = np.isnan(want.astype(np.float32))
    assert np.array_equal(np.isnan(got.astype(np.float32)), nan)
    bad = np.flatnonzero(got[~nan].view(np.uint8) != want[~nan].view(np.uint8))
    assert not bad.size, f"{bad.size} differ, first {want[~nan][bad[0]]!r}: got {got[~nan][bad[0]]!r}"


@pytest.mark.parametrize("dtype", NARROW, ids=str)
def test_every_code_decodes_as_ml_dtypes(dtype):
    codes = _codes(dtype)
    got = leptonc.compile(_cast_graph(dtype, DType.f32, codes.size), quiet=True).run(codes)[0]
    want = codes.astype(np.float32)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))


@pytest.mark.parametrize("saturate", [False, True], ids=["wrap", "saturate"])
@pytest.mark.parametrize("wide", [DType.f32, DType.f64], ids=str)
@pytest.mark.parametrize("dtype", NARROW, ids=str)
def test_encoding_matches_ml_dtypes(dtype, wide, saturate):
    if saturate and not dtype.is_float8:
        pytest.skip("saturate applies to the 8-bit floats")
    x = _wide_values(dtype, wide.numpy)
    g = _cast_graph(wide, dtype, x.size, saturate)
    _same_codes(leptonc.compile(g, quiet=True).run(x)[0], leptonc.run_reference(g, x)[0])


@pytest.mark.parametrize("dtype", NARROW, ids=str)
def test_arithmetic_in_a_narrow_float_rounds_each_op(dtype):
    """x * w + b, then tanh, in the narrow type: each op's result rounded to it, as the reference does; a
    narrow weight is stored in f32, a narrow input and output keep their type."""
    g = Graph("narrow")
    x = g.add_input("x", TensorType(dtype, (4, 6)))
    w = g.add_constant(np.linspace(-2, 2, 6).astype(dtype.numpy), "w")
    b = g.add_constant(np.array([0.5], dtype.numpy), "b")
    y = g.add("tanh", g.add("add", g.add("mul", x, w), b))
    g.set_outputs([y, g.add("reduce_sum", y, axes=(1,), keepdims=False)])
    xs = np.random.default_rng(0).uniform(-3, 3, (4, 6)).astype(dtype.numpy)
    got, want = leptonc.compile(g, quiet=True).run(xs), leptonc.run_reference(g, xs)
    for a, b in zip(got, want):
        _same_codes(a.reshape(-1), b.reshape(-1))


@pytest.mark.parametrize("dtype", SUB_BYTE_INTS, ids=str)
def test_sub_byte_integers_cast_and_wrap_as_numpy(dtype):
    """To and from f32 and i32 (out-of-range values wrap to the type's bits, as ml_dtypes does), and an add
    in the type itself (which wraps)."""
    n = 2 ** dtype.bits
    f = np.array([-9.7, -8.0, -3.5, -1.2, -0.0, 0.7, 1.9, 3.0, 7.9, 8.0, 15.5, 100.2, 1e10, np.nan, np.inf],
                 np.float32)
    i = np.arange(-20, 20, dtype=np.int32)
    codes = np.arange(n, dtype=np.uint8).view(dtype.numpy)
    g = Graph("sub_byte")
    xf = g.add_input("f", TensorType(DType.f32, f.shape))
    xi = g.add_input("i", TensorType(DType.i32, i.shape))
    xc = g.add_input("c", TensorType(dtype, codes.shape))
    g.set_outputs([g.add("cast", xf, dtype=dtype), g.add("cast", xi, dtype=dtype),
                   g.add("cast", xc, dtype=DType.f32), g.add("cast", xc, dtype=DType.i32),
                   g.add("add", xc, g.add_constant(np.ones(1, dtype.numpy), "one"))])
    got, want = leptonc.compile(g, quiet=True).run(f, i, codes), leptonc.run_reference(g, f, i, codes)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a.astype(np.int64), b.astype(np.int64))


@pytest.mark.parametrize("saturate", [False, True], ids=["nan", "saturate"])
@pytest.mark.parametrize("round", ["nearest", "up", "down"])
def test_f8e8m0_casts_match_the_reference(round, saturate):
    codes = _codes(DType.f8e8m0fnu)
    got = leptonc.compile(_cast_graph(DType.f8e8m0fnu, DType.f32, codes.size), quiet=True).run(codes)[0]
    assert np.array_equal(np.isnan(got), np.isnan(codes.astype(np.float32)))
    assert np.array_equal(got[:-1], codes[:-1].astype(np.float32))
    powers = np.ldexp(1.0, np.arange(-130, 131))
    with np.errstate(over="ignore"):   # (the powers beyond f32's range are its infinities)
        x = np.concatenate([powers, powers * 1.5, powers * 1.25, powers * 1.75, np.nextafter(powers * 1.5, 0),
                            [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, 3.4e38], -powers[::7]]).astype(np.float32)
    g = Graph("e8m0")
    v = g.add_input("x", TensorType(DType.f32, x.shape))
    g.set_outputs([g.add("cast", v, dtype=DType.f8e8m0fnu, round=round, saturate=saturate)])
    np.testing.assert_array_equal(leptonc.compile(g, quiet=True).run(x)[0].view(np.uint8),
                                  leptonc.run_reference(g, x)[0].view(np.uint8))


def test_arithmetic_in_f8e8m0_is_an_error():
    g = Graph("scales")
    x = g.add_input("x", TensorType(DType.f8e8m0fnu, (4,)))
    g.set_outputs([g.add("mul", x, x)])
    with pytest.raises(leptonc.LeptoncError, match="computes in f8e8m0fnu"):
        leptonc.compile(g, quiet=True)


@pytest.mark.parametrize("dtype", SUB_BYTE_INTS + [DType.f4e2m1fn, DType.f8e5m2], ids=str)
def test_data_movement_keeps_narrow_codes(dtype):
    """transpose, gather, concat and slice copy a narrow value's byte (a sub-byte type's too)."""
    x = (np.arange(12, dtype=np.uint8) & ((1 << dtype.bits) - 1)).reshape(3, 4).view(dtype.numpy)
    g = Graph("moves")
    v = g.add_input("x", TensorType(dtype, (3, 4)))
    i = g.add_input("i", TensorType(DType.i64, (2,)))
    g.set_outputs([g.add("transpose", v, perm=(1, 0)), g.add("gather", v, i, axis=0), g.add("concat", v, v, axis=0),
                   g.add("slice", v, starts=(1,), ends=(3,), axes=(1,), steps=(1,))])
    idx = np.array([2, 0])
    for a, b in zip(leptonc.compile(g, quiet=True).run(x, idx), leptonc.run_reference(g, x, idx)):
        np.testing.assert_array_equal(a.astype(np.float32), b.astype(np.float32))


@pytest.mark.parametrize("op, attrs", [("argmax", {"axis": 1}), ("reduce_max", {"axes": (1,)}), ("cumsum", {"axis": 1})])
def test_a_reduction_over_a_sub_byte_integer_is_an_error(op, attrs):
    """(its kernels would read the codes as numbers: -1 is 15 to them)"""
    g = Graph("reduce")
    x = g.add_input("x", TensorType(DType.i4, (3, 4)))
    g.set_outputs([g.add(op, x, **attrs)])
    with pytest.raises(leptonc.LeptoncError, match=f"'%{op} = {op}' computes in i4, .* \\(cast it to i8 first\\)"):
        leptonc.compile(g, quiet=True)
