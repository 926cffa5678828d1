"""Precision lowering on each target: mixed-precision graphs run on cpu (in f32 between bf16/f16 roundings),
Triton (its interpreter) and StableHLO (XLA's CPU backend) within the pass's declared tolerance, bf16/f16
graphs run end to end there, and a target that lacks an op or a dtype says which op and which target."""
from __future__ import annotations

import numpy as np
import pytest

import leptonc
from leptonc.runtime.accuracy import HEAD_SAMPLES
from leptonc.ir import DType, Graph, TensorType
from leptonc.ir.errors import LeptoncError
from tests.model_zoo import build

pytest.importorskip("torch")

MIXED = ["mixed-precision{dtype=bf16}", "mixed-precision{dtype=f16}"]
QUANTIZED = ["quantize{weights=int8}", "quantize{weights=int4,group=32}",
             "quantize{weights=int8,activations=int8-dynamic}"]


@pytest.fixture(autouse=True)
def on_triton_device(triton_device):
    """The kernels run on the GPU where there is one, else through Triton's interpreter."""


def _target_available(target: str) -> None:
    if target != "cpu":
        pytest.importorskip("triton" if target == "triton" else "jax")


@pytest.mark.parametrize("target", ["cpu", "triton", "stablehlo"])
@pytest.mark.parametrize("passes", MIXED)
def test_mixed_precision_model_within_tolerance(target, passes):
    _target_available(target)
    module, inputs = build("mlp")
    cm = leptonc.compile(module, inputs, target=target, passes=passes, quiet=True)
    report = cm.manifest["accuracy"]
    assert report["samples"] == HEAD_SAMPLES and report["outputs"][0]["top1_agreement"] is not None
    assert report["within_tolerance"], report


def _low_graph(dtype: DType) -> Graph:
    rng = np.random.default_rng(0)
    g = Graph("low")
    x = g.add_input("x", TensorType(dtype, (8, 32)))
    w = g.add_constant((rng.standard_normal((32, 16)) / 6).astype(dtype.numpy), "w")
    h = g.add("add", g.add("matmul", x, w), g.add_constant(rng.standard_normal(16).astype(dtype.numpy), "b"))
    g.set_outputs([g.add("tanh", h), g.add("reduce_sum", h, axes=(1,))])
    return g


@pytest.mark.parametrize("target", ["cpu", "triton", "stablehlo"])
@pytest.mark.parametrize("dtype", [DType.bf16, DType.f16])
def test_low_precision_graph_runs(target, dtype):
    """Inputs, weights and outputs in bf16/f16, numpy in and out."""
    _target_available(target)
    g = _low_graph(dtype)
    x = np.random.default_rng(1).standard_normal((8, 32)).astype(dtype.numpy)
    got = leptonc.compile(g, (x,), target=target, quiet=True)(x)
    for y, ref in zip(got, leptonc.run_reference(g, x)):
        assert y.dtype == ref.dtype == dtype.numpy
        tol = 0.05 if dtype is DType.bf16 else 5e-3
        np.testing.assert_allclose(y.astype(np.float32), ref.astype(np.float32), rtol=tol, atol=tol)


@pytest.mark.parametrize("passes", QUANTIZED)
def test_triton_names_the_quantized_op_it_lacks(passes):
    pytest.importorskip("triton")
    module, inputs = build("mlp")
    with pytest.raises(LeptoncError, match=r"(op 'matmul_(wq|w8a8)'|= matmul_wq' \(from fc1\): dtype i4) is not "
                                          r"supported by the triton target"):
        leptonc.compile(module, inputs, target="triton", passes=passes, quiet=True)


@pytest.mark.parametrize("passes", QUANTIZED)
def test_stablehlo_runs_quantized_models_within_tolerance(passes):
    pytest.importorskip("jax")
    module, inputs = build("mlp")
    cm = leptonc.compile(module, inputs, target="stablehlo", passes=passes, quiet=True)
    assert cm.manifest["accuracy"]["within_tolerance"], cm.manifest["accuracy"]
