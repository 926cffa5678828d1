"""The artifact verbs of the command line: leptonc compile, run, inspect."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from leptonc.codegen.cpu import TARGET_PIPELINE

from .artifact_tools import isolated_home

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

GRAPH = """graph @tiny(%x: f32[B, 4]) -> (f32[B, 4]) {
  %c = const @c [1.0, 2.0, 3.0, 4.0] : f32[4]
  %a = add(%x, %c) : f32[B, 4]
  %m = reduce_max(%a) {axes = [1]} : f32[B, 1]
  %s = sub(%a, %m) : f32[B, 4]
  %e = exp(%s) : f32[B, 4]
  %z = reduce_sum(%e) {axes = [1]} : f32[B, 1]
  %y = div(%e, %z) : f32[B, 4]
  return %y
}
"""


def leptonc(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "leptonc.cli", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT)


@pytest.fixture(scope="module", autouse=True)
def home(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        yield isolated_home(tmp_path_factory, mp)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    (d / "tiny.lir").write_text(GRAPH)
    r = leptonc("compile", str(d / "tiny.lir"), "-o", str(d / "tiny.lep"), "--fusion-report")
    assert r.returncode == 0, r.stderr
    assert "1 kernels" in r.stdout and "softmax" in r.stdout and "wrote" in r.stdout
    return d / "tiny.lep"


def test_run_with_inputs_and_output_dir(artifact, tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "x.npy", x)
    r = leptonc("run", str(artifact), "--input", f"x={tmp_path / 'x.npy'}", "--output-dir", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert "%y: float32[3, 4]" in r.stdout
    y = np.load(tmp_path / "out" / "y.npy")
    e = np.exp(x + [1, 2, 3, 4] - (x + [1, 2, 3, 4]).max(1, keepdims=True))
    np.testing.assert_allclose(y, e / e.sum(1, keepdims=True), rtol=1e-5)


def test_run_with_random_inputs_and_profile(artifact):
    r = leptonc("run", str(artifact), "--profile")
    assert r.returncode == 0, r.stderr
    assert "%y: float32[1, 4]" in r.stdout and "k0_softmax" in r.stdout and "total" in r.stdout


def test_inspect_shows_everything(artifact):
    r = leptonc("inspect", str(artifact))
    assert r.returncode == 0, r.stderr
    for text in ("format version 1", "target cpu", "inputs:  %x: f32[B, 4]", "symbols: B", f"pipeline: default,{TARGET_PIPELINE}",
                 "kernels (1):", "k0_softmax", "%y = div", "unfused producer/consumer pairs (0)", "memory",
                 "model.so:"):
        assert text in r.stdout, text


def test_bad_input_is_one_line(artifact, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 5), np.float32))
    r = leptonc("run", str(artifact), "--input", f"x={tmp_path / 'x.npy'}")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "input 'x' expects f32[B, 4]" in r.stderr
    r = leptonc("run", str(artifact), "--input", f"nope={tmp_path / 'x.npy'}")
    assert r.returncode == 2 and "has no input 'nope'" in r.stderr


def test_tampered_artifact_is_one_line(artifact, tmp_path):
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "bad.lep"
    bad.write_bytes(bytes(data))
    r = leptonc("run", str(bad))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "leptonc: error:" in r.stderr


def test_compile_the_example_with_dynamic_batch(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "mlp.lep"
    r = leptonc("compile", "examples/mlp.py:build", "-o", str(out), "--dynamic", "batch", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "leptonc: [" not in r.stderr  # --quiet: no progress
    np.save(tmp_path / "x.npy", np.ones((5, 512), np.float32))
    r = leptonc("run", str(out), "--input", f"x={tmp_path / 'x.npy'}")
    assert r.returncode == 0, r.stderr
    assert "float32[5, 512]" in r.stdout


def test_output_names_never_leave_the_output_dir(artifact, tmp_path):
    """A manifest's output name is not believed (the names come from the IR); an IR name that is no plain
    file name is refused."""
    import warnings

    from .artifact_tools import edit_manifest

    bad = tmp_path / "bad.lep"
    edit_manifest(artifact, bad, lambda m: m["signature"]["outputs"][0].update(name="../../evil"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = leptonc("run", str(bad), "--output-dir", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert os.listdir(tmp_path / "out") == ["y.npy"] and not (tmp_path.parent / "evil.npy").exists()
    with pytest.raises(Exception, match="bad value name"):  # the IR has no such names
        from leptonc.ir.parser import parse_ir

        parse_ir(GRAPH.replace("%y", "%.."))


def test_run_refuses_an_output_name_that_is_no_plain_file_name(artifact, tmp_path, monkeypatch, capsys):
    """The CLI's own guard, whatever a loaded model says its outputs are called."""
    import leptonc as api
    from leptonc.cli import main

    real = api.load

    def renamed(path):
        cm = real(path)
        cm.manifest["signature"]["outputs"][0]["name"] = "../evil"
        return cm

    monkeypatch.setattr(api, "load", renamed)
    assert main(["run", str(artifact), "--output-dir", str(tmp_path / "out")]) == 2
    assert "not a plain file name" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.npy").exists()
