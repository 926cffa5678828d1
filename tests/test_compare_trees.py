"""benchmarks/compare_trees.py: one process per tree, asked in turns (neither always first), beside each count of
busy processes; the table has each tree's median call, its turns' quartiles and the ratio of medians."""
from __future__ import annotations

from benchmarks import compare_trees


def test_trees_take_turns_and_the_ratio_is_of_medians(monkeypatch, capsys, tmp_path):
    asked, busy = [], []
    ms = {"a": iter([10.0, 12.0, 11.0, 30.0, 30.0, 30.0]), "b": iter([20.0, 18.0, 60.0, 15.0, 15.0, 15.0])}

    class FakeTree:
        def __init__(self, tree, model):
            self.name = tree.rsplit("/", 1)[-1]

        def time(self, calls):
            asked.append(self.name)
            return [next(ms[self.name])] * calls

        def close(self):
            pass

    monkeypatch.setattr(compare_trees, "Tree", FakeTree)
    monkeypatch.setattr(compare_trees, "busy_processes", lambda n: busy.append(n) or [])
    monkeypatch.setattr(compare_trees.time, "sleep", lambda s: None)
    before, after = str(tmp_path / "a"), str(tmp_path / "b")
    assert compare_trees.main([before, after, "--models", "gpt2", "--rounds", "3", "--busy", "0,2"]) == 0
    assert asked == ["a", "b", "b", "a", "a", "b"] * 2
    assert busy == [0, 2]
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| gpt2")]
    assert rows[0].startswith("| gpt2 | 0 | 11.00 (") and rows[0].endswith("| 1.82x |")
    assert rows[1].startswith("| gpt2 | 2 | 30.00 (") and rows[1].endswith("| 0.50x |")
