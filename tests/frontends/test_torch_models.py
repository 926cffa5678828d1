"""The model zoo through the torch frontend and through torch.onnx.export + the ONNX frontend:
the reference interpreter matches eager PyTorch, and every imported graph survives a text round trip.

Small variants run by default; the full-size models (BERT-base, GPT-2, ResNet-50, MobileNetV2,
ViT-Base) are marked slow, except BERT-base through torch.export, the model the reference
interpreter's speed is measured on.
"""
import time

import numpy as np
import pytest
import torch

import leptonc
from tests.model_zoo import FULL, SMALL, as_numpy, assert_close, build, eager_outputs

DEFAULT_FULL = ("bert",)
MODELS = [pytest.param(name, id=name) for name in SMALL] + [
    pytest.param(name, id=name, marks=() if name in DEFAULT_FULL else pytest.mark.slow) for name in FULL]


@pytest.mark.parametrize("name", MODELS)
def test_torch_import(name, record_property):
    """Imported through torch.export, the graph matches eager PyTorch, and so does its text round trip."""
    module, inputs = build(name)
    graph, arrays = leptonc.import_torch(module, inputs), as_numpy(inputs)
    start = time.perf_counter()
    outputs = leptonc.run_reference(graph, *arrays)
    record_property("reference_seconds", round(time.perf_counter() - start, 3))
    assert_close(outputs, eager_outputs(module, inputs))

    text = leptonc.print_ir(graph)
    parsed = leptonc.parse_ir(text, graph.constants)
    assert leptonc.print_ir(parsed) == text
    for a, b in zip(leptonc.run_reference(parsed, *arrays), outputs):
        np.testing.assert_array_equal(a, b)


def test_parameters_are_named_constants():
    module, inputs = build("mlp")
    graph = leptonc.import_torch(module, inputs)
    assert {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"} <= set(graph.constants)
    np.testing.assert_array_equal(graph.constants["fc1.weight"], module.fc1.weight.detach().numpy())
    assert graph.name == "MLP" and [v.name for v in graph.inputs] == ["x"]


ONNX_MODELS = [pytest.param(name, id=name) for name in SMALL] + [
    pytest.param(name, id=name, marks=pytest.mark.slow) for name in FULL]


@pytest.mark.parametrize("name", ONNX_MODELS)
def test_onnx_export_import_matches_eager(name, tmp_path):
    pytest.importorskip("onnxscript")
    module, inputs = build(name)
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(module, inputs, str(path), dynamo=True, verbose=False)
    graph = leptonc.import_onnx(str(path))
    outputs = leptonc.run_reference(graph, *as_numpy(inputs))
    assert_close(outputs, eager_outputs(module, inputs))
    text = leptonc.print_ir(graph)
    parsed = leptonc.parse_ir(text, graph.constants)
    assert leptonc.print_ir(parsed) == text
    for a, b in zip(leptonc.run_reference(parsed, *as_numpy(inputs)), outputs):
        np.testing.assert_array_equal(a, b)
