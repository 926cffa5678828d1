"""The side-by-side benchmark harness: every system timed on the same inputs, in turns, reported as ratios."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from leptonc.bench import bench_torch_model, format_table  # noqa: E402


def test_systems_are_timed_in_turns_and_reported_as_ratios():
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8)).eval()
    result = bench_torch_model("tiny", module, (torch.randn(4, 32),), systems=("eager", "leptonc", "nonsense"),
                               runs=3, warmup=1)
    by = {t.system: t for t in result.timings}
    assert len(by["eager"].times_ms) == len(by["leptonc"].times_ms) == 3
    assert by["leptonc"].max_error < 1e-5 and by["leptonc"].compile_s > 0
    assert "unknown system" in by["nonsense"].error and not by["nonsense"].times_ms
    assert result.flops == 2 * 4 * (32 * 64 + 64 * 8)
    assert result.ratio("leptonc", "eager") > 0
    text = format_table([result], "tiny")
    assert "| leptonc |" in text and "GFLOP/s" in text and "vs eager" in text
