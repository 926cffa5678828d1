"""The stablehlo target on whole models: the model zoo (imported with the torch frontend),
symbolic sizes specialized per binding, weights as arguments or inlined, other dtypes."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("torch")
pytest.importorskip("onnx")

from leptonc import import_torch  # noqa: E402
from leptonc.codegen.stablehlo import emit, emit_module  # noqa: E402
from leptonc.codegen.stablehlo.verify import verify_module  # noqa: E402
from leptonc.ir import DType, Graph, LeptoncError, TensorType  # noqa: E402
from leptonc.runtime.reference import run_reference  # noqa: E402
from leptonc.codegen.stablehlo import xla_model  # noqa: E402
from leptonc.runtime.xla import XlaModel  # noqa: E402
from tests.codegen.test_stablehlo_ops import check_close  # noqa: E402
from tests.model_zoo import FULL, SMALL, as_numpy, build, dynamic  # noqa: E402


def check_model(graph: Graph, inputs: list) -> XlaModel:
    model = xla_model(graph)
    check_close(model(*inputs), run_reference(graph, *inputs))
    for sizes in model.compiled_sizes:
        verify_module(model.module_for(sizes).text)
    return model


@pytest.mark.parametrize("name", SMALL)
def test_small_model_matches_reference(name):
    module, inputs = build(name)
    check_model(import_torch(module, inputs), as_numpy(inputs))


@pytest.mark.slow
@pytest.mark.parametrize("name", FULL)
def test_full_model_matches_reference(name):
    module, inputs = build(name)
    check_model(import_torch(module, inputs), as_numpy(inputs))


@pytest.mark.parametrize("name", ["mlp", "cnn", pytest.param("bert_small", marks=pytest.mark.slow)])
def test_symbolic_sizes_compile_once_per_size(name):
    module, inputs = build(name)
    shapes, other = dynamic(name)
    graph = import_torch(module, inputs, dynamic_shapes=shapes)
    assert any(isinstance(d, str) for v in graph.inputs for d in v.shape)
    model = check_model(graph, as_numpy(inputs))
    check_close(model(*as_numpy(other)), run_reference(graph, *as_numpy(other)))
    model(*as_numpy(inputs))  # a size seen before reuses its executable
    assert len(model.compiled_sizes) == 2


def light_models() -> list[str]:
    """The real CNNs of the onnx wheel's backend data (`light` folder)."""
    import glob
    import os

    import onnx.backend.test

    folder = os.path.join(os.path.dirname(onnx.backend.test.__file__), "data", "light")
    return sorted(glob.glob(os.path.join(folder, "light_*.onnx")))


@pytest.mark.slow
@pytest.mark.parametrize("path", light_models(), ids=lambda p: p.rsplit("/", 1)[-1][:-5])
def test_onnx_light_cnn_matches_reference(path):
    from leptonc import import_onnx

    graph = import_onnx(path)
    rng = np.random.default_rng(0)
    check_model(graph, [rng.standard_normal(v.type.shape).astype(v.dtype.numpy) for v in graph.inputs])


def mlp_graph() -> Graph:
    rng = np.random.default_rng(1)
    g = Graph("mlp")
    x = g.add_input("x", TensorType(DType.f32, ("B", 8)))
    w = g.add_constant(rng.standard_normal((8, 16)).astype(np.float32), "fc1.weight")
    bias = g.add_constant(rng.standard_normal(16).astype(np.float32), "fc1.bias")
    h = g.add("relu", g.add("add", g.add("matmul", x, w), bias))
    g.set_outputs([g.add("reduce_sum", h, axes=(1,), keepdims=False), h])
    return g


def test_weights_are_arguments_unless_inlined():
    g = mlp_graph()
    module = emit(g, {"B": 4})
    assert module.weights == ("fc1.weight", "fc1.bias")
    assert "%w_fc1.weight: tensor<8x16xf32>" in module.text
    inlined = emit(g, {"B": 4}, inline_weights=True)
    assert inlined.weights == () and "%w_fc1" not in inlined.text
    verify_module(module.text)
    verify_module(inlined.text)
    x = np.random.default_rng(2).standard_normal((4, 8)).astype(np.float32)
    want = run_reference(g, x)
    check_close(xla_model(g)(x), want)
    check_close(xla_model(g, inline_weights=True)(x), want)


def test_symbolic_graph_needs_sizes():
    with pytest.raises(LeptoncError, match="symbolic dims \\['B'\\]"):
        emit_module(mlp_graph())


@pytest.mark.parametrize("dtype", [DType.f16, DType.bf16, DType.f64])
def test_other_float_dtypes(dtype):
    rng = np.random.default_rng(3)
    g = Graph("net")
    x = g.add_input("x", TensorType(dtype, (4, 8)))
    w = g.add_constant(rng.standard_normal((8, 6)).astype(dtype.numpy), "w")
    h = g.add("matmul", x, w)
    y = g.add("reduce_mean", g.add("exp", g.add("cast", h, dtype=DType.f32)), axes=(1,))
    g.set_outputs([g.add("cast", y, dtype=dtype), g.add("reduce_sum", h, axes=(0,))])
    arr = rng.standard_normal((4, 8)).astype(dtype.numpy)
    got, want = xla_model(g)(arr), run_reference(g, arr)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype
        tol = 1e-4 if dtype is DType.f64 else 2e-2
        np.testing.assert_allclose(a.astype(np.float64), b.astype(np.float64), rtol=tol, atol=tol)


def test_i4_and_bool_constants_are_exact():
    g = Graph("consts")
    x = g.add_input("x", TensorType(DType.i32, (4,)))
    q = g.add_constant(np.array([-8, -1, 0, 7], dtype=DType.i4.numpy), "q")
    m = g.add_constant(np.array([True, False, False, True]), "m")
    y = g.add("where", m, g.add("cast", q, dtype=DType.i32), x)
    g.set_outputs([y])
    arr = np.arange(4, dtype=np.int32)
    for inline in (False, True):
        np.testing.assert_array_equal(xla_model(g, inline_weights=inline)(arr)[0], run_reference(g, arr)[0])
