"""The narrow dtypes (8-bit and 4-bit floats, 2-bit and unsigned 4-bit integers) on the compile targets.

triton computes in none of them (cpu in all: tests/codegen/test_cpu_narrow.py): it names the dtype, the
op (or graph input) and the target before generating anything. stablehlo converts and moves them (XLA has the types): casts into and out
of them match the reference interpreter bit for bit, saturate included; what it lacks (a cast into
f8e8m0fnu, arithmetic in a narrow type) is a clear error too."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import leptonc
from leptonc.ir import DType, Graph, TensorType
from leptonc.ir.errors import LeptoncError

NARROW = [DType.f8e4m3fn, DType.f8e4m3fnuz, DType.f8e5m2, DType.f8e5m2fnuz, DType.f8e8m0fnu, DType.f4e2m1fn,
          DType.u4, DType.i2, DType.u2]


def _available(target: str, request) -> None:
    if target == "triton":
        pytest.importorskip("triton")
        request.getfixturevalue("triton_device")
    elif target == "stablehlo":
        pytest.importorskip("jax")


def _cast_graph(src: DType, dst: DType, n: int, **attrs) -> Graph:
    g = Graph("cast")
    x = g.add_input("x", TensorType(src, (n,)))
    g.set_outputs([g.add("cast", x, dtype=dst, **attrs)])
    return g


def _through(dtype: DType) -> Graph:
    """f32 -> dtype -> f32 (a quantize-dequantize round trip in the narrow type)."""
    g = Graph("through")
    x = g.add_input("x", TensorType(DType.f32, (4, 8)))
    q = g.add("cast", g.add("mul", x, g.add_constant(np.float32(4.0), "s")), dtype=dtype)
    g.set_outputs([g.add("cast", q, dtype=DType.f32)])
    return g


@pytest.mark.parametrize("target", ["triton"])
@pytest.mark.parametrize("dtype", NARROW, ids=str)
def test_cast_to_an_unsupported_dtype_names_dtype_op_and_target(target, dtype, request):
    _available(target, request)
    x = np.ones((4, 8), np.float32)
    with pytest.raises(LeptoncError, match=rf"'%\w+ = cast': dtype {dtype} is not supported by the {target} "
                                           r"target \(supported: f32"):
        leptonc.compile(_through(dtype), (x,), target=target, quiet=True, cache=False)


@pytest.mark.parametrize("target", ["triton"])
def test_graph_input_of_an_unsupported_dtype_is_named(target, request):
    _available(target, request)
    g = _cast_graph(DType.f8e4m3fn, DType.f32, 3)
    with pytest.raises(LeptoncError, match=rf"graph input %x: dtype f8e4m3fn is not supported by the {target} "
                                           "target"):
        leptonc.compile(g, (np.ones(3, DType.f8e4m3fn.numpy),), target=target, quiet=True, cache=False)


def _values(dtype: DType) -> np.ndarray:
    """Every code of a narrow type; for a wide type, values across the 8-bit floats' ranges and beyond."""
    if dtype in NARROW:
        if dtype.is_int:
            info = ml_dtypes.iinfo(dtype.numpy)
            return np.arange(info.min, info.max + 1).astype(dtype.numpy)
        return np.arange(1 << dtype.bits, dtype=np.uint8).view(dtype.numpy)
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(64) * np.exp2(rng.integers(-20, 20, 64)),
                        [0, -0.0, np.inf, -np.inf, np.nan, 448, 464, 465, 240, 57344, 61440, 1e6, -3.5, 1e-9]])
    if dtype.is_int:
        return np.nan_to_num(x, posinf=1e6, neginf=-1e6).astype(dtype.numpy)
    with np.errstate(over="ignore"):
        return x.astype(dtype.numpy)


def _same(got: np.ndarray, ref: np.ndarray, nan_to_f4: np.ndarray) -> bool:
    """Bit-for-bit up to NaN payloads, and the sign of the zero a NaN becomes in f4e2m1fn (no NaN code)."""
    g, r = got.astype(np.float64), ref.astype(np.float64)
    equal = ((g == r) & (np.signbit(g) == np.signbit(r))) | (np.isnan(g) & np.isnan(r)) | (nan_to_f4 & (g == r))
    return bool(equal.all())


def _casts_from(src: DType) -> list[tuple[DType, bool]]:
    """(destination, saturate) pairs tested from src: every narrow type and a few wide ones, but no cast into
    f8e8m0fnu (not supported) and none from a float into an integer (tested in range below)."""
    wide = [DType.f32, DType.f16, DType.i32] if src in NARROW else []
    return [(d, sat) for d in NARROW + wide if d is not src and d is not DType.f8e8m0fnu
            and not (src.is_float and d.is_int) for sat in ([False, True] if d.is_float8 else [False])]


