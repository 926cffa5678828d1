"""Pass instruments: the hooks the manager calls, in order, and the reference check's verdicts."""
from __future__ import annotations

import numpy as np
import pytest

from leptonc.ir import parse_ir
from leptonc.passes import Instrument, PassError, PassManager, ReferenceMismatch, register_pass
from leptonc.passes.instruments import EXACT, first_divergence, relative_error

from .test_manager import SMALL

X = np.array([0.5, -1.0, 2.0, 0.0], np.float32)


@register_pass("test-exp-to-neg", "replaces exp by neg: a broken pass")
def exp_to_neg(graph):
    changed = False
    for node in list(graph.nodes):
        if node.op == "exp":
            graph.replace_all_uses(node.output, graph.add("neg", node.inputs[0], before=node))
            graph.erase(node)
            changed = True
    return changed


class Recorder(Instrument):
    def __init__(self):
        self.calls = []

    def run_started(self, graph):
        self.calls.append(("start", len(graph.nodes)))

    def before_pass(self, entry, graph):
        self.calls.append(("before", str(entry)))

    def after_pass(self, entry, graph, changed, seconds, ops_before, within):
        self.calls.append(("after", str(entry), changed, within))

    def after_pipeline(self, entry, graph, changed):
        self.calls.append(("pipeline", str(entry), changed))


def test_an_instrument_sees_every_pass_in_order_with_its_pipeline():
    rec = Recorder()
    PassManager("canonicalize,default", instruments=[rec]).run(parse_ir(SMALL))
    assert rec.calls[0] == ("start", 4)
    assert rec.calls[1:3] == [("before", "canonicalize"), ("after", "canonicalize", True, "")]
    inner = [c for c in rec.calls if c[0] == "after" and c[3].startswith("default#")]
    assert inner and inner[0][1] == "canonicalize" and inner[0][3] == "default#1"
    assert rec.calls[-1] == ("pipeline", "default", True)


def test_the_reference_check_passes_exact_passes_and_names_a_broken_one():
    PassManager("default", check_reference_each=[X]).run(parse_ir(SMALL))
    with pytest.raises(ReferenceMismatch, match=r"pass 'test-exp-to-neg' moved the outputs beyond its tolerance "
                                                r"\(max rel error 0.0001\): output 0 \(%\w+\) at \[0\] is "
                                                r"-0.5, expected 1.64"):
        PassManager("canonicalize,test-exp-to-neg", check_reference_each=[X]).run(parse_ir(SMALL))


def test_a_mismatch_saves_the_ir_before_the_pass_and_bisect_cuts_it_down(tmp_path, capsys):
    from leptonc.cli import main

    with pytest.raises(ReferenceMismatch) as e:
        PassManager("test-exp-to-neg", check_reference_each=[X], report_dir=str(tmp_path)).run(parse_ir(SMALL))
    saved = str(e.value).split("the IR before the pass is in ")[1].split(";")[0]
    assert saved.startswith(str(tmp_path)) and parse_ir(open(saved).read()).op_counts()["exp"] == 1
    assert main(["bisect", saved, "--passes", "test-exp-to-neg"]) == 1
    assert "first diverging pass: test-exp-to-neg" in capsys.readouterr().out


def test_the_reference_check_refuses_inputs_the_graph_cannot_run():
    with pytest.raises(PassError, match="before any pass"):
        PassManager("dce", check_reference_each=[np.zeros(3, np.float32)]).run(parse_ir(SMALL))


def test_first_divergence_and_relative_error():
    want = [np.array([1.0, np.nan, 4.0], np.float32), np.array([1, 2], np.int64)]
    assert first_divergence(want, [w.copy() for w in want], EXACT, ["a", "b"]) is None
    assert relative_error(np.array([2.0, 4.0]), np.array([2.0, 4.2])) == pytest.approx(0.05)
    moved = [np.array([1.0, np.nan, 4.5], np.float32), want[1]]
    text, output = first_divergence(want, moved, EXACT, ["a", "b"])
    assert output == 0 and "at [2] is 4.5, expected 4.0" in text
    nan = [np.array([1.0, 0.0, 4.0], np.float32), want[1]]  # a NaN the reference has must stay
    assert first_divergence(want, nan, EXACT, ["a", "b"])[1] == 0
    flipped = [want[0], np.array([1, 3], np.int64)]
    assert "output 1 (%b) at [1] is 3, expected 2" in first_divergence(want, flipped, EXACT, ["a", "b"])[0]
