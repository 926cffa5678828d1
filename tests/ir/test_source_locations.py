"""Source names carried through: the frontends record each node's source (torch module path, ONNX node or the
module path torch.onnx.export recorded), the IR text prints and parses it, passes keep it, and the quantize
report, cpu kernel headers and verifier errors name it."""
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import leptonc
from leptonc import cli
from leptonc.codegen.cpu import TARGET_PIPELINE
from leptonc.codegen.cpu.program import generate
from leptonc.ir import DType, Graph, TensorType, VerifyError, parse_ir, print_ir, verify
from leptonc.passes import run_pipeline
from leptonc.passes.sparse_layers import layer_table


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.query = torch.nn.Linear(16, 16)
        self.act = torch.nn.GELU()

    def forward(self, x):
        return self.act(self.query(x))


class Encoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.ModuleList([Block(), Block()])
        self.head = torch.nn.Linear(16, 4)

    def forward(self, x):
        for block in self.layer:
            x = block(x)
        return self.head(x) * 2.0


def _torch_graph() -> Graph:
    torch.manual_seed(0)
    return leptonc.import_torch(Encoder().eval(), (torch.randn(3, 16),))


def _sources(g: Graph) -> dict[str, str | None]:
    return {n.outputs[0].name: n.loc for n in g.nodes if n.op != "const"}


def test_torch_nodes_carry_their_module_path_through_print_and_parse():
    g = _torch_graph()
    matmuls = [n.loc for n in g.nodes if n.op == "matmul"]
    assert matmuls == ["layer.0.query", "layer.1.query", "head"]
    assert {n.loc for n in g.nodes if n.op not in ("const", "mul")} >= {"layer.0.act", "layer.1.act"}
    assert [n for n in g.nodes if n.op == "mul"][-1].loc is None  # `* 2.0`: the top module's own code
    text = print_ir(g)
    assert 'loc("layer.0.query")' in text
    again = parse_ir(text, g.constants)
    assert _sources(again) == _sources(g) and print_ir(again) == text


def _onnx_model(scopes: str | None) -> bytes:
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32), "W")
    mm = helper.make_node("MatMul", ["x", "W"], ["h"], name="node_MatMul_3")
    if scopes is not None:
        mm.metadata_props.add(key="pkg.torch.onnx.name_scopes", value=scopes)
    relu = helper.make_node("Relu", ["h"], ["y"], name="node_Relu_4")
    graph = helper.make_graph([mm, relu], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 4])], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_onnx_nodes_carry_their_name_or_the_module_path_the_exporter_recorded():
    g = leptonc.import_onnx(_onnx_model(None))
    assert [(n.op, n.loc) for n in g.nodes if n.op != "const"] == [("matmul", "node_MatMul_3"),
                                                                  ("relu", "node_Relu_4")]
    g = leptonc.import_onnx(_onnx_model("['', 'encoder', 'encoder.layer.0.attention.query', 'linear']"))
    assert [n.loc for n in g.nodes if n.op != "const"] == ["encoder.layer.0.attention.query", "node_Relu_4"]
    again = parse_ir(print_ir(g), g.constants)
    assert _sources(again) == _sources(g)
    # a malformed record falls back to the node's name
    g = leptonc.import_onnx(_onnx_model("['', unbalanced"))
    assert [n.loc for n in g.nodes if n.op == "matmul"] == ["node_MatMul_3"]


def test_the_default_pipeline_and_its_rewrites_keep_sources():
    g = _torch_graph()
    lowered = run_pipeline(g, "default," + TARGET_PIPELINE)
    assert [n.loc for n in lowered.nodes if n.op == "matmul"] == ["layer.0.query", "layer.1.query", "head"]
    # every op made from a located node is located (the gelu's expansion, the fused and reshaped ops)
    assert all(n.loc for n in lowered.nodes if n.op != "const" and n.op != "mul")


