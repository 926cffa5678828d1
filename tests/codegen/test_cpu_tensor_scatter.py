"""tensor_scatter (a KV cache's update) on the cpu target against the reference: linear and circular mode,
any axis but the batch one, an update longer than the cache (circular: later steps win), symbolic sizes,
and a write position outside the cache (linear) as the reference's IndexRangeError."""
from __future__ import annotations

import numpy as np
import pytest

import leptonc
from leptonc.ir import DType, Graph, TensorType
from leptonc.ir.errors import IndexRangeError


def _graph(cache_shape, upd_shape, axis: int, mode: str) -> Graph:
    g = Graph("kv")
    c = g.add_input("cache", TensorType(DType.f32, cache_shape))
    u = g.add_input("upd", TensorType(DType.f32, upd_shape))
    i = g.add_input("idx", TensorType(DType.i64, (cache_shape[0],)))
    g.set_outputs([g.add("tensor_scatter", c, u, i, axis=axis, mode=mode)])
    return g


@pytest.mark.parametrize("cache_shape, upd_shape, axis, mode, idx", [
    ((2, 3, 8, 4), (2, 3, 2, 4), -2, "linear", [0, 6]),
    ((2, 3, 8, 4), (2, 3, 3, 4), 2, "circular", [6, -1]),
    ((3, 5, 2), (3, 2, 2), 1, "linear", [3, 0, 1]),
    ((2, 4, 3), (2, 4, 7), 2, "circular", [2, 5]),       # longer than the axis: wraps over itself
])
def test_tensor_scatter_matches_the_reference(cache_shape, upd_shape, axis, mode, idx):
    rng = np.random.default_rng(0)
    cache = rng.standard_normal(cache_shape).astype(np.float32)
    upd = rng.standard_normal(upd_shape).astype(np.float32)
    g = _graph(cache_shape, upd_shape, axis, mode)
    idx = np.array(idx, np.int64)
    np.testing.assert_array_equal(leptonc.compile(g, quiet=True).run(cache, upd, idx)[0],
                                  leptonc.run_reference(g, cache, upd, idx)[0])


def test_symbolic_sizes_and_a_write_past_the_cache():
    g = _graph(("B", 2, "S", 4), ("B", 2, 1, 4), 2, "linear")
    cm = leptonc.compile(g, quiet=True)
    for batch, seq in ((1, 3), (3, 6)):
        rng = np.random.default_rng(batch)
        cache = rng.standard_normal((batch, 2, seq, 4)).astype(np.float32)
        upd = rng.standard_normal((batch, 2, 1, 4)).astype(np.float32)
        idx = np.arange(batch, dtype=np.int64) % seq
        np.testing.assert_array_equal(cm.run(cache, upd, idx)[0], leptonc.run_reference(g, cache, upd, idx)[0])
    idx = np.array([0, 6, -1], np.int64)   # 6 is past the end of 6 positions (the first bad one)
    for run in (cm.run, lambda *xs: leptonc.run_reference(g, *xs)):
        with pytest.raises(IndexRangeError, match="index 6 is out of range for dim 2 of size 6"):
            run(cache, upd, idx)
