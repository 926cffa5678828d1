"""A missing optional package is one line naming the extra that installs it: a MissingDependencyError in
Python, exit 2 on the command line. Each case runs in a fresh interpreter where importing the package fails."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import leptonc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# blocks the packages named in LEPTONC_TEST_BLOCK, as if they were not installed
BLOCK = r"""
import importlib.abc, os, sys

BLOCKED = tuple(os.environ["LEPTONC_TEST_BLOCK"].split(","))

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Block())
"""

PYTHON_CASE = BLOCK + r"""
import numpy as np
import leptonc
from leptonc.ir.errors import MissingDependencyError

case, path = sys.argv[1], sys.argv[2]
try:
    if case == "import_onnx":
        leptonc.import_onnx(path)
    elif case == "compile":
        leptonc.compile(leptonc.parse_ir(open(path).read()), target=sys.argv[3], quiet=True)
    elif case == "load":
        leptonc.load(path)(np.ones((2, 4), np.float32))
except MissingDependencyError as e:
    print(e)
    raise SystemExit(0)
raise SystemExit("no MissingDependencyError")
"""

CLI_CASE = BLOCK + r"""
from leptonc.cli import main
sys.exit(main(sys.argv[1:]))
"""

MLP_IR = """graph @mlp(%x: f32[B, 4]) -> (f32[B, 4]) {
  %y = relu(%x) : f32[B, 4]
  return %y
}
"""


def _run(script, blocked, *args, cwd):
    env = dict(os.environ, LEPTONC_TEST_BLOCK=blocked, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=300)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    torch.onnx.export(m, (torch.randn(2, 4),), str(folder / "m.onnx"), dynamo=False)
    (folder / "m.lir").write_text(MLP_IR)
    leptonc.compile(leptonc.parse_ir(MLP_IR), target="stablehlo", quiet=True).save(folder / "m_stablehlo.lep")
    return folder


@pytest.mark.parametrize("case, blocked, file, extra", [
    ("import_onnx", "onnx", "m.onnx", "onnx"),
    ("compile stablehlo", "jax,jaxlib", "m.lir", "xla"),
    ("compile triton", "triton", "m.lir", "triton"),
    ("load", "jax,jaxlib", "m_stablehlo.lep", "xla"),
])
def test_python_names_the_extra(models, case, blocked, file, extra):
    name, *target = case.split()
    r = _run(PYTHON_CASE, blocked, name, str(models / file), *target, cwd=models)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"pip install 'leptonc[{extra}]'" in r.stdout and r.stdout.count("\n") == 1


@pytest.mark.parametrize("argv, blocked, extra", [
    (["ir", "m.onnx"], "onnx", "onnx"),
    (["compile", "m.lir", "-o", "out.lep", "--target", "stablehlo"], "jax,jaxlib", "xla"),
    (["run", "m_stablehlo.lep"], "jax,jaxlib", "xla"),
])
def test_cli_one_line_exit_2(models, argv, blocked, extra):
    r = _run(CLI_CASE, blocked, *argv, cwd=models)
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.count("\n") == 1 and f"leptonc[{extra}]" in r.stderr and "Traceback" not in r.stderr


def test_other_import_errors_are_not_renamed():
    from leptonc.ir.errors import optional_dependency

    with pytest.raises(ModuleNotFoundError):
        with optional_dependency("anything"):
            import leptonc_no_such_module  # noqa: F401


def test_cpu_artifact_runs_without_torch_or_onnx(models, tmp_path):
    path = tmp_path / "m_cpu.lep"
    leptonc.compile(leptonc.parse_ir(MLP_IR), target="cpu", quiet=True).save(path)
    script = BLOCK + r"""
import numpy as np, leptonc
y = leptonc.load(sys.argv[1])(np.array([[-1, 2, -3, 4]], np.float32))
assert y.tolist() == [[0, 2, 0, 4]], y
print("ran")
"""
    r = _run(script, "torch,onnx,jax,triton", str(path), cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "ran", r.stderr[-2000:]


def test_internal_error_is_one_line_exit_1(monkeypatch, capsys):
    from leptonc import cli

    def broken(args):
        raise RuntimeError("something\nof ours broke")

    monkeypatch.setattr(cli, "_cmd_passes", broken)
    assert cli.main(["passes"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error" in err and "--debug" in err
    assert err.startswith("leptonc: internal error: RuntimeError: something of ours broke")


def test_argparse_errors_are_one_line(capsys):
    from leptonc import cli

    with pytest.raises(SystemExit) as e:
        cli.main(["compile", "m.onnx", "--target", "gpu", "-o", "x.lep"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown target 'gpu' (cpu, triton, stablehlo; a CUDA GPU is --target triton)" in err
