"""Text tests: each case in tests/passes/lit/*.lir is IR, a RUN line and CHECK directives.

A file holds cases separated by `# -----` lines. The RUN line (the case's
own, or else the file's first) is a `leptonc ir %s ...` command line; it runs
through the real command-line entry point, with --verify-each added, and its
output is matched against the case's CHECK directives (tests/filecheck.py).
Each case is also run differentially: the graph before and after the
pipeline gives the same outputs through the reference interpreter.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from leptonc.cli import main
from leptonc.ir import LeptoncError, parse_ir
from leptonc import run_reference
from leptonc.passes import run_pipeline
from leptonc.passes.tolerance import tolerance_of
from tests.filecheck import filecheck
from tests.random_graphs import random_inputs

LIT = Path(__file__).parent / "lit"
_RUN = re.compile(r"^#\s*RUN:\s*(.*)$", re.M)
_SPLIT = re.compile(r"^#\s*-----\s*$", re.M)
_GRAPH = re.compile(r"^graph @(\w+)", re.M)


def lit_cases(directory: Path = LIT):
    """Each case of the .lir files in `directory`, as pytest params (case text, RUN command)."""
    for path in sorted(directory.glob("*.lir")):
        text = path.read_text()
        file_run = _RUN.search(text)
        for chunk in _SPLIT.split(text):
            name = _GRAPH.search(chunk)
            if name is None:
                continue
            run = _RUN.search(chunk) or file_run
            assert run, f"{path.name}: case @{name.group(1)} has no RUN line"
            yield pytest.param(chunk, run.group(1), id=f"{path.stem}:{name.group(1)}")


def run_case(case: str, run: str, tmp_path: Path, capsys) -> list[str]:
    """Run the case's RUN line (`leptonc ir %s ...`, with --verify-each) and match its output against the
    case's CHECK directives; returns the command line."""
    argv = shlex.split(run)
    assert argv[:2] == ["leptonc", "ir"], f"RUN line must be a `leptonc ir %s ...` command: {run}"
    source = tmp_path / "case.lir"
    source.write_text(case)
    assert main([a.replace("%s", str(source)) for a in argv[1:]] + ["--verify-each"]) == 0
    filecheck(capsys.readouterr().out, case)
    return argv


def _pipeline(argv: list[str]) -> str:
    return argv[argv.index("--passes") + 1]


@pytest.mark.parametrize("case, run", list(lit_cases()))
def test_case(case, run, tmp_path, capsys):
    argv = run_case(case, run, tmp_path, capsys)

    before = parse_ir(case)
    after = run_pipeline(before, _pipeline(argv))
    inputs = random_inputs(before, seed=0)
    try:
        expected = run_reference(before, *inputs)
    except LeptoncError as e:  # a graph that fails at run time must still fail, the same way
        with pytest.raises(type(e)):
            run_reference(after, *inputs)
        return
    tolerance = tolerance_of(_pipeline(argv))
    if tolerance is not None:  # a lossy pass: within the bound it declares
        for want, got in zip(expected, run_reference(after, *inputs)):
            error = np.max(np.abs(got.astype(np.float64) - want), initial=0) / max(1.0, np.max(np.abs(want), initial=0))
            assert error <= tolerance.max_rel_error, (error, tolerance)
        return
    # fold-batchnorm changes the rounding of the weights; every other pass is exact up to summation order.
    rtol = 1e-4 if "batchnorm" in run or "default" in run or "channels-last" in run else 1e-6
    for want, got in zip(expected, run_reference(after, *inputs)):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol, equal_nan=True)



def test_every_builtin_pass_has_text_tests():
    """Each pass and pipeline leptonc itself registers runs in the RUN line of some case of tests/passes/lit."""
    from leptonc.passes import list_passes, parse_pipeline

    tested = {e.name for p in lit_cases() for e in parse_pipeline(_pipeline(shlex.split(p.values[1])))}
    builtin = {p.name for p in list_passes() if p.origin == "builtin" and not p.name.startswith("test-")
               and (p.is_pipeline or getattr(p.impl, "__module__", "").startswith("leptonc."))}
    assert builtin - tested == set()
