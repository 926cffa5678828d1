"""ONNX quantization ops import into the IR's quantization ops and match ONNX Runtime: single nodes,
and models quantized with onnxruntime.quantization (quantize_dynamic, quantize_static in QDQ and
QOperator formats)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import leptonc
from leptonc.passes import run_pipeline
from tests.model_zoo import as_numpy, build

ort = pytest.importorskip("onnxruntime")
quantization = pytest.importorskip("onnxruntime.quantization")


def _ort(path_or_bytes, feeds: dict) -> list[np.ndarray]:
    session = ort.InferenceSession(path_or_bytes, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _single_node(op: str, inputs: dict, initializers: dict, outputs: list, opset: int = 13, **attrs) -> bytes:
    """A one-node model: `inputs` name -> array (graph inputs), `initializers` name -> array ("" skips)."""
    names = list(inputs) + list(initializers)
    node = helper.make_node(op, names, [o[0] for o in outputs], **attrs)
    graph = helper.make_graph(
        [node], "single",
        [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for k, v in inputs.items()],
        [helper.make_tensor_value_info(name, elem, None) for name, elem in outputs],
        [numpy_helper.from_array(v, k) for k, v in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    return model.SerializeToString()


def _check(model: bytes, feeds: dict, expected_ops: set, atol: float = 0.0):
    want = _ort(model, feeds)
    graph = leptonc.import_onnx(model)
    assert expected_ops <= set(graph.op_counts()), graph.op_counts()
    got = leptonc.run_reference(graph, *feeds.values())
    for w, g in zip(want, got):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), atol=atol, rtol=0)


RNG = np.random.default_rng(0)
X = (RNG.standard_normal((4, 6)) * 3).astype(np.float32)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_quantize_dequantize_per_tensor(dtype):
    zp = np.array(3, dtype)
    q = _single_node("QuantizeLinear", {"x": X}, {"s": np.array(0.05, np.float32), "z": zp},
                     [("y", helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))])
    _check(q, {"x": X}, {"quantize"})
    xq = np.arange(-20, 4, dtype=np.int8).reshape(4, 6).astype(dtype)
    d = _single_node("DequantizeLinear", {"x": xq}, {"s": np.array(0.05, np.float32), "z": zp},
                     [("y", TensorProto.FLOAT)])
    _check(d, {"x": xq}, {"dequantize"})


def test_quantize_per_axis_and_dequantize():
    scale = np.array([0.1, 0.02, 0.3, 0.05], np.float32)
    zp = np.array([0, 1, -2, 5], np.int8)
    q = _single_node("QuantizeLinear", {"x": X}, {"s": scale, "z": zp}, [("y", TensorProto.INT8)], axis=0)
    _check(q, {"x": X}, {"quantize"})
    xq = RNG.integers(-128, 127, (4, 6)).astype(np.int8)
    d = _single_node("DequantizeLinear", {"x": xq}, {"s": scale, "z": zp}, [("y", TensorProto.FLOAT)], axis=0)
    _check(d, {"x": xq}, {"dequantize"})


def test_blocked_quantize_is_per_group():
    scale = np.abs(RNG.standard_normal((4, 3))).astype(np.float32) + 0.05
    q = _single_node("QuantizeLinear", {"x": X}, {"s": scale}, [("y", TensorProto.INT8)], opset=21, axis=1,
                     block_size=2, output_dtype=TensorProto.INT8)
    graph = leptonc.import_onnx(q)
    (node,) = [n for n in graph.nodes if n.op == "quantize"]
    assert node.attrs["group"] == 2 and node.attrs["axis"] == 1
    _check(q, {"x": X}, {"quantize"})


def test_dynamic_quantize_linear():
    m = _single_node("DynamicQuantizeLinear", {"x": X}, {},
                     [("y", TensorProto.UINT8), ("s", TensorProto.FLOAT), ("z", TensorProto.UINT8)], opset=13)
    _check(m, {"x": X}, {"quantize"}, atol=1e-7)


@pytest.mark.parametrize("zero_points", ["none", "scalar", "per-column"])
def test_matmul_integer(zero_points):
    a = RNG.integers(0, 255, (3, 8)).astype(np.uint8)
    b = RNG.integers(-128, 127, (8, 5)).astype(np.int8)
    inits = {"b": b}
    if zero_points == "scalar":
        inits.update(az=np.array(128, np.uint8), bz=np.array(-3, np.int8))
    elif zero_points == "per-column":
        inits.update(az=np.array(7, np.uint8), bz=np.arange(5).astype(np.int8))
    m = _single_node("MatMulInteger", {"a": a}, inits, [("y", TensorProto.INT32)])
    graph = leptonc.import_onnx(m)
    assert "matmul_integer" in graph.op_counts()
    # the exact product, not ONNX Runtime's: its AVX2 kernel (no VNNI) saturates pairs of u8 x s8 products in int16
    az, bz = inits.get("az", np.uint8(0)), inits.get("bz", np.int8(0))
    want = (a.astype(np.int64) - az) @ (b.astype(np.int64) - bz)
    np.testing.assert_array_equal(leptonc.run_reference(graph, a)[0], want.astype(np.int32))


def test_qlinear_matmul():
    # a below 128: ORT's AVX2 kernels without VNNI add u8 x s8 pairs in int16, which saturates for larger a
    # (the draw then depended on which tests ran first in the worker)
    rng = np.random.default_rng(3)
    a = rng.integers(0, 128, (3, 8)).astype(np.uint8)
    inits = {"as": np.array(0.02, np.float32), "az": np.array(120, np.uint8),
             "b": rng.integers(-128, 127, (8, 5)).astype(np.int8), "bs": np.array(0.01, np.float32),
             "bz": np.array(0, np.int8), "ys": np.array(0.5, np.float32), "yz": np.array(128, np.uint8)}
    m = _single_node("QLinearMatMul", {"a": a}, inits, [("y", TensorProto.UINT8)])
    _check(m, {"a": a}, {"matmul_integer", "dequantize", "quantize"}, atol=1)  # ORT rounds its requantization


# ---------------------------------------------------------------- models quantized by onnxruntime

@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """name -> (fp32 ONNX path, numpy inputs) for the models the tests quantize."""
    pytest.importorskip("onnxscript")
    out = {}
    for name in ("mlp", "bert_small"):
        module, inputs = build(name)
        path = tmp_path_factory.mktemp(name) / f"{name}.onnx"
        torch.onnx.export(module, inputs, str(path), dynamo=True, verbose=False)
        out[name] = (str(path), as_numpy(inputs))
    return out


class _Calibration(quantization.CalibrationDataReader if quantization else object):
    def __init__(self, names, arrays):
        self.items = iter([dict(zip(names, arrays))])

    def get_next(self):
        return next(self.items, None)


def _quantized(kind: str, path: str, inputs: list, tmp_path) -> str:
    """ORT's quantizers with reduce_range (7-bit weights), which its docs ask for on CPUs without VNNI: its AVX2
    kernels saturate pairs of u8 x s8 products in int16, so full-range weights make ORT itself inexact."""
    out = str(tmp_path / f"{kind}.onnx")
    names = [i.name for i in ort.InferenceSession(path, providers=["CPUExecutionProvider"]).get_inputs()]
    if kind == "dynamic":
        quantization.quantize_dynamic(path, out, weight_type=quantization.QuantType.QInt8, reduce_range=True)
    elif kind == "static-qdq":
        quantization.quantize_static(path, out, _Calibration(names, inputs), quant_format=quantization.QuantFormat.QDQ,
                                     reduce_range=True)
    else:  # QOperator format, matmuls only: QLinearMatMul between QuantizeLinear / DequantizeLinear
        quantization.quantize_static(path, out, _Calibration(names, inputs), op_types_to_quantize=["MatMul"],
                                     quant_format=quantization.QuantFormat.QOperator)
    return out


@pytest.mark.parametrize("kind,ops", [("dynamic", {"quantize", "matmul_integer"}),
                                      ("static-qdq", {"quantize", "dequantize"}),
                                      ("static-qoperator", {"matmul_integer", "quantize", "dequantize"})])
@pytest.mark.parametrize("model", ["mlp", "bert_small"])
def test_onnxruntime_quantized_models_match_onnxruntime(exported, model, kind, ops, tmp_path):
    if model == "mlp" and kind == "static-qoperator":
        pytest.skip("the MLP's linear layers export as Gemm, which QOperator turns into com.microsoft QGemm")
    path, inputs = exported[model]
    qpath = _quantized(kind, path, inputs, tmp_path)
    session = ort.InferenceSession(qpath, providers=["CPUExecutionProvider"])
    want = session.run(None, {i.name: a for i, a in zip(session.get_inputs(), inputs)})
    graph = leptonc.import_onnx(qpath)
    assert ops <= set(graph.op_counts()), graph.op_counts()
    got = leptonc.run_reference(run_pipeline(graph, "default"), *inputs)
    for w, g in zip(want, got):
        if kind == "dynamic":
            bound = 1e-5 * max(1.0, float(np.max(np.abs(w))))
        else:  # ORT's fused integer kernels may round a requantized value the other way: one output step
            bound = float(np.min(np.diff(np.unique(w)))) + 1e-6
        assert np.max(np.abs(g - w)) <= bound


@pytest.mark.parametrize("model", ["mlp", "bert_small"])
def test_quantize_dynamic_model_compiles_for_cpu(exported, model, tmp_path):
    """The cpu target runs an ORT quantize_dynamic model: its u8 activations and int32 products in C."""
    path, inputs = exported[model]
    qpath = _quantized("dynamic", path, inputs, tmp_path)
    session = ort.InferenceSession(qpath, providers=["CPUExecutionProvider"])
    want = session.run(None, {i.name: a for i, a in zip(session.get_inputs(), inputs)})
    cm = leptonc.compile(qpath, quiet=True)
    assert "matmul_integer" in cm.ir_text
    for w, g in zip(want, cm.run(*inputs)):
        # a float sum ordered differently may round one activation to the neighbouring 8-bit step
        assert np.max(np.abs(g - w)) <= 2e-2 * max(1.0, float(np.max(np.abs(w))))
