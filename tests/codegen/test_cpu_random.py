"""Hypothesis-generated random graphs through the default pipeline, fusion and C code generation match
the reference interpreter."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, note, settings

import leptonc
from leptonc.codegen.cpu.cexpr import UnsupportedError
from leptonc.passes import run_pipeline
from tests.codegen.cpu_check import assert_matches_reference
from tests.random_graphs import graphs, random_inputs


def _check(graph) -> None:
    note(leptonc.print_ir(graph))
    inputs = random_inputs(graph, seed=0)
    try:
        ref = leptonc.run_reference(graph, *inputs)
    except leptonc.LeptoncError:
        assume(False)  # inputs the graph itself rejects
    try:
        cm = leptonc.compile(graph, quiet=True)
    except UnsupportedError as e:
        assume("data-dependent" not in str(e))  # sizes known only at run time are out of the cpu target's scope
        raise
    note(run_pipeline(graph, "default,fuse").__str__())
    assert_matches_reference(cm.run(*inputs), ref)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=graphs(max_steps=8))
def test_random_graphs_match_reference(graph):
    _check(graph)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=graphs(max_steps=12))
def test_many_random_graphs_match_reference(graph):
    _check(graph)
