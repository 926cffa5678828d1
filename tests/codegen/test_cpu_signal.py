"""dft and stft on the cpu target against the reference interpreter (numpy's double FFT): real and complex
input, any axis, lengths that pad and truncate, onesided, inverse (full and onesided: a real signal from
a half spectrum), f32 and f64; stft with and without a window, steps that leave samples over."""
from __future__ import annotations

import numpy as np
import pytest

import leptonc
from leptonc.ir import DType, Graph, TensorType


def _graph(op: str, xs: list[np.ndarray], **attrs) -> Graph:
    g = Graph(op)
    args = [g.add_input(f"x{i}", TensorType(DType.from_numpy(x.dtype), x.shape)) for i, x in enumerate(xs)]
    g.set_outputs([g.add(op, *args, **attrs)])
    return g


def _check(g: Graph, xs: list[np.ndarray]) -> None:
    got, want = leptonc.compile(g, quiet=True).run(*xs)[0], leptonc.run_reference(g, *xs)[0]
    assert got.dtype == want.dtype and got.shape == want.shape
    tol = 1e-12 if got.dtype == np.float64 else 1e-5
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, float(np.abs(want).max())))


DFT = [
    ((2, 8, 1), {"axis": 1}), ((2, 8, 2), {"axis": 1}), ((3, 6, 4, 2), {"axis": 0}), ((3, 6, 4, 2), {"axis": -2}),
    ((2, 8, 1), {"axis": 1, "length": 5}), ((2, 5, 2), {"axis": 1, "length": 9}),
    ((2, 8, 1), {"axis": 1, "onesided": True}), ((2, 7, 1), {"axis": 1, "onesided": True, "length": 6}),
    ((3, 6, 2), {"axis": 0, "inverse": True}), ((2, 5, 2), {"axis": 1, "inverse": True, "length": 8}),
    ((2, 5, 2), {"axis": 1, "onesided": True, "inverse": True}),
    ((2, 5, 2), {"axis": 1, "onesided": True, "inverse": True, "length": 9}),
    ((4, 3, 2), {"axis": 0, "onesided": True, "inverse": True, "length": 5}),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=str)
def test_dft_matches_the_reference(dtype):
    """Every form of DFT, as the outputs of one graph."""
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(shape).astype(dtype) for shape, _ in DFT]
    g = Graph("dfts")
    args = [g.add_input(f"x{i}", TensorType(DType.from_numpy(dtype), x.shape)) for i, x in enumerate(xs)]
    g.set_outputs([g.add("dft", a, **attrs) for a, (_, attrs) in zip(args, DFT)])
    got, want = leptonc.compile(g, quiet=True).run(*xs), leptonc.run_reference(g, *xs)
    for a, b, (shape, attrs) in zip(got, want, DFT):
        assert a.dtype == b.dtype and a.shape == b.shape, (shape, attrs)
        tol = 1e-12 if dtype == np.float64 else 1e-5
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, float(np.abs(b).max())), err_msg=str(attrs))


@pytest.mark.parametrize("signal, window, attrs", [
    ((2, 20, 1), 8, {"step": 4}), ((1, 16, 2), None, {"step": 3, "length": 6, "onesided": False}),
    ((2, 23, 2), 7, {"step": 5, "onesided": False}), ((1, 30, 1), 9, {"step": 2})], ids=lambda v: str(v))
def test_stft_matches_the_reference(signal, window, attrs):
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal(signal).astype(np.float32)]
    if window is not None:
        xs.append(rng.uniform(0, 1, window).astype(np.float32))
    _check(_graph("stft", xs, **attrs), xs)
