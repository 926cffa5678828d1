"""Every pass on random graphs: the verifier accepts the result (after every pass, under verify_each) and the
reference interpreter gives the same outputs before and after."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings

from leptonc import print_ir, run_reference
from leptonc.passes import run_pipeline
from tests.random_graphs import graphs, random_inputs

# fold-batchnorm rounds the folded weights differently; the others change at most the order of a summation
# (channels-last: of a reduction over a transposed tensor; fuse: and moves a scale across a matmul).
TOLERANCE = {"dce": 0, "cse": 0, "fold": 0, "canonicalize": 1e-6, "fold-batchnorm": 1e-5, "default": 1e-5,
             "channels-last": 1e-6, "fuse": 1e-5}


def assert_same_outputs(before, after, rtol: float, seed: int = 0) -> None:
    inputs = random_inputs(before, seed)
    want, got = run_reference(before, *inputs), run_reference(after, *inputs)
    assert len(want) == len(got)
    for w, g in zip(want, got):
        assert w.dtype == g.dtype and w.shape == g.shape
        if rtol == 0:
            np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * max(1.0, float(np.nanmax(np.abs(
                np.where(np.isfinite(w), w, 0)), initial=0))), equal_nan=True)


@pytest.mark.parametrize("pipeline", list(TOLERANCE))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=graphs())
def test_pass_keeps_outputs(pipeline, graph):
    note(print_ir(graph))
    after = run_pipeline(graph, pipeline, verify_each=True)
    assert_same_outputs(graph, after, TOLERANCE[pipeline])
