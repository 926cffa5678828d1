"""Crafted ONNX models that used to corrupt memory, crash the importer or give wrong answers: each is now
a LeptoncError naming the node or initializer at fault."""
from __future__ import annotations

import io

import numpy as np
import pytest

import leptonc
from leptonc.ir.errors import LeptoncError

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _model(nodes, inputs, outputs, initializers=(), sparse=(), opset=17):
    graph = helper.make_graph(nodes, "m", inputs, outputs, list(initializers), sparse_initializer=list(sparse))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _vi(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def _refused(model, *words, **kw):
    with pytest.raises(LeptoncError) as info:
        leptonc.import_onnx(model, **kw)
    for w in words:
        assert w in str(info.value), str(info.value)
    return str(info.value)


def test_pad_that_crops_more_than_the_tensor_holds_is_refused():
    pads = numpy_helper.from_array(np.array([0, -5, 0, -5], np.int64), "pads")
    m = _model([helper.make_node("Pad", ["x", "pads"], ["y"], name="crop")], [_vi("x", [2, 3])], [_vi("y", None)],
               [pads])
    _refused(m, "'crop'", "negative")


def test_conv_with_negative_pads_is_refused():
    w = numpy_helper.from_array(np.ones((1, 1, 3, 3), np.float32), "w")
    m = _model([helper.make_node("Conv", ["x", "w"], ["y"], name="c", pads=[-10, -10, -10, -10])],
               [_vi("x", [1, 1, 5, 5])], [_vi("y", None)], [w])
    _refused(m, "'c'", "pads", ">= 0")


@pytest.mark.parametrize("attrs, words", [
    ({"kernel_shape": [0, 2]}, ["kernel", ">= 1"]),
    ({"kernel_shape": [2, 2], "strides": [0, 1]}, ["strides", ">= 1"]),
    ({"kernel_shape": [2, 2], "dilations": [1, -3]}, ["dilations", ">= 1"]),
    ({"kernel_shape": [9, 9]}, ["negative"]),
])
def test_pool_attributes_outside_their_domain_are_refused(attrs, words):
    m = _model([helper.make_node("MaxPool", ["x"], ["y"], name="pool", **attrs)], [_vi("x", [1, 1, 4, 4])],
               [_vi("y", None)])
    _refused(m, "'pool'", *words)


def test_wrong_operand_counts_and_unknown_attributes_are_refused():
    relu2 = _model([helper.make_node("Relu", ["x", "x"], ["y"], name="r")], [_vi("x", [2])], [_vi("y", None)])
    _refused(relu2, "'r'", "takes 1 inputs, got 2")
    add1 = _model([helper.make_node("Add", ["x"], ["y"], name="a")], [_vi("x", [2])], [_vi("y", None)])
    _refused(add1, "'a'", "takes 2 inputs, got 1")
    bogus = _model([helper.make_node("Relu", ["x"], ["y"], name="r", bogus=3)], [_vi("x", [2])], [_vi("y", None)])
    _refused(bogus, "'r'", "unknown attribute 'bogus'")
    node = helper.make_node("Softmax", ["x"], ["y"], name="s")
    node.attribute.add(name="axis", type=onnx.AttributeProto.FLOAT, f=1.0)
    _refused(_model([node], [_vi("x", [2])], [_vi("y", None)]), "'s'", "attribute 'axis' must be INT, got FLOAT")
    empty = _model([helper.make_node("Gather", ["x", ""], ["y"], name="g")], [_vi("x", [2])], [_vi("y", None)])
    _refused(empty, "'g'", "input 1 (indices) is required")


def test_initializer_whose_data_does_not_fit_its_dims_is_refused():
    w = numpy_helper.from_array(np.ones((2, 3), np.float32), "w")
    w.dims[:] = [4, 4]
    m = _model([helper.make_node("Add", ["x", "w"], ["y"])], [_vi("x", [2, 3])], [_vi("y", None)], [w])
    _refused(m, "initializer 'w'", "does not fit its dims [4, 4]")
    m.graph.initializer[0].dims[:] = [2, -3]
    _refused(m, "initializer 'w'", "dim 1 (-3) is negative")
    m.graph.initializer[0].dims[:] = [2 ** 40, 2 ** 40]
    _refused(m, "initializer 'w'", "too large")


def test_sparse_initializer_with_out_of_range_indices_is_refused():
    def sparse(indices, dims=(2, 3)):
        values = numpy_helper.from_array(np.ones(2, np.float32), "s")
        return helper.make_sparse_tensor(values, numpy_helper.from_array(np.array(indices, np.int64), "i"), dims)

    def model(sp):
        return _model([helper.make_node("Add", ["x", "s"], ["y"])], [_vi("x", [2, 3])], [_vi("y", None)], sparse=[sp])

    _refused(model(sparse([0, 100])), "sparse initializer 's'", "sparse index [100]", "out of range")
    _refused(model(sparse([[0, 1], [1, 3]])), "sparse initializer 's'", "sparse index [1, 3]")
    _refused(model(sparse([-1, 2])), "sparse index [-1]")
    _refused(model(sparse([0, 1, 2])), "sparse initializer 's'", "indices of shape")
    g = leptonc.import_onnx(model(sparse([[0, 1], [1, 2]])))
    np.testing.assert_array_equal(g.constants["s"], [[0, 1, 0], [0, 0, 1]])


def test_expand_to_a_huge_constant_shape_is_refused():
    shape = numpy_helper.from_array(np.array([2 ** 40, 2 ** 40], np.int64), "shape")
    m = _model([helper.make_node("Expand", ["x", "shape"], ["y"], name="e")], [_vi("x", [1, 1])],
               [_vi("y", None)], [shape])
    _refused(m, "'e'", "too large")


# -- dynamic dims that the graph pins ----------------------------------------------------------------
def test_dynamic_batch_on_an_export_with_a_constant_reshape_is_refused():
    torch = pytest.importorskip("torch")

    class Flat(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(8, 4)

        def forward(self, x):
            return self.fc(x.reshape(1, 8))  # the export fixes the batch

    f = io.BytesIO()
    torch.onnx.export(Flat().eval(), (torch.randn(1, 2, 4),), f, input_names=["x"], dynamo=False)
    data = f.getvalue()
    _refused(data, "Reshape", "pins the dynamic dim batch to 1", input_shapes={"x": ["batch", 2, 4]})
    with pytest.raises(LeptoncError, match="pins the dynamic dim batch to 1"):
        leptonc.compile(data, target="cpu", dynamic_shapes=["batch"], cache=False, quiet=True)
    g = leptonc.import_onnx(data)  # the fixed batch the export has still imports and runs
    x = np.random.default_rng(0).standard_normal((1, 2, 4)).astype(np.float32)
    assert leptonc.run_reference(g, x)[0].shape == (1, 4)


def test_constant_shape_expand_that_pins_the_batch_is_refused():
    shape = numpy_helper.from_array(np.array([2, 8], np.int64), "shape")
    m = _model([helper.make_node("Expand", ["x", "shape"], ["y"], name="/Expand")], [_vi("x", ["batch", 8])],
               [_vi("y", None)], [shape])
    _refused(m, "'/Expand'", "cannot broadcast f32[batch, 8] to [2, 8]", "pins the dynamic dim batch to 2")
    ones = numpy_helper.from_array(np.array([1, 8], np.int64), "shape")  # broadcasting against 1 pins nothing
    m = _model([helper.make_node("Expand", ["x", "shape"], ["y"])], [_vi("x", ["batch", 8])], [_vi("y", None)],
               [ones])
    g = leptonc.import_onnx(m)
    assert leptonc.run_reference(g, np.ones((3, 8), np.float32))[0].shape == (3, 8)


def test_matmul_of_two_differently_named_dims_is_refused():
    m = _model([helper.make_node("MatMul", ["a", "b"], ["y"], name="mm")], [_vi("a", ["B", "K"]), _vi("b", ["N", 4])],
               [_vi("y", None)])
    _refused(m, "'mm'", "it needs K = N")
