"""The accuracy report's driver (benchmarks/accuracy.py) and, at tiny sizes, its vision section."""
from __future__ import annotations

import sys
import types

import pytest

from benchmarks import accuracy


def _section(monkeypatch, name: str, run) -> None:
    module = types.ModuleType(f"benchmarks.accuracy_{name}")
    module.run = run
    monkeypatch.setitem(sys.modules, module.__name__, module)


def test_driver_writes_every_section_and_reports_a_failing_one(monkeypatch, tmp_path):
    _section(monkeypatch, "vision", lambda quick: ["## vision", "", "| a | b |", f"quick={quick}", ""])

    def broken(quick):
        raise RuntimeError("no model")

    _section(monkeypatch, "lm", broken)
    monkeypatch.setitem(sys.modules, "benchmarks.accuracy_pruning", None)  # as if the module did not exist
    assert accuracy.main(["--quick", "--out", str(tmp_path)]) == 0
    (report,) = tmp_path.iterdir()
    text = report.read_text()
    assert report.name.endswith(".md") and "-accuracy-" in report.name
    assert "quick=True" in text and "`RuntimeError: no model`" in text
    assert "## pruning" in text and "does not exist yet" in text
    assert accuracy.main(["--quick", "--sections", "vision", "--append", "--out", str(tmp_path)]) == 0
    assert report.read_text().startswith(text) and report.read_text().count("quick=True") == 2


def test_driver_refuses_an_unknown_section():
    with pytest.raises(SystemExit):
        accuracy.main(["--sections", "speech"])


@pytest.mark.slow
def test_vision_section_at_tiny_sizes():
    pytest.importorskip("sklearn")
    pytest.importorskip("onnxruntime")
    from benchmarks import accuracy_vision

    lines = accuracy_vision.run(quick=True)
    rows = [line for line in lines if line.startswith("| leptonc") or line.startswith("| onnxruntime")]
    assert len(rows) == 2 * 9
    assert all(float(r.split("|")[2]) > 50 for r in rows)  # trained for 2 epochs, well above chance
