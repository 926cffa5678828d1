"""Smoke test of the pruning section of the accuracy benchmark (benchmarks/accuracy_pruning.py) at tiny sizes."""
from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")


@pytest.mark.slow
def test_the_pruning_section_reports_every_pipeline():
    from benchmarks import accuracy_pruning

    text = "\n".join(accuracy_pruning.run(quick=True))
    for name, _ in accuracy_pruning.LM_PIPELINES:
        assert f"| {name} |" in text
    for model in ("digits CNN", "breast cancer MLP"):
        assert f"### {model}" in text
    assert text.count("SparseGPT + recovery |") == 2 and "Best recovered:" in text
