"""The ONNX importer's behaviour on small hand-built models: constants, symbols, import-time shape
folding, dynamic ops for run-time shapes, old opsets, and its errors."""
from __future__ import annotations

import numpy as np
import pytest

import leptonc
from leptonc.frontends.onnx import SUPPORTED_OPS
from leptonc.ir.errors import LeptoncError, UnsupportedOpError

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _model(nodes, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph(nodes, "m", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _ops(g):
    return [n.op for n in g.nodes if n.op != "const"]


def test_initializers_become_named_constants():
    w = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "fc.weight")
    m = _model([helper.make_node("MatMul", ["x", "fc.weight"], ["y"])],
               [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 2])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 3])], [w])
    g = leptonc.import_onnx(m)
    assert "fc.weight" in g.constants
    text = leptonc.print_ir(g)
    assert "%x: f32[B, 2]" in text and "const @fc.weight" in text and "matmul" in text
    x = np.ones((4, 2), np.float32)
    np.testing.assert_array_equal(leptonc.run_reference(g, x)[0], x @ np.arange(6, dtype=np.float32).reshape(2, 3))


def test_shape_arithmetic_folds_to_a_static_symbolic_reshape():
    # Shape -> Gather(0) -> Unsqueeze -> Concat([-1 batch, 12]) -> Reshape, as exporters write it
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "zero_axes"], ["n1"]),
        helper.make_node("Concat", ["n1", "twelve"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    inits = [numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array([0], np.int64), "zero_axes"),
             numpy_helper.from_array(np.array([12], np.int64), "twelve")]
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch size", 3, 4])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    g = leptonc.import_onnx(m)
    assert _ops(g) == ["reshape"]
    assert g.nodes[-1].attrs["shape"] == ("batch_size", 12)
    assert str(g.outputs[0].type) == "f32[batch_size, 12]"
    for n in (1, 5):
        x = np.random.rand(n, 3, 4).astype(np.float32)
        np.testing.assert_array_equal(leptonc.run_reference(g, x)[0], x.reshape(n, 12))


def test_runtime_shape_operand_becomes_a_dynamic_op():
    m = _model([helper.make_node("Reshape", ["x", "shape"], ["y"])],
               [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4]),
                helper.make_tensor_value_info("shape", TensorProto.INT64, [2])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    g = leptonc.import_onnx(m)
    assert _ops(g) == ["reshape_dynamic"]
    assert str(g.outputs[0].type) == "f32[?, ?]"
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    (y,) = leptonc.run_reference(g, x, np.array([4, -1], np.int64))
    np.testing.assert_array_equal(y, x.reshape(4, 6))
    assert leptonc.print_ir(leptonc.parse_ir(leptonc.print_ir(g), g.constants)) == leptonc.print_ir(g)


def test_dim_params_become_symbols_and_missing_dims_unknown():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", None, "seq-len"])
    m = _model([helper.make_node("Relu", ["x"], ["y"])], [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    g = leptonc.import_onnx(m)
    assert str(g.inputs[0].type) == "f32[N, ?, seq_len]"


def test_old_opset_is_converted_to_13():
    # Softmax-9 flattens the input to 2-D at `axis` (default 1): not the same as a softmax over one axis
    m = _model([helper.make_node("Softmax", ["x"], ["y"])],
               [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 4])], opset=9)
    g = leptonc.import_onnx(m)
    x = np.random.rand(2, 3, 4).astype(np.float32)
    flat = x.reshape(2, 12)
    want = (np.exp(flat) / np.exp(flat).sum(axis=1, keepdims=True)).reshape(2, 3, 4)
    np.testing.assert_allclose(leptonc.run_reference(g, x)[0], want, rtol=1e-5)


def test_model_bytes_and_path(tmp_path):
    m = _model([helper.make_node("Neg", ["x"], ["y"])], [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])])
    path = tmp_path / "neg.onnx"
    path.write_bytes(m.SerializeToString())
    for src in (m.SerializeToString(), str(path), path):
        g = leptonc.import_onnx(src)
        np.testing.assert_array_equal(leptonc.run_reference(g, np.ones(3, np.float32))[0], -np.ones(3, np.float32))


def _clean_error(exc_info):
    e = exc_info.value
    assert e.__cause__ is None and (e.__context__ is None or e.__suppress_context__), "no protobuf traceback"
    assert "\n" not in str(e)
    return str(e)


def test_missing_file(tmp_path):
    with pytest.raises(LeptoncError) as info:
        leptonc.import_onnx(str(tmp_path / "nope.onnx"))
    assert "does not exist" in _clean_error(info)


@pytest.mark.parametrize("kind", ["truncated", "random", "empty", "text"])
def test_not_a_model(tmp_path, kind):
    m = _model([helper.make_node("Neg", ["x"], ["y"])], [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])])
    data = m.SerializeToString()
    content = {"truncated": data[: len(data) // 2], "random": np.random.default_rng(0).bytes(300), "empty": b"",
               "text": b"graph @main() -> () {\n}\n"}[kind]
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(LeptoncError) as info:
        leptonc.import_onnx(str(path))
    msg = _clean_error(info)
    assert "bad.onnx" in msg and "not a valid ONNX model" in msg


def test_unsupported_op_names_op_node_file_and_list(tmp_path):
    m = _model([helper.make_node("Neg", ["x"], ["t"]), helper.make_node("FrobnicateXYZ", ["t"], ["y"], name="frob_1")],
               [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])])
    path = tmp_path / "custom.onnx"
    path.write_bytes(m.SerializeToString())
    with pytest.raises(UnsupportedOpError) as info:
        leptonc.import_onnx(str(path))
    msg = _clean_error(info)
    for part in ("FrobnicateXYZ", "frob_1", "custom.onnx", "leptonc.frontends.onnx.SUPPORTED_OPS"):
        assert part in msg, msg
    assert "FrobnicateXYZ" not in SUPPORTED_OPS and {"Conv", "Resize", "LayerNormalization", "Attention"} <= SUPPORTED_OPS


