"""ONNX Cast / QuantizeLinear / DequantizeLinear with the narrow types, beyond what the node test suite
covers (saturate=0 quantization, every round_mode of float8e8m0, float8e8m0 scales), checked against
onnx's reference evaluator."""
from __future__ import annotations

import numpy as np
import pytest

import leptonc

onnx = pytest.importorskip("onnx")
from onnx import TensorProto as T  # noqa: E402
from onnx import helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

F8 = [T.FLOAT8E4M3FN, T.FLOAT8E4M3FNUZ, T.FLOAT8E5M2, T.FLOAT8E5M2FNUZ]
X = np.array([0.4789, 3.3, -17.2, 1e6, -1e6, 1e-7, np.nan, np.inf, -np.inf, 500, 0.0, -250],
             np.float32).reshape(3, 4)


def _model(node, feeds: dict, out_type, initializers=()):
    inputs = [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
              for name, a in feeds.items()]
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("y", out_type, None)],
                              initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 25)])


def _check(node, feeds: dict, out_type, initializers=()):
    """leptonc's import and reference interpreter give onnx's reference outputs, bit for bit (NaNs equal)."""
    model = _model(node, feeds, out_type, initializers)
    (expected,) = ReferenceEvaluator(model).run(None, feeds)
    (got,) = leptonc.run_reference(leptonc.import_onnx(model), *feeds.values())
    assert got.dtype == expected.dtype
    assert got.tobytes() == expected.tobytes() or np.array_equal(
        got.astype(np.float32), expected.astype(np.float32), equal_nan=True), (got, expected)
    return got


@pytest.mark.parametrize("to", F8, ids=helper.tensor_dtype_to_string)
@pytest.mark.parametrize("saturate", [0, 1])
@pytest.mark.parametrize("src", [np.float32, np.float16])
def test_cast_to_float8(to, saturate, src):
    node = helper.make_node("Cast", ["x"], ["y"], to=to, saturate=saturate)
    with np.errstate(over="ignore"):
        _check(node, {"x": X.astype(src)}, to)


@pytest.mark.parametrize("round_mode", ["up", "down", "nearest"])
@pytest.mark.parametrize("saturate", [0, 1])
def test_cast_to_float8e8m0(round_mode, saturate):
    # normal f32 magnitudes (onnx's reference rounds f32 subnormals by their bit pattern, not their value)
    rng = np.random.default_rng(0)
    x = (rng.uniform(1, 2, 64) * np.exp2(rng.integers(-126, 128, 64))).astype(np.float32)
    x[:6] = [1.5, 3.0, 2.0**127 * 1.75, np.nan, 0.124, 1.0]
    node = helper.make_node("Cast", ["x"], ["y"], to=T.FLOAT8E8M0, saturate=saturate, round_mode=round_mode)
    _check(node, {"x": x}, T.FLOAT8E8M0)


@pytest.mark.parametrize("to", F8 + [T.FLOAT4E2M1, T.UINT4, T.INT2, T.UINT2], ids=helper.tensor_dtype_to_string)
@pytest.mark.parametrize("saturate", [0, 1])
def test_quantize_dequantize_round_trip(to, saturate):
    scale = np.float32([0.5, 2.0, 0.25, 4.0])
    zp = np.zeros(4, helper.tensor_dtype_to_np_dtype(to))
    inits = [onnx.numpy_helper.from_array(scale, "s"), onnx.numpy_helper.from_array(zp, "zp")]
    q = helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["y"], axis=1, saturate=saturate)
    # NaN and inf have no integer code: ONNX leaves quantizing them to an integer type undefined
    x = X if to in F8 + [T.FLOAT4E2M1] else np.nan_to_num(X, nan=0.0, posinf=1e6, neginf=-1e6)
    codes = _check(q, {"x": x}, to, inits)
    dq = helper.make_node("DequantizeLinear", ["x", "s", "zp"], ["y"], axis=1)
    _check(dq, {"x": codes}, T.FLOAT, inits)


def test_dequantize_with_float8e8m0_scales():
    """MX-style blocks: float4e2m1 codes with one power-of-two scale per block of 4."""
    codes = np.float32([[0.5, -1, 6, 3, 2, 0, -4, 1.5]]).astype(helper.tensor_dtype_to_np_dtype(T.FLOAT4E2M1))
    scales = onnx.numpy_helper.to_float8e8m0(np.float32([[0.25, 8.0]]))
    node = helper.make_node("DequantizeLinear", ["x", "s"], ["y"], axis=1, block_size=4, output_dtype=T.FLOAT)
    _check(node, {"x": codes, "s": scales}, T.FLOAT)
