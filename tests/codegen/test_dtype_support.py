"""A target that meets a dtype it does not compute with (the 8-bit and 4-bit floats, the 2-bit and
unsigned 4-bit integers) says which dtype, which op (or graph input) and which target, before it
generates anything."""
from __future__ import annotations

import numpy as np
import pytest

import leptonc
from leptonc.ir import DType, Graph, TensorType
from leptonc.ir.errors import LeptoncError

NARROW = [DType.f8e4m3fn, DType.f8e5m2fnuz, DType.f8e8m0fnu, DType.f4e2m1fn, DType.u4, DType.i2]


def _available(target: str, request) -> None:
    if target == "triton":
        pytest.importorskip("triton")
        request.getfixturevalue("triton_device")
    elif target == "stablehlo":
        pytest.importorskip("jax")


def _through(dtype: DType) -> Graph:
    """f32 -> dtype -> f32 (a quantize-dequantize round trip in the narrow type)."""
    g = Graph("through")
    x = g.add_input("x", TensorType(DType.f32, (4, 8)))
    q = g.add("cast", g.add("mul", x, g.add_constant(np.float32(4.0), "s")), dtype=dtype)
    g.set_outputs([g.add("cast", q, dtype=DType.f32)])
    return g


@pytest.mark.parametrize("target", ["cpu", "triton", "stablehlo"])
@pytest.mark.parametrize("dtype", NARROW, ids=str)
def test_cast_to_an_unsupported_dtype_names_dtype_op_and_target(target, dtype, request):
    _available(target, request)
    x = np.ones((4, 8), np.float32)
    with pytest.raises(LeptoncError, match=rf"'%\w+ = cast': dtype {dtype} is not supported by "
                                           rf"the {target} target \(supported: f32"):
        leptonc.compile(_through(dtype), (x,), target=target, quiet=True, cache=False)


@pytest.mark.parametrize("target", ["cpu", "triton", "stablehlo"])
def test_graph_input_of_an_unsupported_dtype_is_named(target, request):
    _available(target, request)
    g = Graph("narrow_in")
    x = g.add_input("codes", TensorType(DType.f8e4m3fn, (3,)))
    g.set_outputs([g.add("cast", x, dtype=DType.f32)])
    with pytest.raises(LeptoncError, match=rf"graph input %codes: dtype f8e4m3fn is not supported by the {target} "
                                           "target"):
        leptonc.compile(g, (np.ones(3, DType.f8e4m3fn.numpy),), target=target, quiet=True, cache=False)


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
