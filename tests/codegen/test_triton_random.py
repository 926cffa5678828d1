"""Hypothesis-generated random graphs through the default pipeline, fusion and Triton code generation
(run by Triton's interpreter) match the reference interpreter."""
from __future__ import annotations

import pytest

pytest.importorskip("triton")
pytest.importorskip("torch")

from hypothesis import HealthCheck, assume, given, note, settings  # noqa: E402

import leptonc  # noqa: E402
from leptonc.codegen.triton.texpr import UnsupportedError  # noqa: E402
from tests.codegen.cpu_check import assert_matches_reference  # noqa: E402
from tests.random_graphs import graphs, random_inputs  # noqa: E402


@pytest.fixture(autouse=True)
def interpret(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def _check(graph) -> None:
    note(leptonc.print_ir(graph))
    inputs = random_inputs(graph, seed=0)
    try:
        ref = leptonc.run_reference(graph, *inputs)
    except leptonc.LeptoncError:
        assume(False)  # inputs the graph itself rejects
    try:
        cm = leptonc.compile(graph, target="triton", quiet=True)
    except UnsupportedError as e:
        # out of the target's scope: sizes known only at run time, and training-mode dropout (numpy's RNG)
        assume("data-dependent" not in str(e) and "'dropout'" not in str(e))
        raise
    note(cm.artifact.source)
    assert_matches_reference(cm.run(*inputs), ref)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(graph=graphs(max_steps=8))
def test_random_graphs_match_reference(graph):
    _check(graph)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(graph=graphs(max_steps=12))
def test_many_random_graphs_match_reference(graph):
    _check(graph)
