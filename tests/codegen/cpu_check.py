"""Shared checks for the cpu target tests: compile a graph, compare with the reference interpreter."""
from __future__ import annotations

import numpy as np

import leptonc
from leptonc.ir.graph import Graph


def assert_matches_reference(got, ref) -> None:
    """DESIGN.md's fp32 tolerance: max|y - ref| <= 1e-4 * max(1, max|ref|); NaN where the reference has NaN."""
    assert len(got) == len(ref)
    for i, (a, b) in enumerate(zip(got, ref)):
        assert a.shape == b.shape and a.dtype == b.dtype, f"output {i}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"
        if a.dtype.kind != "f":
            np.testing.assert_array_equal(a, b, err_msg=f"output {i}")
            continue
        assert np.array_equal(np.isnan(a), np.isnan(b)), f"output {i}: NaNs differ"
        fin = np.isfinite(b)
        assert np.array_equal(a[~fin & ~np.isnan(b)], b[~fin & ~np.isnan(b)]), f"output {i}: infinities differ"
        if fin.any():
            err = float(np.abs(a[fin].astype(np.float64) - b[fin]).max())
            tol = 1e-4 * max(1.0, float(np.abs(b[fin]).max()))
            assert err <= tol, f"output {i}: max error {err:.3g} > {tol:.3g}"


def compile_and_check(graph: Graph, inputs, **options):
    """Compile `graph` for the cpu target, run it on inputs, compare with the reference; return the model."""
    cm = leptonc.compile(graph, quiet=True, **options)
    assert_matches_reference(cm.run(*inputs), leptonc.run_reference(graph, *inputs))
    return cm


def check_target_on_random_graph(graph, target: str) -> None:
    """A hypothesis-drawn graph compiled for `target` matches the reference interpreter. Graphs outside
    every target's scope are skipped: inputs the graph itself rejects, sizes known only at run time, and
    training-mode dropout (which draws from numpy's generator)."""
    from hypothesis import assume, note

    from tests.random_graphs import random_inputs

    note(leptonc.print_ir(graph))
    inputs = random_inputs(graph, seed=0)
    try:
        ref = leptonc.run_reference(graph, *inputs)
    except leptonc.LeptoncError:
        assume(False)
    try:
        cm = leptonc.compile(graph, target=target, quiet=True)
    except leptonc.LeptoncError as e:
        assume("data-dependent" not in str(e) and "'dropout'" not in str(e))
        raise
    note(cm.artifact.source)
    assert_matches_reference(cm.run(*inputs), ref)
