"""benchmarks/compare_trees.py: every round of each tree in the table, processes in turns, the ratio of medians."""
from __future__ import annotations

from benchmarks import compare_trees


def test_rounds_take_turns_and_the_ratio_is_of_medians(monkeypatch, capsys, tmp_path):
    calls, fake = [], iter([10.0, 20.0, 12.0, 18.0, 11.0, 60.0])
    monkeypatch.setattr(compare_trees, "time_in_process", lambda tree, model, n: calls.append(tree) or next(fake))
    monkeypatch.setattr(compare_trees.time, "sleep", lambda s: None)
    before, after = str(tmp_path / "a"), str(tmp_path / "b")
    assert compare_trees.main([before, after, "--models", "gpt2", "--rounds", "3"]) == 0
    assert calls == [before, after] * 3
    row = capsys.readouterr().out.splitlines()[-1]
    assert row == "| gpt2 | 10.00, 12.00, 11.00 | 20.00, 18.00, 60.00 | 1.82x |"
