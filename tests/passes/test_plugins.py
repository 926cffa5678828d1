"""Pass plugins through the entry-point group `leptonc.passes`.

The test installs the plugins under tests/passes/plugin/ the way pip would
leave them: the packages plus a .dist-info folder with entry_points.txt, on
PYTHONPATH of a fresh `leptonc` process. No network, no build step.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PLUGINS = Path(__file__).parent / "plugin"
ROOT = Path(__file__).parents[2]
CASE = """graph @g(%x: f32[4]) -> (f32[4]) {
  %a = relu(%x) : f32[4]
  %b = relu(%a) : f32[4]
  return %b
}
"""


@pytest.fixture
def site(tmp_path):
    """A site directory holding the demo and broken plugins, 'installed' with their entry points."""
    info = tmp_path / "leptonc_demo_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: leptonc-demo-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[leptonc.passes]\ndemo = leptonc_demo_plugin\nbroken = leptonc_broken_plugin\n")
    return tmp_path


def leptonc(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(PLUGINS), str(ROOT)]))
    return subprocess.run([sys.executable, "-m", "leptonc.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_plugin_pass_is_listed_and_a_broken_plugin_is_reported(site):
    done = leptonc(site, "passes")
    assert done.returncode == 0, done.stderr
    line = next(l for l in done.stdout.splitlines() if l.startswith("demo-relu-relu"))
    assert "relu(relu(x)) is relu(x)" in line and "[plugin demo]" in line
    assert "dce" in done.stdout and "fold" in done.stdout  # the built-in passes are all still there
    assert "pass module 'broken' (leptonc_broken_plugin) failed to load: ModuleNotFoundError" in done.stderr


def test_plugin_pass_runs_under_leptonc_ir(site, tmp_path):
    case = tmp_path / "case.lir"
    case.write_text(CASE)
    done = leptonc(site, "ir", str(case), "--passes", "demo-relu-relu,dce", "--verify-each")
    assert done.returncode == 0, done.stderr
    assert "%b = relu(%x)" in done.stdout and "%a" not in done.stdout


def test_unknown_pass_mentions_the_broken_plugin(site, tmp_path):
    case = tmp_path / "case.lir"
    case.write_text(CASE)
    done = leptonc(site, "ir", str(case), "--passes", "from-broken-plugin")
    assert done.returncode == 2
    assert "unknown pass 'from-broken-plugin'" in done.stderr and "pass module 'broken'" in done.stderr


def test_plugin_pattern_runs_in_canonicalize(site, tmp_path):
    case = tmp_path / "case.lir"
    case.write_text(CASE.replace("relu", "abs"))
    done = leptonc(site, "ir", str(case), "--passes", "canonicalize", "--verify-each")
    assert done.returncode == 0, done.stderr
    assert "abs(%x)" in done.stdout and "abs(%a)" not in done.stdout
