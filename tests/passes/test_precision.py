"""Every precision pass on the model zoo's small models stays within the tolerance it declares.

The lowered graph runs through the reference interpreter (kernels are tested
in tests/codegen/test_quantized.py), against the fp32 graph on random inputs
shaped like the examples; models with a classification head are also checked
for top-1 agreement.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from leptonc.api import import_graph
from leptonc.ir import DType, Graph, TensorType
from leptonc.passes import PassError, run_pipeline
from leptonc.passes.tolerance import tolerance_of
from leptonc.runtime.accuracy import HEAD_SAMPLES, format_accuracy, head_outputs, measure_accuracy, within
from leptonc.runtime.reference import run_reference
from tests.model_zoo import build

PRECISION_PASSES = ["quantize{weights=int8,per=channel}", "quantize{weights=int4,group=32}",
                    "quantize{weights=int4,group=64}", "quantize{weights=int4,group=128}",
                    "quantize{weights=int4,per=channel}",
                    "quantize{weights=int8,activations=int8-dynamic}",
                    "mixed-precision{dtype=bf16}", "mixed-precision{dtype=f16}"]
MODELS = ["mlp", "bert_small", "gpt2_small", "vit_small", "cnn"]

_graphs: dict[str, tuple] = {}


def zoo_graph(name: str) -> tuple[Graph, tuple]:
    if name not in _graphs:
        module, inputs = build(name)
        _graphs[name] = (run_pipeline(import_graph(module, inputs), "default"), inputs)
    return _graphs[name]


@pytest.mark.parametrize("passes", PRECISION_PASSES)
@pytest.mark.parametrize("model", MODELS)
def test_precision_pass_within_declared_tolerance(model, passes):
    graph, inputs = zoo_graph(model)
    lowered = run_pipeline(graph, passes, verify_each=True)
    assert lowered.op_counts() != graph.op_counts(), f"{passes} changed nothing in {model}"
    assert [v.type for v in lowered.outputs] == [v.type for v in graph.outputs]
    report = measure_accuracy(graph, lambda *xs: run_reference(lowered, *xs), tolerance_of(passes), inputs,
                              samples=None if model == "mlp" else 3)
    assert within(report), format_accuracy(report)


def test_head_detection():
    mlp, _ = zoo_graph("mlp")
    gpt2, _ = zoo_graph("gpt2_small")
    assert head_outputs(mlp) == [0]       # linear layer then softmax
    assert head_outputs(gpt2) == []       # hidden states after a layer norm


def test_report_counts_head_samples_inputs_for_a_classifier():
    graph, inputs = zoo_graph("mlp")
    lowered = run_pipeline(graph, "quantize{weights=int4,group=32}")
    report = measure_accuracy(graph, lambda *xs: run_reference(lowered, *xs), tolerance_of("quantize{weights=int4}"),
                              inputs)
    assert report["samples"] == HEAD_SAMPLES
    (out,) = report["outputs"]
    assert 0.6 <= out["top1_agreement"] <= 1.0 and out["sqnr_db"] > 10 and out["max_abs_error"] > 0
    assert "top-1" in format_accuracy(report) and "within the declared tolerance" in format_accuracy(report)


def test_quantize_leaves_activation_matmuls_and_keeps_names():
    g = Graph("attn")
    a = g.add_input("a", TensorType(DType.f32, (2, 8)))
    b = g.add_input("b", TensorType(DType.f32, (8, 4)))
    w = g.add_constant(np.random.default_rng(0).standard_normal((4, 16)).astype(np.float32), "fc.weight")
    h = g.add("matmul", a, b, name="scores")
    y = g.add("matmul", h, w, name="proj")
    g.set_outputs([y])
    q = run_pipeline(g, "quantize")
    assert [n.op for n in q.nodes if "matmul" in n.op] == ["matmul", "matmul_wq"]
    assert q.outputs[0].name == "proj"
    assert q.constants["fc.weight.q8"].shape == (16, 4)  # stored [N, K]


def test_quantize_option_errors_name_the_problem():
    g, _ = zoo_graph("mlp")
    with pytest.raises(PassError, match="activations=int8-dynamic needs weights=int8"):
        run_pipeline(g, "quantize{weights=int4,activations=int8-dynamic}")
    with pytest.raises(PassError, match="is not one of"):
        run_pipeline(g, "quantize{weights=int3}")
    with pytest.raises(PassError, match="is not one of"):
        run_pipeline(g, "mixed-precision{dtype=f8}")


def test_mixed_precision_keeps_softmax_and_norms_in_f32():
    graph, _ = zoo_graph("bert_small")
    low = run_pipeline(graph, "mixed-precision{dtype=bf16}")
    for n in low.nodes:
        if n.op in ("matmul",):
            assert n.output.dtype is DType.bf16
        if n.op.startswith("reduce_") or n.op in ("exp", "sqrt", "rsqrt", "div", "erf", "tanh"):
            assert all(v.dtype is DType.f32 for v in n.inputs + n.outputs if v.dtype.is_float), n.label
    casts = [n for n in low.nodes if n.op == "cast"]
    for c in casts:  # no cast undoes the one before it
        p = c.inputs[0].producer
        assert not (p is not None and p.op == "cast" and p.inputs[0].dtype is c.output.dtype)
    assert all(c.inputs[0].dtype is not c.output.dtype for c in casts)


def test_tolerance_of_pipelines():
    assert tolerance_of("default,cse") is None
    int8, int4 = tolerance_of("quantize"), tolerance_of("quantize{weights=int4}")
    sqnr = [tolerance_of(f"quantize{{weights=int4,{g}}}").min_sqnr_db for g in ("group=32", "group=128", "per=channel")]
    assert sqnr == sorted(sqnr, reverse=True)  # coarser scales promise less
    assert int4.min_sqnr_db < int8.min_sqnr_db
    both = tolerance_of("quantize,mixed-precision")
    assert both.max_rel_error > int8.max_rel_error


@pytest.mark.parametrize("target", ["cpu", "stablehlo"])
def test_compile_report_prints_and_records_the_error(tmp_path, capsys, target):
    """`leptonc compile --report` prints the accuracy table; the manifest keeps it and `inspect` shows it."""
    import leptonc
    from leptonc.cli import main

    out = tmp_path / "m.lep"
    example = Path(__file__).resolve().parents[2] / "examples" / "mlp.py"
    assert main(["compile", f"{example}:build", "-o", str(out), "--target", target, "--quiet", "--report",
                 "--passes", "quantize{weights=int8}"]) == 0
    text = capsys.readouterr().out
    assert f"accuracy against the fp32 graph ({HEAD_SAMPLES} random inputs)" in text
    assert "top-1" in text and "within the declared tolerance" in text
    report = leptonc.load(out).manifest["accuracy"]
    assert report["samples"] == HEAD_SAMPLES and report["within_tolerance"] and report["passes"] == "quantize{weights=int8}"
    assert report["outputs"][0]["top1_agreement"] >= 0.9
    if target == "cpu":
        assert main(["inspect", str(out)]) == 0
        assert "accuracy against the fp32 graph" in capsys.readouterr().out
