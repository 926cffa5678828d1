"""run_reference checks its inputs against the graph signature and binds symbolic dims."""
import numpy as np
import pytest

import leptonc
from leptonc.ir import DType, Graph, ShapeError, TensorType


def graph():
    g = Graph("g")
    x = g.add_input("x", TensorType(DType.f32, ("B", "S", 4)))
    m = g.add_input("mask", TensorType(DType.f32, ("B", "S")))
    flat = g.add("reshape", x, shape=("B*S", 4))
    y = g.add("reshape", flat, shape=("B", "S", 4))
    z = g.add("mul", y, g.add("reshape", m, shape=("B", "S", 1)))
    g.set_outputs([z])
    return g


def test_symbols_bind_at_any_size():
    g = graph()
    for b, s in [(1, 3), (4, 7)]:
        x = np.ones((b, s, 4), np.float32)
        (z,) = leptonc.run_reference(g, x, np.full((b, s), 2, np.float32))
        assert z.shape == (b, s, 4) and (z == 2).all()


def test_inputs_by_name():
    g = graph()
    (z,) = leptonc.run_reference(g, mask=np.ones((1, 2), np.float32), x=np.ones((1, 2, 4), np.float32))
    assert z.shape == (1, 2, 4)


@pytest.mark.parametrize("x, m, message", [
    (np.ones((2, 3, 4)), np.ones((2, 3), np.float32), r"input 'x' expects f32\[B, S, 4\], got a float64 array"),
    (np.ones((2, 3), np.float32), np.ones((2, 3), np.float32), r"input 'x' expects f32\[B, S, 4\] \(rank 3\)"),
    (np.ones((2, 3, 5), np.float32), np.ones((2, 3), np.float32), r"dim 2 must be 4"),
    (np.ones((2, 3, 4), np.float32), np.ones((2, 5), np.float32), r"input 'mask'.*dim 1 must be 3 \(S = 3\)"),
])
def test_bad_inputs_give_one_clear_error(x, m, message):
    with pytest.raises(ShapeError, match=message):
        leptonc.run_reference(graph(), x, m)


def test_wrong_input_count_and_names():
    with pytest.raises(ShapeError, match=r"expected 2 inputs \(x: f32\[B, S, 4\], mask: f32\[B, S\]\), got 1"):
        leptonc.run_reference(graph(), np.ones((1, 1, 4), np.float32))
    with pytest.raises(ShapeError, match=r"unknown input names \['y'\]"):
        leptonc.run_reference(graph(), y=np.ones(1))


def test_non_contiguous_and_nan_inputs():
    g = graph()
    x = np.ascontiguousarray(np.ones((2, 3, 8), np.float32))[:, :, ::2]
    m = np.array([[np.nan, 1, np.inf]] * 2, np.float32)
    (z,) = leptonc.run_reference(g, x, m)
    assert np.isnan(z[:, 0]).all() and (z[:, 1] == 1).all() and np.isinf(z[:, 2]).all()
