"""The accuracy check of a lossy compile: its fp32 reference (compiled, in a thread, or the reference
interpreter), its sample count (compile(accuracy=), --accuracy-samples) and its progress count."""
from pathlib import Path

import numpy as np
import pytest

import leptonc
from leptonc.api import Progress
from leptonc.cache import artifact_key
from leptonc.cli import main
from leptonc.ir.errors import LeptoncError
from leptonc.passes.tolerance import tolerance_of
from leptonc.runtime.accuracy import (HEAD_SAMPLES, INTERPRETER_SAMPLES, Reference, measure_accuracy, sample_inputs,
                                      start_reference)
from leptonc.runtime.reference import run_reference

# a classification head: 16 features -> 10 classes (top-1 agreement, HEAD_SAMPLES samples by default)
GRAPH = """graph @g(%x: f32[3, 16]) -> (f32[3, 10]) {
  %w = const @w : f32[16, 10]
  %b = const @b : f32[10]
  %m = matmul(%x, %w) : f32[3, 10]
  %y = add(%m, %b) : f32[3, 10]
  return %y
}
"""
INT8 = "quantize{weights=int8}"


def head_graph():
    rng = np.random.default_rng(0)
    return leptonc.parse_ir(GRAPH, constants={"w": rng.standard_normal((16, 10)).astype(np.float32),
                                              "b": rng.standard_normal(10).astype(np.float32)})


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LEPTONC_CACHE_DIR", str(tmp_path / "cache"))


def test_the_compiled_fp32_reference_reports_what_the_interpreter_does():
    """The report against the fp32 graph compiled (the default) matches the one against the reference
    interpreter, on the same samples: the compiled fp32 model computes the graph to float rounding."""
    graph = head_graph()
    x = np.ones((3, 16), np.float32)
    cm = leptonc.compile(graph, x, passes=INT8)
    report = cm.manifest["accuracy"]
    assert report["samples"] == HEAD_SAMPLES and report["reference"] == "compiled" and report["within_tolerance"]
    assert "the fp32 graph compiled for the cpu target" in leptonc.runtime.accuracy.format_accuracy(report)
    by_interpreter = measure_accuracy(graph, cm, tolerance_of(INT8), x, samples=HEAD_SAMPLES)
    assert by_interpreter["reference"] == "reference interpreter"
    for a, b in zip(report["outputs"], by_interpreter["outputs"]):
        assert a["name"] == b["name"]
        assert a["max_abs_error"] == pytest.approx(b["max_abs_error"], rel=1e-3)
        assert a["sqnr_db"] == pytest.approx(b["sqnr_db"], abs=0.01)
        assert a["top1_agreement"] == b["top1_agreement"]


def test_accuracy_sets_or_skips_the_sample_count():
    graph, x = head_graph(), np.ones((3, 16), np.float32)
    assert leptonc.compile(graph, x, passes=INT8, accuracy=5).manifest["accuracy"]["samples"] == 5
    for off in (False, 0):
        assert "accuracy" not in leptonc.compile(graph, x, passes=INT8, accuracy=off).manifest
    for bad in (-1, 2.5, "many"):
        with pytest.raises(LeptoncError, match="accuracy="):
            leptonc.compile(graph, x, passes=INT8, accuracy=bad)


def test_no_reference_without_a_lossy_pass_or_with_the_check_off():
    graph = head_graph()
    assert start_reference(graph, None) is None
    assert start_reference(graph, tolerance_of("cse,dce")) is None
    assert start_reference(graph, tolerance_of(INT8), accuracy=0) is None


def test_the_interpreter_reference_bounds_the_default_count_but_not_a_given_one():
    graph = head_graph()
    assert len(start_reference(graph, tolerance_of(INT8)).inputs) == INTERPRETER_SAMPLES
    assert len(start_reference(graph, tolerance_of(INT8), accuracy=40).inputs) == 40


