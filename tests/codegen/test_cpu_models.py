"""Real models through the cpu target match the reference interpreter: the model zoo (torch route,
small variants by default, full-size ones slow) and the onnx `light` CNNs."""
from __future__ import annotations

import glob
import os

import numpy as np
import pytest

pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

import leptonc  # noqa: E402
from tests.codegen.cpu_check import assert_matches_reference  # noqa: E402
from tests.model_zoo import FULL, SMALL, as_numpy, build, dynamic  # noqa: E402


def _check_torch(name: str):
    module, inputs = build(name)
    graph = leptonc.import_torch(module, inputs)
    cm = leptonc.compile(graph, quiet=True)
    xs = as_numpy(inputs)
    assert_matches_reference(cm.run(*xs), leptonc.run_reference(graph, *xs))
    return cm


@pytest.mark.parametrize("name", SMALL)
def test_small_model_matches_reference(name):
    _check_torch(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", FULL)
def test_full_model_matches_reference(name):
    _check_torch(name)


def test_compile_takes_a_torch_module_directly():
    module, inputs = build("mlp")
    cm = leptonc.compile(module, inputs, quiet=True)
    want = module(*inputs).detach().numpy()
    np.testing.assert_allclose(cm(*as_numpy(inputs)), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["mlp", "cnn", "bert_small"])
def test_dynamic_shapes_two_sizes_one_library(name):
    module, inputs = build(name)
    shapes, other = dynamic(name)
    graph = leptonc.import_torch(module, inputs, dynamic_shapes=shapes)
    assert graph.inputs[0].type.shape[0] == "batch"
    cm = leptonc.compile(graph, quiet=True)
    library = cm.executor.lib
    for xs in (as_numpy(inputs), as_numpy(other)):
        assert_matches_reference(cm.run(*xs), leptonc.run_reference(graph, *xs))
    assert cm.executor.lib is library and len(cm.executor._plans) == 2


def test_size_that_violates_the_symbols_is_a_clear_error():
    module, inputs = build("bert_small")
    shapes, _ = dynamic("bert_small")
    graph = leptonc.import_torch(module, inputs, dynamic_shapes=shapes)
    cm = leptonc.compile(graph, quiet=True)
    ids, mask = as_numpy(inputs)
    with pytest.raises(leptonc.LeptoncError, match=r"input '.*' expects .*seq"):
        cm.run(ids, mask[:, :-1])


def _light_models() -> list[str]:
    import onnx.backend.test

    folder = os.path.join(os.path.dirname(onnx.backend.test.__file__), "data", "light")
    return sorted(glob.glob(os.path.join(folder, "light_*.onnx")))


FAST_LIGHT = ("light_resnet50", "light_shufflenet", "light_squeezenet", "light_bvlc_alexnet")


@pytest.mark.parametrize("path", [pytest.param(p, marks=() if os.path.basename(p)[:-5] in FAST_LIGHT
                                               else pytest.mark.slow, id=os.path.basename(p)[:-5])
                                  for p in _light_models()])
def test_onnx_light_cnn_matches_reference(path):
    graph = leptonc.import_onnx(path)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(v.type.shape).astype(v.dtype.numpy) for v in graph.inputs]
    cm = leptonc.compile(graph, quiet=True)
    assert_matches_reference(cm.run(*xs), leptonc.run_reference(graph, *xs))
