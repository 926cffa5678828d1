"""The bundled example (examples/run_example.py), run as a user runs it with few timed runs: it prints its
model, error figures within fp32 rounding, each side's median and spread, and a verdict line."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytest.importorskip("torch")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_example_reports_errors_timings_and_a_verdict(tmp_path):
    env = dict(os.environ, LEPTONC_CACHE_DIR=str(tmp_path), OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "examples/run_example.py", "--runs", "4"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert out.startswith("model: examples/mlp.py:build, input [64, 512]")
    errors = [float(e) for e in re.findall(r"^max \|leptonc - .*\| += (\S+)$", out, re.M)]
    assert len(errors) == 2 and max(errors) < 1e-4, out
    assert re.search(r"^timing: 4 runs of each after 1 warm-up, interleaved, 1 threads, load average [\d.]+ per "
                     r"core before the run$", out, re.M), out
    for name in ("eager torch", "leptonc"):
        m = re.search(rf"^  {name} +median ([\d.]+) ms, p10-p90 ([\d.]+)-([\d.]+) ms$", out, re.M)
        assert m and float(m[2]) <= float(m[1]) <= float(m[3]), out
    verdict = out.strip().splitlines()[-1]
    assert re.fullmatch(r"verdict: (leptonc is [\d.]+x (as fast as|slower than) eager torch, more than the noise"
                        r"|no clear difference: the noise is larger than the difference) \(eager/leptonc per pair: "
                        r"median [\d.]+x, p10-p90 [\d.]+-[\d.]+x\)", verdict), verdict


def test_too_few_runs_is_a_usage_error():
    run = subprocess.run([sys.executable, "examples/run_example.py", "--runs", "0"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "--runs must be at least 1" in run.stderr