@pytest.mark.parametrize("src", NARROW + [DType.f32, DType.bf16, DType.f64, DType.i32], ids=str)
def test_stablehlo_casts_match_the_reference(src, request):
    """One module per source dtype: a cast of its own input into each destination."""
    _available("stablehlo", request)
    casts, g, feeds, outs = _casts_from(src), Graph("casts"), [], []
    for i, (dst, saturate) in enumerate(casts):
        x = _values(src)
        if src.is_int and dst.is_int:  # integers in the narrower range (out of range wraps: not what is tested)
            info = ml_dtypes.iinfo(dst.numpy)
            x = x[(x.astype(np.int64) >= info.min) & (x.astype(np.int64) <= info.max)]
        v = g.add_input(f"x{i}", TensorType(src, (x.size,)))
        outs.append(g.add("cast", v, dtype=dst, **({"saturate": True} if saturate else {})))
        feeds.append(x)
    g.set_outputs(outs)
    got = leptonc.compile(g, feeds, target="stablehlo", quiet=True, cache=False)(*feeds)
    for (dst, saturate), x, y, ref in zip(casts, feeds, got, leptonc.run_reference(g, *feeds)):
        assert y.dtype == ref.dtype
        with np.errstate(invalid="ignore"):
            nan_to_f4 = np.isnan(x.astype(np.float64)) & (dst is DType.f4e2m1fn)
        assert _same(y, ref, nan_to_f4), (dst, saturate, x, y, ref)


def test_stablehlo_float_to_sub_byte_int_in_range():
    pytest.importorskip("jax")
    x = np.float32([-2.7, -2, -1.5, -0.2, 0, 0.9, 1.5, 3.2])
    for dst in (DType.i2, DType.u2, DType.u4):
        info = ml_dtypes.iinfo(dst.numpy)
        xs = x[(x > info.min - 1) & (x < info.max + 1)]
        g = _cast_graph(DType.f32, dst, xs.size)
        got = leptonc.compile(g, (xs,), target="stablehlo", quiet=True, cache=False)(xs)
        np.testing.assert_array_equal(got.astype(np.int32), leptonc.run_reference(g, xs)[0].astype(np.int32))


def test_stablehlo_float_to_sub_byte_int_out_of_range_wraps_as_the_reference():
    """Truncated to i64, then the low bits (NaN, infinities and |x| >= 2^63 give 0), as the reference."""
    pytest.importorskip("jax")
    x = np.float32([5, 8, 9, -9, 16, 17, 200, -200, 1e10, np.nan, np.inf, -np.inf, 3.7, -2.5, 1e30])
    for dst in (DType.i4, DType.u4, DType.i2, DType.u2):
        g = _cast_graph(DType.f32, dst, x.size)
        got = leptonc.compile(g, (x,), target="stablehlo", quiet=True, cache=False)(x)
        np.testing.assert_array_equal(got.astype(np.int32), leptonc.run_reference(g, x)[0].astype(np.int32))


def test_stablehlo_moves_narrow_values_through_view_ops():
    pytest.importorskip("jax")
    g = Graph("view")
    x = g.add_input("x", TensorType(DType.f32, (4, 6)))
    q = g.add("cast", x, dtype=DType.f8e4m3fn, saturate=True)
    t = g.add("reshape", g.add("transpose", q, perm=(1, 0)), shape=(3, 8))
    g.set_outputs([t, g.add("cast", t, dtype=DType.f32)])
    xv = (np.random.default_rng(1).standard_normal((4, 6)) * 300).astype(np.float32)
    cm = leptonc.compile(g, (xv,), target="stablehlo", quiet=True, cache=False)
    for got, ref in zip(cm(xv), leptonc.run_reference(g, xv)):
        assert got.dtype == ref.dtype and got.tobytes() == ref.tobytes()


@pytest.mark.parametrize("build, message", [
    (lambda g, x: g.add("cast", x, dtype=DType.f8e8m0fnu, round="up"),
     r"'%\w+ = cast': a cast to f8e8m0fnu is not supported by the stablehlo target"),
    (lambda g, x: g.add("add", g.add("cast", x, dtype=DType.f8e5m2), g.add("cast", x, dtype=DType.f8e5m2)),
     r"'%\w+ = add': dtype f8e5m2 is not supported by the stablehlo target in op 'add'"),
])
def test_stablehlo_names_what_it_lacks(build, message):
    pytest.importorskip("jax")
    g = Graph("lacks")
    x = g.add_input("x", TensorType(DType.f32, (3,)))
    g.set_outputs([build(g, x)])
    with pytest.raises(LeptoncError, match=message):
        leptonc.compile(g, (np.ones(3, np.float32),), target="stablehlo", quiet=True, cache=False)


@pytest.mark.parametrize("target", ["cpu", "stablehlo"])
def test_weights_stored_in_a_narrow_type_fold_and_compile(target, request):
    """A float8 weight cast up to f32 is a constant after folding: the model compiles and matches."""
    _available(target, request)
    rng = np.random.default_rng(0)
    g = Graph("f8_weights")
    x = g.add_input("x", TensorType(DType.f32, (2, 8)))
    w = g.add_constant(rng.standard_normal((8, 4)).astype(DType.f8e4m3fn.numpy), "w")
    g.set_outputs([g.add("matmul", x, g.add("cast", w, dtype=DType.f32))])
    xv = rng.standard_normal((2, 8)).astype(np.float32)
    got = leptonc.compile(g, (xv,), target=target, quiet=True, cache=False)(xv)  # one output: an array
    np.testing.assert_allclose(got, leptonc.run_reference(g, xv)[0], rtol=1e-5, atol=1e-5)
