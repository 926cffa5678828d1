"""scatter_elements and scatter_nd on the cpu target against the reference: every reduction, repeated
positions (combined in index order), negative indices, NaN through max and min, bool data, and an index out
of range as the reference's IndexRangeError."""
from __future__ import annotations

import numpy as np
import pytest

import leptonc
from leptonc.ir import parse_ir
from leptonc.ir.errors import IndexRangeError
from tests.codegen.cpu_check import assert_matches_reference


def _graph(reduction: str, dtype: str = "f32"):
    return parse_ir(f"""graph @scatters(%x: {dtype}[4, 3], %i: i64[3, 3], %u: {dtype}[3, 3], %n: i64[3, 1],
        %v: {dtype}[3, 3], %m: i64[2, 2], %w: {dtype}[2]) -> ({dtype}[4, 3], {dtype}[4, 3], {dtype}[4, 3]) {{
  %se = scatter_elements(%x, %i, %u) {{axis = 0, reduction = "{reduction}"}} : {dtype}[4, 3]
  %sn = scatter_nd(%x, %n, %v) {{reduction = "{reduction}"}} : {dtype}[4, 3]
  %pt = scatter_nd(%x, %m, %w) {{reduction = "{reduction}"}} : {dtype}[4, 3]
  return %se, %sn, %pt
}}""")


def _inputs(dtype=np.float32):
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (4, 3)).astype(dtype)
    u = rng.uniform(-2, 2, (3, 3)).astype(dtype)
    if dtype == np.float32:
        x[1, 1], u[2, 0] = np.nan, np.nan
    i = np.array([[0, -1, 2], [-4, 1, 3], [0, 1, 3]], np.int64)   # repeated positions in each column
    n = np.array([[-1], [1], [3]], np.int64)                       # rows 3 and -1 are the same row
    m = np.array([[0, 2], [-4, -1]], np.int64)                     # (0, 2) twice
    return [x, i, u, n, u.copy(), m, u[0, :2].copy()]


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatters_match_the_reference(reduction):
    g = _graph(reduction)
    xs = _inputs()
    cm = leptonc.compile(g, target="cpu", quiet=True)
    assert_matches_reference(cm.run(*xs), leptonc.run_reference(g, *xs))


@pytest.mark.parametrize("reduction", ["none", "add", "mul"])
def test_scatters_of_bool_and_integer_data(reduction):
    for dtype, np_dtype in (("bool", np.bool_), ("i32", np.int32)):
        g = _graph(reduction, dtype)
        xs = [a if a.dtype == np.int64 else (a > 0 if np_dtype is np.bool_ else (np.nan_to_num(a) * 10).astype(np_dtype))
              for a in _inputs()]
        cm = leptonc.compile(g, target="cpu", quiet=True)
        assert_matches_reference(cm.run(*xs), leptonc.run_reference(g, *xs))


def test_an_index_out_of_range_is_the_references_error():
    g = _graph("add")
    cm = leptonc.compile(g, target="cpu", quiet=True)
    xs = _inputs()
    xs[1] = np.array([[0, 1, 2], [4, 0, 0], [0, 0, 9]], np.int64)
    with pytest.raises(IndexRangeError, match="scatter_elements %se: index 4 is out of range for dim 0 of size 4"):
        leptonc.run_reference(g, *xs)
    with pytest.raises(IndexRangeError, match="scatter_elements %se: index 4 is out of range for dim 0 of size 4"):
        cm.run(*xs)
    xs = _inputs()
    xs[3] = np.array([[1], [-5], [0]], np.int64)
    with pytest.raises(IndexRangeError, match="scatter_nd %sn: index -5 is out of range for dim 0 of size 4"):
        cm.run(*xs)
    assert_matches_reference(cm.run(*_inputs()), leptonc.run_reference(g, *_inputs()))
