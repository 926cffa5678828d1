"""Hypothesis-generated random graphs through the default pipeline, fusion and Triton code generation
(on the GPU, else run by Triton's interpreter) match the reference interpreter."""
from __future__ import annotations

import pytest

pytest.importorskip("triton")
pytest.importorskip("torch")

from hypothesis import HealthCheck, given, settings  # noqa: E402

from tests.codegen.cpu_check import check_target_on_random_graph  # noqa: E402
from tests.random_graphs import graphs  # noqa: E402


@pytest.fixture(autouse=True)
def on_triton_device(triton_device):
    """The kernels run on the GPU where there is one, else through Triton's interpreter."""


def _check(graph) -> None:
    check_target_on_random_graph(graph, "triton")


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
