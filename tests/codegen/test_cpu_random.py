"""Hypothesis-generated random graphs through the default pipeline, fusion and C code generation match
the reference interpreter."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from tests.codegen.cpu_check import check_target_on_random_graph
from tests.random_graphs import graphs


def _check(graph) -> None:
    check_target_on_random_graph(graph, "cpu")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=graphs(max_steps=8))
def test_random_graphs_match_reference(graph):
    _check(graph)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=graphs(max_steps=12))
def test_many_random_graphs_match_reference(graph):
    _check(graph)
