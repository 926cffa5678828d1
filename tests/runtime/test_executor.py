"""Running compiled models: inputs checked against the signature with clear errors; non-contiguous
arrays, NaN and inf give the reference's results; the arena is shared and planned per size."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import leptonc
from leptonc.ir import DType, Graph, TensorType
from leptonc.runtime.memory import ALIGN, HUGE_PAGE, HugePageArena, on_huge_pages, placed, plan_arena
from tests.codegen.cpu_check import assert_matches_reference


def softmax_graph() -> Graph:
    g = Graph("softmax")
    x = g.add_input("x", TensorType(DType.f32, ("B", "N")))
    m = g.add("reduce_max", x, axes=(1,), keepdims=True)
    e = g.add("exp", g.add("sub", x, m))
    g.set_outputs([g.add("div", e, g.add("reduce_sum", e, axes=(1,), keepdims=True), name="y")])
    return g


@pytest.fixture(scope="module")
def softmax():
    return leptonc.compile(softmax_graph(), quiet=True)


def test_wrong_dtype_names_the_input(softmax):
    with pytest.raises(leptonc.LeptoncError, match=r"input 'x' expects f32\[B, N\], got a float64 array"):
        softmax(np.ones((2, 3)))


def test_wrong_rank_names_the_input(softmax):
    with pytest.raises(leptonc.LeptoncError, match=r"input 'x' expects f32\[B, N\] \(rank 2\), got shape \[6\]"):
        softmax(np.ones(6, np.float32))


def test_wrong_count_of_inputs(softmax):
    with pytest.raises(leptonc.LeptoncError, match="expected 1 inputs"):
        softmax(np.ones((2, 3), np.float32), np.ones((2, 3), np.float32))


def test_non_contiguous_inputs(softmax):
    base = np.random.default_rng(0).standard_normal((8, 12)).astype(np.float32)
    for x in (base.T, base[::2, 1::3], np.asfortranarray(base)):
        assert_matches_reference([softmax(x)], leptonc.run_reference(softmax_graph(), x))


def test_nan_and_inf_follow_the_reference(softmax):
    x = np.array([[1.0, np.nan, 2.0], [np.inf, 0.0, 1.0], [-np.inf, 0.0, 1.0], [3.0, 1.0, 2.0]], np.float32)
    assert_matches_reference([softmax(x)], leptonc.run_reference(softmax_graph(), x))


def test_nan_in_max_min_relu_and_comparisons():
    g = Graph("nan")
    x = g.add_input("x", TensorType(DType.f32, (6,)))
    y = g.add_input("y", TensorType(DType.f32, (6,)))
    outs = [g.add("max", x, y), g.add("min", x, y), g.add("relu", x), g.add("less", x, y), g.add("isnan", x),
            g.add("reduce_max", x, axes=(0,), keepdims=False), g.add("sign", x), g.add("abs", x)]
    g.set_outputs(outs)
    cm = leptonc.compile(g, quiet=True)
    a = np.array([np.nan, 1, -np.inf, np.inf, -2, 0], np.float32)
    b = np.array([1, np.nan, 0, -1, np.inf, -0.5], np.float32)
    assert_matches_reference(cm.run(a, b), leptonc.run_reference(g, a, b))


def test_outputs_are_fresh_arrays(softmax):
    x = np.ones((2, 3), np.float32)
    y1, y2 = softmax(x), softmax(x)
    assert y1 is not y2 and not np.shares_memory(y1, y2)


def test_arena_shares_memory_between_lifetimes():
    offsets, total = plan_arena([(1000, 0, 1), (1000, 2, 3), (500, 1, 2)])
    assert offsets[0] == offsets[1]  # no overlap in time: same bytes
    assert total < 2500
    a, b, c = (offsets[i] for i in range(3))
    assert c >= a + 1000 or c + 500 <= a


def test_weights_are_copied_into_one_huge_page_buffer():
    """Equal copies, each on a cache line, the first on a huge page; odd sizes and dtypes keep their places."""
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((3, 5)).astype(np.float32), np.arange(7, dtype=np.int8),
              rng.standard_normal(1000), np.zeros((0, 4), np.float32), np.arange(3, dtype=np.uint8)]
    copies = on_huge_pages(arrays)
    assert copies[0].ctypes.data % HUGE_PAGE == 0
    for a, c in zip(arrays, copies):
        assert c.dtype == a.dtype and c.shape == a.shape and not np.shares_memory(a, c)
        assert c.ctypes.data % ALIGN == 0
        np.testing.assert_array_equal(c, a)


def test_an_arena_places_from_threads_and_overflows_into_buffers_of_their_own():
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(n).astype(np.float32) for n in (100, 3, 5000, 1, 64)]
    arena = HugePageArena(4096)  # room for some of them only
    with ThreadPoolExecutor(max_workers=3) as pool:
        copies = list(pool.map(arena.place, arrays))
    for a, c in zip(arrays, copies):
        assert placed(c) and not np.shares_memory(a, c)
        np.testing.assert_array_equal(c, a)
    assert [arena.place(c) is c for c in copies] == [True] * len(copies)  # placed once, never again
    assert all(again is c for again, c in zip(on_huge_pages(copies), copies))


def test_profile_lists_every_kernel(softmax):
    rows = softmax.profile(np.ones((4, 5), np.float32), repeat=2)
    assert [name for name, _ in rows] == softmax.executor.kernel_names
    assert all(t >= 0 for _, t in rows)


def test_a_library_that_does_not_load_is_a_run_error(tmp_path):
    from leptonc.runtime.executor import Executor, RunError

    junk = tmp_path / "model.so"
    junk.write_bytes(b"not a shared library")
    with pytest.raises(RunError, match="cannot load the model library"):
        Executor({"inputs": [], "outputs": [], "symbols": [], "signed_dims": [], "weights": [], "kernels": []},
                 junk, {})
