"""Smoke test of the busy-machine benchmark (benchmarks/contention.py --quick): every system timed in its own
process idle and beside a busy process, and in one process with the others; the table and summary written."""
from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")


@pytest.mark.slow
def test_contention_quick_writes_slowdowns_and_in_process_penalties(tmp_path):
    from benchmarks import contention

    out = tmp_path / "contention.md"
    assert contention.main(["--quick", "--busy", "0,1", "--out", str(out)]) == 0
    text = out.read_text()
    for system in contention.SYSTEMS:
        assert f"| tiny_mlp | {system} |" in text
    assert "1 busy: ms (slowdown)" in text and "in-process penalty" in text
    assert "- tiny_mlp: slowdown leptonc vs ONNX Runtime: 1 busy" in text
