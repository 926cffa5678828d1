"""Every pass on real models: the zoo through the torch frontend (static and dynamic shapes), the zoo
exported to ONNX, and the ONNX backend test models (onnx/backend/test/data/light). The verifier accepts
the result after every pass, and the reference interpreter gives the same outputs before and after.

After `default` at static shapes no shape computation is left: no shape_of, no dynamic op, nothing
that only combines constants into a small integer tensor.
"""
from __future__ import annotations

import glob
import os
import warnings

import numpy as np
import pytest

import leptonc
from leptonc.passes import run_pipeline
from tests.model_zoo import FULL, SMALL, as_numpy, assert_close, build, dynamic
from tests.passes.onnx_export import export_onnx
from tests.random_graphs import random_inputs

PIPELINES = ("dce", "fold", "cse", "canonicalize", "fold-batchnorm", "default", "channels-last")
EXACT = ("dce", "fold", "cse")  # the others may reorder a summation or round folded weights


def check_pipeline(graph, inputs, expected, pipeline):
    after = run_pipeline(graph, pipeline, verify_each=True)
    got = leptonc.run_reference(after, *inputs)
    if pipeline in EXACT:
        for g, e in zip(got, expected):
            np.testing.assert_array_equal(g, e)
    else:
        assert_close(got, expected)
    return after


def leftover_shape_computations(graph) -> list[str]:
    """Nodes that compute shapes: shape_of, dynamic ops, and small integer results made from constants only."""
    left = []
    for node in graph.nodes:
        if node.op == "const":
            continue
        v = node.outputs[0]
        from_constants = node.inputs and all(graph.constant_of(x) is not None for x in node.inputs)
        if node.op == "shape_of" or node.op.endswith("_dynamic") or (
                from_constants and v.dtype.is_int and v.type.rank <= 1):
            left.append(node.label)
    return left


def _model_params(names, default_names):
    return [pytest.param(n, id=n, marks=() if n in default_names else pytest.mark.slow) for n in names]


@pytest.fixture(scope="module", params=_model_params(SMALL + FULL, SMALL))
def torch_model(request):
    module, inputs = build(request.param)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = leptonc.import_torch(module, inputs)
    arrays = as_numpy(inputs)
    return graph, arrays, leptonc.run_reference(graph, *arrays)


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_torch_model(torch_model, pipeline):
    after = check_pipeline(*torch_model, pipeline)
    if pipeline == "default":
        assert leftover_shape_computations(after) == []
        assert len(after.nodes) <= len(torch_model[0].nodes)


@pytest.mark.parametrize("name", ["mlp", "cnn", "bert_small"])
def test_torch_model_dynamic_shapes(name):
    """With symbolic batch (and sequence) sizes, default keeps the graph right at two sets of sizes."""
    module, inputs = build(name)
    dynamic_shapes, other_inputs = dynamic(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = leptonc.import_torch(module, inputs, dynamic_shapes=dynamic_shapes)
    after = run_pipeline(graph, "default", verify_each=True)
    for xs in (inputs, other_inputs):
        arrays = as_numpy(xs)
        assert_close(leptonc.run_reference(after, *arrays), leptonc.run_reference(graph, *arrays))


@pytest.fixture(scope="module", params=_model_params(["bert_small", "resnet_small", "mlp", "vit_small", "cnn"],
                                                     ("bert_small", "resnet_small")))
def onnx_export(request, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("onnx") / f"{request.param}.onnx")
    export_onnx(request.param, path)
    graph = leptonc.import_onnx(path)
    arrays = as_numpy(build(request.param)[1])
    return graph, arrays, leptonc.run_reference(graph, *arrays)


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_onnx_export(onnx_export, pipeline):
    after = check_pipeline(*onnx_export, pipeline)
    if pipeline == "default":
        assert leftover_shape_computations(after) == []


def _light_models():
    import onnx

    folder = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
    fast = ("shufflenet", "squeezenet")
    return [pytest.param(p, id=os.path.basename(p)[6:-5],
                         marks=() if any(f in p for f in fast) else pytest.mark.slow)
            for p in sorted(glob.glob(os.path.join(folder, "light_*.onnx")))]


@pytest.fixture(scope="module", params=_light_models())
def light_model(request):
    graph = leptonc.import_onnx(request.param)
    arrays = random_inputs(graph, seed=0)
    return graph, arrays, leptonc.run_reference(graph, *arrays)


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_onnx_light_model(light_model, pipeline):
    after = check_pipeline(*light_model, pipeline)
    if pipeline == "default":
        assert leftover_shape_computations(after) == []
