"""Calibration data: loading (iterables and .npz), checking against the graph, and reading it from a pass."""
import numpy as np
import pytest

import leptonc
from leptonc.ir import TensorType
from leptonc.ir.dtypes import DType
from leptonc.ir.graph import Graph
from leptonc.passes.calibration import (CalibrationError, calibrating, column_squares, gram, load_calibration,
                                        require_calibration, waves)
from leptonc.passes.registry import PassError, register_pass

SEEN = []


@register_pass("test-calibrated", "records the calibration samples' first-layer activations")
def _calibrated(graph: Graph) -> bool:
    calibration = require_calibration("test-calibrated")
    hidden = next(n for n in graph.nodes if n.op == "relu").output
    SEEN.append([acts[0] for acts in calibration.observe(graph, [hidden])])
    return False


def mlp() -> Graph:
    g = Graph()
    x = g.add_input("x", TensorType(DType.f32, ("batch", 4)))
    w = g.add_constant(np.arange(12, dtype=np.float32).reshape(4, 3) / 10 - 0.5, "w")
    h = g.add("relu", g.add("matmul", x, w))
    g.set_outputs([g.add("reduce_sum", h, axes=[1], keepdims=True)])
    return g


def samples(n=3, rows=2):
    rng = np.random.default_rng(0)
    return [(rng.standard_normal((rows, 4)).astype(np.float32),) for _ in range(n)]


def test_observe_gives_each_samples_activation_and_leaves_the_graph_as_it_was():
    g = mlp()
    cal = load_calibration(samples(), g)
    relu = next(n for n in g.nodes if n.op == "relu")
    seen = [acts[0] for acts in cal.observe(g, [relu.output])]
    assert len(g.outputs) == 1
    w = g.constants["w"]
    for (x,), h in zip(cal.samples, seen):
        np.testing.assert_array_equal(h, np.maximum(x @ w, 0))


def test_npz_samples_stacked_on_axis_0_or_as_rows(tmp_path):
    g = mlp()
    x = np.random.default_rng(1).standard_normal((5, 2, 4)).astype(np.float32)
    np.savez(tmp_path / "stacked.npz", x=x)
    np.savez(tmp_path / "rows.npz", x=x[0])
    assert [s[0].shape for s in load_calibration(tmp_path / "stacked.npz", g).samples] == [(2, 4)] * 5
    rows = load_calibration(str(tmp_path / "rows.npz"), g).samples
    assert len(rows) == 2 and rows[1][0].shape == (1, 4)
    np.testing.assert_array_equal(rows[1][0][0], x[0][1])


@pytest.mark.parametrize("data, message", [
    ([], "no calibration samples"),
    ([(np.zeros((2, 5), np.float32),)], "sample 0"),
    ([(np.zeros((2, 4), np.int64),)], "sample 0"),
    (42, "iterable of input tuples"),
])
def test_bad_iterables_are_named(data, message):
    with pytest.raises(CalibrationError, match=message):
        load_calibration(data, mlp())


def test_bad_npz_files_are_named(tmp_path):
    g = mlp()
    np.savez(tmp_path / "wrong_key.npz", y=np.zeros((2, 2, 4), np.float32))
    with pytest.raises(CalibrationError, match=r"wrong_key.npz: keys \['y'\].*missing \['x'\]"):
        load_calibration(tmp_path / "wrong_key.npz", g)
    np.savez(tmp_path / "scalar.npz", x=np.float32(1))
    with pytest.raises(CalibrationError, match="key 'x' has shape"):
        load_calibration(tmp_path / "scalar.npz", g)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(CalibrationError, match="not a readable .npz"):
        load_calibration(tmp_path / "junk.npz", g)


def test_a_pass_that_needs_calibration_names_itself_when_there_is_none():
    with pytest.raises(PassError, match="test-calibrated needs calibration data"):
        require_calibration("test-calibrated")
    with calibrating(load_calibration(samples(1), mlp())):
        assert len(require_calibration("test-calibrated")) == 1


def test_compile_passes_calibration_to_the_passes_and_checks_it(tmp_path):
    SEEN.clear()
    data = samples(2)
    cm = leptonc.compile(mlp(), (data[0][0],), passes="test-calibrated", calibration=iter(data), quiet=True)
    assert len(SEEN) == 1 and len(SEEN[0]) == 2
    np.testing.assert_allclose(cm(data[0][0]), leptonc.run_reference(mlp(), data[0][0])[0], rtol=1e-5)
    with pytest.raises(PassError, match="needs calibration data"):
        leptonc.compile(mlp(), (data[0][0],), passes="test-calibrated", quiet=True)
    with pytest.raises(CalibrationError, match="sample 0"):
        leptonc.compile(mlp(), (data[0][0],), passes="test-calibrated", calibration=[(np.zeros(3),)], quiet=True)


def residual_layers() -> Graph:
    """x -> relu -> r; l1 = r @ w1, l2 = erf(l1) @ w2 + r, then l3a and l3b both read l2."""
    rng = np.random.default_rng(1)
    g = Graph()
    x = g.add_input("x", TensorType(DType.f32, ("batch", 4)))
    r = g.add("relu", x)
    w = [g.add_constant(rng.standard_normal((4, 4)).astype(np.float32), f"w{i}") for i in range(4)]
    l2 = g.add("add", g.add("matmul", g.add("erf", g.add("matmul", r, w[0])), w[1]), r)
    g.set_outputs([g.add("matmul", l2, w[2]), g.add("matmul", l2, w[3])])
    return g


@pytest.mark.parametrize("upstream_changed", [False, True])
def test_waves_observe_each_wave_on_the_graph_as_rewritten(upstream_changed):
    g = residual_layers()
    layers = [n for n in g.nodes if n.op == "matmul"]
    cal = load_calibration(samples(4, rows=3), g)
    seen = []
    with calibrating(cal):
        for wave in waves(g, layers, gram, pass_name="test"):
            seen.append(len(wave))
            for node, stat in wave:
                (x,) = zip(*cal.observe(g, [node.inputs[0]]))
                rows = [np.asarray(a, np.float64).reshape(-1, 4) for a in x]
                np.testing.assert_array_equal(stat, sum(r.T @ r for r in rows))
                w = g.constant_of(node.inputs[1])
                g.set_input(node, 1, g.add_constant(w * np.float32(0.5), before=node))
            if upstream_changed and len(seen) == 1:  # a rewrite that also changes what the kept relu computes
                relu = next(n for n in g.nodes if n.op == "relu")
                g.set_input(relu, 0, g.add("neg", g.inputs[0], before=relu))
    assert seen == [1, 1, 2]


def test_waves_at_once_and_column_squares():
    g = residual_layers()
    layers = [n for n in g.nodes if n.op == "matmul"]
    cal = load_calibration(samples(2), g)
    with calibrating(cal):
        (wave,) = waves(g, layers, column_squares, pass_name="test", sequential=False)
        for node, stat in wave:
            rows = [np.asarray(a, np.float64) for (a,) in cal.observe(g, [node.inputs[0]])]
            np.testing.assert_array_equal(stat, sum((r * r).sum(axis=0) for r in rows))
    with pytest.raises(PassError, match="pass test needs calibration data"):
        next(waves(g, layers, gram, pass_name="test"))
