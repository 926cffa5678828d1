"""Dynamic batch and sequence dims: the imported graph carries the user's Dim names as symbols and
runs correctly at two different sizes without re-import."""
import pytest
import torch

import leptonc
from tests.model_zoo import as_numpy, assert_close, build, dynamic, eager_outputs


@pytest.mark.parametrize("name, input_shapes", [
    ("mlp", [("batch", 64)]),
    ("cnn", [("batch", 3, 32, 32)]),
    ("bert_small", [("batch", "seq"), ("batch", "seq")]),
    ("gpt2_small", [("batch", "seq")]),
    ("vit_small", [("batch", 3, 32, 32)]),
])
def test_two_sizes_without_reimport(name, input_shapes):
    module, inputs = build(name)
    dynamic_shapes, other_inputs = dynamic(name)
    graph = leptonc.import_torch(module, inputs, dynamic_shapes=dynamic_shapes)
    assert [v.shape for v in graph.inputs] == input_shapes
    assert graph.outputs[0].shape[0] == "batch"
    sizes = set()
    for args in (inputs, other_inputs):
        outputs = leptonc.run_reference(graph, *as_numpy(args))
        assert_close(outputs, eager_outputs(module, args))
        sizes.add(outputs[0].shape)
    assert len(sizes) == 2


def test_derived_dims_become_expressions():
    class Flatten(torch.nn.Module):
        def forward(self, x):
            return x.reshape(-1, 4) * 2.0

    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    x = torch.randn(3, 5, 4)
    graph = leptonc.import_torch(Flatten(), (x,), dynamic_shapes=({0: batch, 1: seq},))
    assert graph.outputs[0].shape == ("batch*seq", 4)
    for args in ((x,), (torch.randn(2, 7, 4),)):
        assert_close(leptonc.run_reference(graph, *as_numpy(args)), [Flatten()(*args).numpy()])


def test_dynamic_shapes_by_argument_name():
    module, inputs = build("mlp")
    graph = leptonc.import_torch(module, inputs, dynamic_shapes={"x": {0: torch.export.Dim("rows")}})
    assert graph.inputs[0].shape == ("rows", 64)
