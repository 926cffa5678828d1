"""User errors on the command line: one line on stderr, exit 2; a traceback only with --debug."""
import re
import subprocess
import sys

import pytest


def leptonc(*args):
    return subprocess.run([sys.executable, "-m", "leptonc.cli", *args], capture_output=True, text=True)


def test_user_error_is_one_line_and_exit_2(tmp_path):
    r = leptonc("ir", str(tmp_path / "nowhere.py") + ":build")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "does not exist" in r.stderr and "Traceback" not in r.stderr


def test_debug_shows_the_traceback(tmp_path):
    r = leptonc("--debug", "ir", str(tmp_path / "nowhere.py") + ":build")
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_bad_model_spec(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("def build():\n    return 42\n")
    r = leptonc("ir", f"{src}:build")
    assert r.returncode == 2 and "must return (module, example_inputs)" in r.stderr
    r = leptonc("ir", f"{src}:missing")
    assert r.returncode == 2 and "has no function 'missing'" in r.stderr


TINY = """graph @tiny(%x: f32[2, 4]) -> (f32[2, 4]) {
  %w = const @w [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]] : f32[4, 4]
  %y = matmul(%x, %w) : f32[2, 4]
  return %y
}
"""


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("LEPTONC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LEPTONC_HOME", str(tmp_path / "home"))
    (tmp_path / "tiny.lir").write_text(TINY)
    return tmp_path


def compile_tiny(d, capsys, *flags):
    from leptonc import cli

    rc = cli.main(["compile", str(d / "tiny.lir"), "-o", str(d / "tiny.lep"), "--quiet", *flags])
    return rc, capsys.readouterr()


def test_an_unknown_target_names_the_targets_and_the_gpu_one(capsys):
    import leptonc
    from leptonc import cli

    hint = "unknown target 'gpu' (cpu, triton, stablehlo; a CUDA GPU is --target triton)"
    with pytest.raises(SystemExit) as e:
        cli.main(["compile", "m.onnx", "--target", "gpu", "-o", "x.lep"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and hint in err
    with pytest.raises(leptonc.LeptoncError, match=re.escape(hint)):
        leptonc.compile("m.onnx", target="gpu")


def test_compile_prints_the_fusion_report_under_its_own_flag_and_the_old_one(tiny, capsys):
    rc, out = compile_tiny(tiny, capsys, "--fusion-report")
    assert rc == 0 and "1 kernels" in out.out and "[matmul]" in out.out and out.err == ""
    rc, old = compile_tiny(tiny, capsys, "--stats")
    assert rc == 0 and old.out == out.out
    assert old.err.count("\n") == 1 and "deprecated spelling of --fusion-report" in old.err


def test_report_says_when_no_lossy_pass_ran(tiny, capsys):
    rc, out = compile_tiny(tiny, capsys, "--report")
    assert rc == 0 and out.out.startswith("no lossy pass ran (quantize, mixed-precision, prune)")
    rc, out = compile_tiny(tiny, capsys, "--report", "--passes", "quantize")
    assert rc == 0 and "accuracy against the fp32 graph" in out.out and "no lossy pass" not in out.out


def test_bf16_on_cpu_computes_in_f32_between_roundings(tiny, capsys):
    rc, out = compile_tiny(tiny, capsys, "--passes", "mixed-precision{dtype=bf16}")
    assert rc == 0, out.err


def test_profile_times_kernels_and_the_whole_run_in_the_same_runs(tiny, capsys):
    from leptonc import cli

    assert compile_tiny(tiny, capsys)[0] == 0
    assert cli.main(["run", str(tiny / "tiny.lep"), "--profile"]) == 0
    rows = {line[:48].strip(): line[48:].split() for line in capsys.readouterr().out.splitlines()[2:]}
    ms = {name: float(v[0]) for name, v in rows.items()}
    share = {name: float(v[1]) for name, v in rows.items()}
    kernels = [name for name in rows if name.startswith("k0_")]
    whole = "whole run (the median of 10)"
    assert kernels and share[whole] == 100.0
    assert ms["total of the kernels"] <= ms[whole]
    assert share["total of the kernels"] + share["the call from Python around them"] == pytest.approx(100, abs=0.15)
    assert sum(share[k] for k in kernels) == pytest.approx(share["total of the kernels"], abs=0.15)
