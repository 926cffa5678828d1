"""bisect and --check-reference-each on a pass that is really broken (a plugin pass registered here) and on a
kernel whose generated code is really wrong (a codegen expression patched here)."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import leptonc
from leptonc.cli import main
from leptonc.ir import parse_ir
from leptonc.passes import PassManager, ReferenceMismatch, register_pass, run_pipeline

MODEL = """
graph @model(%x: f32[B, 4]) -> (f32[B, 3], f32[3, B]) {
  %w = const @w [0.5, -1.0, 0.25, 1.0, 0.5, -0.5, 0.75, -0.25, 1.5, -1.5, 0.125, 2.0] : f32[4, 3]
  %b = const @b [0.1, 0.2, 0.3] : f32[3]
  %m = matmul(%x, %w) : f32[B, 3]
  %a = add(%m, %b) : f32[B, 3]
  %d = sub(%a, %b) : f32[B, 3]
  %t = transpose(%a) {perm = [1, 0]} : f32[3, B]
  %e = exp(%t) : f32[3, B]
  return %d, %e
}
"""
X = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)


@register_pass("test-sub-to-add", "turns every sub into an add: a broken pass")
def sub_to_add(graph):
    changed = False
    for node in list(graph.nodes):
        if node.op == "sub":
            graph.replace_all_uses(node.output, graph.add("add", *node.inputs, before=node))
            graph.erase(node)
            changed = True
    return changed


def test_bisect_names_the_broken_pass_and_a_reproducer_that_shows_it(tmp_path, capsys):
    result = leptonc.bisect(parse_ir(MODEL), [X], passes="test-sub-to-add", target="cpu")
    assert (result.culprit, result.name) == ("pass", "test-sub-to-add")
    assert result.detail.startswith("output 0 (")  # the first diverging value: its output, index and values
    repro = parse_ir(result.reproducer)
    assert [v.name for v in repro.outputs] == ["d"]  # only the diverging output, cut above the broken op:
    assert [n.op for n in repro.nodes if n.op != "const"] == ["sub"] and len(repro.inputs) == 1
    assert "exp" not in result.reproducer
    path = tmp_path / "repro.lir"
    path.write_text(result.reproducer)
    assert main(["ir", str(path), "--passes", "test-sub-to-add", "--check-reference-each"]) == 2
    assert "pass 'test-sub-to-add' moved the outputs beyond its tolerance" in capsys.readouterr().err


def test_check_reference_each_stops_at_the_first_bad_pass_inside_a_pipeline():
    with pytest.raises(ReferenceMismatch) as e:
        PassManager("default,test-sub-to-add,dce", check_reference_each=[X]).run(parse_ir(MODEL))
    assert str(e.value.entry) == "test-sub-to-add"
    assert "output 0 (%" in str(e.value) and "expected" in str(e.value)


def test_check_reference_each_holds_lossy_passes_to_their_declared_tolerance():
    g = parse_ir(MODEL)
    run_pipeline(g, "default,mixed-precision,quantize,fuse", check_reference_each=[X])  # within their bounds


def test_bisect_names_the_kernel_whose_code_is_wrong(monkeypatch):
    import leptonc.codegen.cpu.loops as loops

    right = loops.elementwise_expr

    def wrong_exp(op, *args, **kwargs):
        code = right(op, *args, **kwargs)
        return f"({code} + 1.0f)" if op == "exp" else code

    monkeypatch.setattr(loops, "elementwise_expr", wrong_exp)
    bisect_module = sys.modules["leptonc.bisect"]  # (leptonc.bisect is the function)
    compiled = []
    real = bisect_module._compile
    monkeypatch.setattr(bisect_module, "_compile", lambda g, *a: compiled.append(g.name) or real(g, *a))
    result = leptonc.bisect(parse_ir(MODEL), [X], target="cpu")
    assert result.culprit == "kernel" and "exp" in result.name
    assert compiled == ["model", "kernels"]  # the whole model, then every kernel side by side in one compile
    kernel = parse_ir(result.reproducer)
    assert [n.op for n in kernel.nodes] == ["exp"]  # the kernel alone, its operand an input


def test_bisect_cli_reports_no_divergence(tmp_path, capsys):
    path = tmp_path / "m.lir"
    path.write_text(MODEL)
    assert main(["bisect", str(path)]) == 0
    assert capsys.readouterr().out.startswith("no divergence")
    repro = tmp_path / "repro.lir"
    assert main(["bisect", str(path), "--passes", "test-sub-to-add", "-o", str(repro)]) == 1
    assert "first diverging pass: test-sub-to-add" in capsys.readouterr().out
    assert [n.op for n in parse_ir(repro.read_text()).nodes if n.op != "const"] == ["sub"]


def test_a_target_is_held_to_a_few_ulps_of_the_narrowest_float_it_computes_in():
    from leptonc.bisect import target_tolerance
    from leptonc.passes.instruments import EXACT

    assert target_tolerance(parse_ir(MODEL)) == EXACT
    bf16 = parse_ir("graph @g(%x: f32[4]) -> (f32[4]) {\n  %a = cast(%x) {dtype = bf16} : bf16[4]\n"
                    "  %b = cast(%a) {dtype = f32} : f32[4]\n  return %b\n}\n")
    assert target_tolerance(bf16).max_rel_error == 4 * 2.0**-7


def test_bisect_names_a_broken_pass_of_an_installed_plugin(tmp_path):
    """The plugin under tests/passes/plugin/leptonc_wrong_plugin, installed with its entry point as pip would
    leave it, in a fresh leptonc process."""
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).parents[1]
    info = tmp_path / "leptonc_wrong_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: leptonc-wrong-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[leptonc.passes]\nwrong = leptonc_wrong_plugin\n")
    case = tmp_path / "case.lir"
    case.write_text("graph @g(%x: f32[2, 4]) -> (f32[2, 4]) {\n  %a = relu(%x) : f32[2, 4]\n"
                    "  %b = relu(%a) : f32[2, 4]\n  %c = exp(%b) : f32[2, 4]\n  return %c\n}\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(root / "tests/passes/plugin"), str(root)]))
    done = subprocess.run([sys.executable, "-m", "leptonc.cli", "bisect", str(case), "--passes", "wrong-relu-relu"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith("first diverging pass: wrong-relu-relu\noutput 0 (%c)")
    repro = done.stdout.split("--check-reference-each`:\n")[1]  # the IR before the pass, cut to what diverges:
    assert "%b = relu(%a)" in repro and "exp" not in repro