@pytest.mark.parametrize("keep_bytes", [256 << 20, 1])
def test_the_reference_runs_its_samples_ahead_and_hands_each_out_once(monkeypatch, keep_bytes):
    """Outputs computed in the thread are those of the fp32 graph on the sample inputs, handed out in order;
    with no room to keep outputs ahead (KEEP_BYTES), the thread waits for each to be handed out."""
    monkeypatch.setattr(leptonc.runtime.accuracy, "KEEP_BYTES", keep_bytes)
    graph = head_graph()
    inputs = sample_inputs(graph, 6)
    built = []

    def build(g):
        built.append(g)
        return lambda *xs: run_reference(g, *xs)

    fp32 = Reference(graph, inputs, build).start()
    for i, x in enumerate(inputs):
        np.testing.assert_allclose(fp32.outputs(i)[0], run_reference(graph, *x)[0], rtol=1e-6)
    assert len(built) == 1 and fp32.kind == "compiled"


def test_the_check_runs_the_lossy_model_on_one_thread_and_gives_its_threads_back():
    graph = head_graph()
    x = np.ones((3, 16), np.float32)
    cm = leptonc.compile(graph, x, passes=INT8)
    threads = cm.executor.threads
    seen = []

    def run(*xs):
        seen.append(cm.executor.threads)
        return cm(*xs)

    run.executor = cm.executor
    report = measure_accuracy(graph, run, tolerance_of(INT8), x, samples=4)
    assert report["samples"] == 4 and seen == [1] * 4 and cm.executor.threads == threads


def test_a_failed_reference_build_is_raised_where_the_outputs_are_asked_for():
    def build(g):
        raise LeptoncError("no compiler today")

    fp32 = Reference(head_graph(), sample_inputs(head_graph(), 2), build).start()
    with pytest.raises(LeptoncError, match="no compiler today"):
        fp32.outputs(0)


def test_progress_counts_the_samples(capsys):
    progress = Progress(delay=0.0)
    for i in range(1000):
        progress.count("measuring", i, 1000)
    progress.count("measuring", 1000, 1000)
    lines = capsys.readouterr().err.splitlines()
    assert "measuring: 0/1000" in lines[0] and "measuring: 1000/1000" in lines[-1]
    assert len(lines) < 10  # (at most one line a second between the first and the last)
    Progress(quiet=True).count("measuring", 1, 1)
    assert capsys.readouterr().err == ""


def test_the_compile_cache_key_holds_the_sample_count(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"not parsed for the key")
    keys = {artifact_key(path, target="cpu", passes=INT8, dynamic_shapes=None, example_inputs=None, accuracy=a)
            for a in (True, 5, 0)}
    assert len(keys) == 3
    assert artifact_key(path, target="cpu", passes=INT8, dynamic_shapes=None, example_inputs=None,
                        accuracy=False) in keys


def test_cli_accuracy_samples(tmp_path, capsys):
    model = f"{Path(__file__).resolve().parents[2] / 'examples' / 'mlp.py'}:build"
    out = tmp_path / "m.lep"
    assert main(["compile", model, "-o", str(out), "--passes", INT8, "--quiet", "--report",
                 "--accuracy-samples", "7"]) == 0
    assert "accuracy against the fp32 graph (7 random inputs" in capsys.readouterr().out
    assert leptonc.load(out).manifest["accuracy"]["samples"] == 7
    assert main(["compile", model, "-o", str(out), "--passes", INT8, "--quiet", "--report",
                 "--accuracy-samples", "0"]) == 0
    assert "--accuracy-samples 0 skipped the check" in capsys.readouterr().out
    assert "accuracy" not in leptonc.load(out).manifest
    with pytest.raises(SystemExit) as e:
        main(["compile", model, "-o", str(out), "--passes", INT8, "--accuracy-samples", "-3"])
    assert e.value.code == 2 and "not a count" in capsys.readouterr().err