def test_cli_reports_a_bad_model_in_one_line(tmp_path, capsys):
    from leptonc.cli import main

    path = tmp_path / "bad.onnx"
    path.write_bytes(b"\x08\x07garbage")
    assert main(["ir", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("leptonc: error:") and "\n" not in err and "bad.onnx" in err


def test_if_with_a_known_condition_inlines_its_branch():
    then = helper.make_graph([helper.make_node("Neg", ["x"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", TensorProto.FLOAT, [3])])
    other = helper.make_graph([helper.make_node("Abs", ["x"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", TensorProto.FLOAT, [3])])
    nodes = [helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.array(True))),
             helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)]
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])])
    g = leptonc.import_onnx(m)
    assert _ops(g) == ["neg"]


def test_symbolic_slice_and_expand_keep_their_sizes():
    # position ids as the TorchScript exporter writes them: pos[:, :S] expanded to x's shape through
    # Where(Equal(shape, -1), 1, shape)
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "one"], ["seq"], axis=0),
        helper.make_node("Unsqueeze", ["seq", "zero_1d"], ["seq1"]),
        helper.make_node("Slice", ["pos", "zero_1d", "seq1", "one_1d"], ["ids"]),
        helper.make_node("Equal", ["s", "minus_one"], ["is_neg"]),
        helper.make_node("Where", ["is_neg", "ones", "s"], ["target"]),
        helper.make_node("Expand", ["ids", "target"], ["y"]),
    ]
    inits = [numpy_helper.from_array(np.array(1, np.int64), "one"),
             numpy_helper.from_array(np.array([0], np.int64), "zero_1d"),
             numpy_helper.from_array(np.array([1], np.int64), "one_1d"),
             numpy_helper.from_array(np.array([-1, -1], np.int64), "minus_one"),
             numpy_helper.from_array(np.array([1, 1], np.int64), "ones"),
             numpy_helper.from_array(np.arange(64, dtype=np.int64).reshape(1, 64), "pos")]
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.INT64, ["B", "S"])],
               [helper.make_tensor_value_info("y", TensorProto.INT64, None)], inits)
    g = leptonc.import_onnx(m)
    assert str(g.outputs[0].type) == "i64[B, S]"
    assert "broadcast_to" in _ops(g) and "expand_dynamic" not in _ops(g)
    (y,) = leptonc.run_reference(g, np.zeros((3, 5), np.int64))
    np.testing.assert_array_equal(y, np.broadcast_to(np.arange(5), (3, 5)))


def test_model_local_function_is_expanded():
    # out = a * scale + b, where scale is the calling node's attribute (an attribute reference)
    k = helper.make_node("Constant", [], ["k"])
    ref = onnx.AttributeProto()
    ref.name, ref.ref_attr_name, ref.type = "value_float", "scale", onnx.AttributeProto.FLOAT
    k.attribute.append(ref)
    body = [k, helper.make_node("Mul", ["a", "k"], ["t"]), helper.make_node("Add", ["t", "b"], ["out"])]
    fn = helper.make_function("custom", "ScaleAdd", ["a", "b"], ["out"], body, [helper.make_opsetid("", 17)],
                              attributes=["scale"])
    graph = helper.make_graph([helper.make_node("ScaleAdd", ["x", "y"], ["z"], domain="custom", scale=3.0)], "m",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2]) for n in ("x", "y")],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])])
    m = helper.make_model(graph, functions=[fn], opset_imports=[helper.make_opsetid("", 17),
                                                                  helper.make_opsetid("custom", 1)])
    g = leptonc.import_onnx(m)
    x, y = np.array([1, 2], np.float32), np.array([10, 20], np.float32)
    np.testing.assert_array_equal(leptonc.run_reference(g, x, y)[0], 3 * x + y)


def test_external_data_is_loaded_from_the_model_folder(tmp_path):
    w = numpy_helper.from_array(np.arange(1024, dtype=np.float32), "w")
    m = _model([helper.make_node("Add", ["x", "w"], ["y"])],
               [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1024])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1024])], [w])
    path = tmp_path / "ext.onnx"
    onnx.save_model(m, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="ext.data",
                    size_threshold=0)
    assert (tmp_path / "ext.data").exists()
    g = leptonc.import_onnx(str(path))
    x = np.ones(1024, np.float32)
    np.testing.assert_array_equal(leptonc.run_reference(g, x)[0], x + np.arange(1024, dtype=np.float32))


def test_symbolic_spatial_dims_through_conv_and_resize():
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Shape", ["c"], ["s"]),
             helper.make_node("Mul", ["s", "two"], ["s2"]),
             helper.make_node("Resize", ["c", "", "", "s2"], ["y"], mode="nearest")]
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "H", "W"])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
               [w, numpy_helper.from_array(np.array([1, 1, 2, 2], np.int64), "two")])
    g = leptonc.import_onnx(m)
    assert str(g.outputs[0].type) == "f32[1, 4, 2*H, 2*W]"
    assert _ops(g) == ["conv", "resize"]
    (y,) = leptonc.run_reference(g, np.ones((1, 3, 5, 6), np.float32))
    assert y.shape == (1, 4, 10, 12)