def test_the_quantize_report_names_module_paths():
    lowered = run_pipeline(_torch_graph(), "default,quantize")
    rows = layer_table(lowered)
    assert [r["name"] for r in rows] == ["layer.0.query", "layer.1.query", "head"]
    assert all(r["format"] == "dense i8" for r in rows)
    assert "layer.0.query.q8" in lowered.constants and "layer.0.query.scale" in lowered.constants
    # skip= names a layer by its source too
    kept = run_pipeline(_torch_graph(), "default,quantize,prune{sparsity=0.5,skip=layer.1.query,kernels=dense}")
    assert [r["sparsity"] > 0.4 for r in layer_table(kept)] == [True, False, True]


def test_cpu_kernel_headers_name_their_source_layers():
    program = generate(run_pipeline(_torch_graph(), "default," + TARGET_PIPELINE))
    headers = [s.split("*/")[0] for s in program.source.split("/* ")[1:] if "kernel; fused IR ops" in s]
    assert any("\n * from layer.0.query" in h for h in headers), headers
    assert any("\n * from head" in h for h in headers)


def test_a_source_cannot_end_the_kernel_comment():
    """Sources come from model files and artifacts' IR: none ends the comment that quotes it."""
    text = """graph @g(%x: f32[2, 3]) -> (f32[2, 3]) {
  %y = relu(%x) : f32[2, 3] loc("evil */ int injected; /*\\nline\\"")
  return %y
}
"""
    g = parse_ir(text)
    assert g.nodes[0].loc == "evil _/ int injected_ /__line_"
    source = generate(run_pipeline(g, "default," + TARGET_PIPELINE)).source
    header = source[source.index("fused IR ops"):]
    assert " * from evil _/ int injected_ /__line_\n */" in header and "injected" not in header[header.index("*/"):]
    assert print_ir(parse_ir(print_ir(g))) == print_ir(g)


def test_verifier_errors_name_the_source():
    g = Graph("g")
    x = g.add_input("x", TensorType(DType.f32, (2, 3)))
    y = g.add("relu", x, loc="encoder.layer.0.act")
    y.type = TensorType(DType.f32, (2, 4))  # a result type that disagrees with inference
    g.set_outputs([y])
    with pytest.raises(VerifyError, match=r"'%relu = relu' \(from encoder.layer.0.act\)"):
        verify(g)


def test_leptonc_ir_prints_ops_first(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    path.write_bytes(_onnx_model("['', 'encoder', 'encoder.fc', 'linear']"))
    assert cli.main(["ir", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == '  %h = matmul(%x, %W) : f32[B, 4] loc("encoder.fc")'
    assert lines[5:] == ["constants {  # 1 constant, 128 bytes", "  %W = const @W : f32[8, 4]", "}"]
    assert cli.main(["ir", str(path), "--constants", "-o", str(tmp_path / "m.lir")]) == 0
    g = parse_ir((tmp_path / "m.lir").read_text())  # complete on its own
    np.testing.assert_array_equal(g.constants["W"], onnx.numpy_helper.to_array(onnx.load(path).graph.initializer[0]))


def test_torch_import_errors_name_the_module():
    class Bessel(torch.nn.Module):
        def forward(self, x):
            return torch.special.bessel_j0(x)

    class Outer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = torch.nn.Sequential(torch.nn.ReLU(), Bessel())

        def forward(self, x):
            return self.encoder(x)

    with pytest.raises(leptonc.LeptoncError, match=r"\(node 'special_bessel_j0', in encoder.1, at "
                                                   r"\S*test_source_locations.py:\d+\)"):
        leptonc.import_torch(Outer(), (torch.randn(3),))


def test_cse_merges_nodes_that_differ_only_in_source():
    g = Graph("g")
    x = g.add_input("x", TensorType(DType.f32, (4,)))
    g.set_outputs([g.add("exp", x, loc="a"), g.add("exp", x, loc="b")])
    merged = run_pipeline(g, "cse")
    assert [(n.op, n.loc) for n in merged.nodes] == [("exp", "a")] and merged.outputs[0] is merged.outputs[1]
    assert merged.copy().nodes[0].loc == "a"
