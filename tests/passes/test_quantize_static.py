"""quantize{weights=int8,activations=int8-static,observer=...}: observers against numpy re-derivations, the
rewrite (uint8 kept between layers), SmoothQuant, calibration errors, and a model through compile."""
from __future__ import annotations

import re

import numpy as np
import pytest

import leptonc
from leptonc.ir import DType, Graph, TensorType
from leptonc.passes import run_pipeline
from leptonc.passes.calibration import calibrating, load_calibration
from leptonc.passes.observers import LEVELS, Histogram, histograms, mse, percentile, uint8_params
from leptonc.passes.registry import PassError

STATIC = "quantize{{weights=int8,activations=int8-static,observer={}{}}}"


def _sqnr(ref: np.ndarray, y: np.ndarray) -> float:
    noise = float(np.sum((y.astype(np.float64) - ref) ** 2))
    return 10 * np.log10(float(np.sum(ref.astype(np.float64) ** 2)) / noise)


def _fake_quant(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """quantize-dequantize over [lo, hi] in uint8, the numpy way."""
    s, z = uint8_params(lo, hi)
    return (np.clip(np.rint(v / s) + z, 0, LEVELS) - z) * s


def _cnn(seed: int = 0) -> Graph:
    """conv 3x3 -> relu -> conv 3x3 (stride 2, 2 groups) -> relu -> max_pool -> reshape -> linear + bias."""
    rng = np.random.default_rng(seed)
    g = Graph("cnn")
    x = g.add_input("x", TensorType(DType.f32, (2, 3, 9, 9)))
    w1, b1 = g.add_constant(rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32)), \
        g.add_constant(rng.normal(0, 0.1, 8).astype(np.float32))
    h = g.add("relu", g.add("conv", x, w1, b1, strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1), group=1))
    w2 = g.add_constant(rng.normal(0, 0.3, (6, 4, 3, 3)).astype(np.float32))
    h = g.add("relu", g.add("conv", h, w2, strides=(2, 2), pads=(1, 1, 1, 1), dilations=(1, 1), group=2))
    h = g.add("reshape", g.add("max_pool", h, kernel=(2, 2), strides=(2, 2), pads=(0, 0, 0, 0),
                               dilations=(1, 1)), shape=(2, 24))
    w3 = g.add_constant(rng.normal(0, 0.3, (24, 5)).astype(np.float32))
    g.set_outputs([g.add("add", g.add("matmul", h, w3), g.add_constant(rng.normal(0, 0.1, 5).astype(np.float32)))])
    return g


def _samples(n: int, shape, seed: int = 1):
    rng = np.random.default_rng(seed)
    return [(rng.normal(0, 1, shape).astype(np.float32),) for _ in range(n)]


def _quantized(graph: Graph, samples, observer: str = "minmax", extra: str = "") -> Graph:
    with calibrating(load_calibration(samples, graph)):
        return run_pipeline(graph, STATIC.format(observer, extra))


# ---------------------------------------------------------------- observers

def _values_graph() -> tuple[Graph, object]:
    g = Graph("values")
    x = g.add_input("x", TensorType(DType.f32, (64,)))
    y = g.add("relu", x)
    g.set_outputs([y])
    return g, y


def test_histograms_and_minmax_match_numpy():
    g, y = _values_graph()
    samples = _samples(5, (64,))
    cal = load_calibration(samples, g)
    hx, hy = histograms(cal, g, [g.inputs[0], y])
    xs = np.concatenate([s[0] for s in samples])
    assert (hx.lo, hx.hi) == (float(xs.min()), float(xs.max()))
    assert (hy.lo, hy.hi) == (0.0, float(np.maximum(xs, 0).max()))  # the range holds 0
    np.testing.assert_array_equal(hx.counts, np.histogram(xs, len(hx.counts), range=(hx.lo, hx.hi))[0])


def test_percentile_is_numpys_within_a_bin():
    rng = np.random.default_rng(0)
    v = np.concatenate([rng.normal(0, 1, 100_000), [80.0, -60.0]])  # two outliers
    h = Histogram(float(v.min()), float(v.max()), np.histogram(v, 2048, range=(v.min(), v.max()))[0])
    lo, hi = percentile(h, 99.9)
    width = (h.hi - h.lo) / 2048
    assert abs(hi - np.percentile(v, 99.9)) <= 2 * width and abs(lo - np.percentile(v, 0.1)) <= 2 * width


def test_mse_range_is_as_good_as_a_brute_force_search():
    rng = np.random.default_rng(1)
    v = np.concatenate([np.abs(rng.normal(0, 1, 50_000)), [40.0]])  # one outlier, post-relu like
    h = Histogram(0.0, float(v.max()), np.histogram(v, 2048, range=(0, v.max()))[0])
    lo, hi = mse(h)
    err = float(np.mean((_fake_quant(v, lo, hi) - v) ** 2))
    best = min(float(np.mean((_fake_quant(v, 0, t * v.max()) - v) ** 2)) for t in np.linspace(0.02, 1, 300))
    minmax_err = float(np.mean((_fake_quant(v, 0, v.max()) - v) ** 2))
    assert hi <= v.max() and err <= 1.1 * best and err <= minmax_err


def test_uint8_params_keep_zero_exact():
    for lo, hi in ((-1.3, 2.7), (0.0, 5.0), (0.4, 3.0), (-2.0, -0.5), (0.0, 0.0)):
        s, z = uint8_params(lo, hi)
        assert s > 0 and z.dtype == np.uint8
        assert np.rint(0.0 / s) + z == z  # real 0 quantizes to the zero point exactly
        if hi > lo:
            span = max(hi, 0) - min(lo, 0)
            assert np.isclose(float(s), span / LEVELS)


# ---------------------------------------------------------------- the rewrite

@pytest.mark.parametrize("observer", ["minmax", "percentile", "mse"])
def test_cnn_keeps_uint8_between_layers_and_stays_close(observer):
    g = _cnn()
    samples = _samples(16, (2, 3, 9, 9))
    q = _quantized(g, samples, observer)
    ops = [n.op for n in q.nodes if n.op != "const"]
    assert ops == ["quantize", "qlinear_conv", "qlinear_conv", "max_pool", "reshape", "qlinear_matmul"], ops
    assert [n.outputs[0].dtype for n in q.nodes if n.op in ("qlinear_conv", "max_pool")] == [DType.u8] * 3
    for (x,) in _samples(4, (2, 3, 9, 9), seed=9):
        # the pass's declared tolerance
        assert _sqnr(leptonc.run_reference(g, x)[0], leptonc.run_reference(q, x)[0]) > 20


def test_layers_whose_result_reaches_other_ops_return_f32():
    g = Graph("branch")
    x = g.add_input("x", TensorType(DType.f32, (4, 8)))
    rng = np.random.default_rng(0)
    h = g.add("matmul", x, g.add_constant(rng.normal(0, 1, (8, 8)).astype(np.float32)))
    y = g.add("matmul", g.add("relu", h), g.add_constant(rng.normal(0, 1, (8, 3)).astype(np.float32)))
    g.set_outputs([y, g.add("tanh", h)])  # h feeds tanh too: the first layer's result stays f32
    q = _quantized(g, _samples(8, (4, 8)))
    ops = [n.op for n in q.nodes if n.op != "const"]
    assert ops.count("qlinear_matmul") == 2 and ops.count("quantize") == 2 and "relu" in ops
    x0 = _samples(1, (4, 8), seed=5)[0][0]
    for a, b in zip(leptonc.run_reference(g, x0), leptonc.run_reference(q, x0)):
        assert _sqnr(a, b) > 20


def test_smoothquant_keeps_the_function_and_tames_outlier_channels():
    rng = np.random.default_rng(0)
    g = Graph("outliers")
    x = g.add_input("x", TensorType(DType.f32, (16, 32)))
    g.set_outputs([g.add("matmul", x, g.add_constant(rng.normal(0, 0.2, (32, 16)).astype(np.float32)))])
    scale = np.ones(32, np.float32)
    scale[[3, 17]] = 60.0  # two channels with outliers, as after a transformer's layer norm
    samples = [((rng.normal(0, 1, (16, 32)) * scale).astype(np.float32),) for _ in range(8)]
    test = (rng.normal(0, 1, (16, 32)) * scale).astype(np.float32)
    ref = leptonc.run_reference(g, test)[0]
    plain = leptonc.run_reference(_quantized(g, samples), test)[0]
    smooth = _quantized(g, samples, extra=",smoothquant=0.5")
    assert any(n.op == "mul" for n in smooth.nodes)
    assert _sqnr(ref, leptonc.run_reference(smooth, test)[0]) > _sqnr(ref, plain) + 3


def test_missing_calibration_is_a_pass_error():
    with pytest.raises(PassError, match="quantize needs calibration data"):
        run_pipeline(_cnn(), STATIC.format("minmax", ""))


@pytest.mark.parametrize("passes,message", [
    ("quantize{weights=int4,activations=int8-static}", "needs weights=int8"),
    ("quantize{weights=int8,activations=int8-static,smoothquant=1.5}", "smoothquant must be"),
    ("quantize{weights=int8,activations=int8-static,observer=entropy}", "observer"),
])
def test_bad_options_are_errors(passes, message):
    g = _cnn()
    cal = load_calibration(_samples(2, (2, 3, 9, 9)), g)
    with calibrating(cal), pytest.raises(leptonc.LeptoncError, match=message):
        run_pipeline(g, passes)


def test_compiles_with_calibration_and_matches_the_reference_exactly():
    g = _cnn()
    samples = _samples(16, (2, 3, 9, 9))
    passes = STATIC.format("mse", "")
    cm = leptonc.compile(g, samples[0], passes=passes, calibration=samples, quiet=True, accuracy=False)
    q = _quantized(g, samples, "mse")
    for (x,) in _samples(3, (2, 3, 9, 9), seed=4):
        np.testing.assert_array_equal(cm(x), leptonc.run_reference(q, x)[0])


def test_smoothquant_leaves_layers_fed_by_layers_in_uint8():
    g = Graph("mlp")
    x = g.add_input("x", TensorType(DType.f32, (4, 8)))
    rng = np.random.default_rng(0)
    h = g.add("relu", g.add("matmul", x, g.add_constant(rng.normal(0, 1, (8, 8)).astype(np.float32))))
    g.set_outputs([g.add("matmul", h, g.add_constant(rng.normal(0, 1, (8, 3)).astype(np.float32)))])
    q = _quantized(g, _samples(8, (4, 8)), extra=",smoothquant=0.5")
    ops = [n.op for n in q.nodes if n.op != "const"]
    assert ops == ["mul", "quantize", "qlinear_matmul", "qlinear_matmul"], ops  # the first layer's input only


def test_reduce_range_weights_within_64_compile_exactly_and_survive_a_save_and_load(tmp_path):
    g = _cnn()
    samples = _samples(16, (2, 3, 9, 9))
    passes = STATIC.format("minmax", ",reduce_range=true")
    q = _quantized(g, samples, extra=",reduce_range=true")
    layers = [n for n in q.nodes if n.op.startswith("qlinear_")]
    assert len(layers) == 3 and all(n.attrs["weight_max"] == 64 for n in layers)
    assert all(int(np.abs(q.constant_of(n.inputs[3]).astype(np.int32)).max()) == 64 for n in layers)
    cm = leptonc.compile(g, samples[0], passes=passes, calibration=samples, quiet=True, accuracy=False,
                         cache=False)
    pairs = re.findall(r"lep_qlinear_(?:conv|matmul)\(.*, (\d), (?:\(uint8_t\*\))?scratch\);", cm.source)
    assert pairs == ["1"] * 3  # the kernels' int16 pair sums
    cm.save(tmp_path / "q.lep")
    loaded = leptonc.load(tmp_path / "q.lep")  # its code derived from the IR again: the same kernels
    for (x,) in _samples(3, (2, 3, 9, 9), seed=4):
        ref = leptonc.run_reference(q, x)[0]
        np.testing.assert_array_equal(cm(x), ref)
        np.testing.assert_array_equal(loaded(x), ref)
    plain = _quantized(g, samples)
    assert all(n.attrs["weight_max"] == 127 for n in plain.nodes if n.op.startswith("qlinear_"))
    x = _samples(1, (2, 3, 9, 9), seed=4)[0][0]
    assert _sqnr(leptonc.run_reference(g, x)[0], leptonc.run_reference(q, x)[0]) > 20


def test_weights_beyond_weight_max_are_refused():
    g = Graph("wmax")
    x = g.add_input("x", TensorType(DType.u8, (2, 8)))
    w = np.full((4, 8), 65, np.int8)
    consts = [g.add_constant(a, f"c{j}") for j, a in enumerate((
        np.array(0.1, np.float32), np.array(0, np.uint8), w, np.ones(4, np.float32), np.zeros(4, np.int32)))]
    g.set_outputs([g.add("qlinear_matmul", x, *consts, weight_max=64)])
    with pytest.raises(leptonc.LeptoncError, match="exceeds weight_max 64"):
        leptonc.run_reference(g, np.zeros((2, 8), np.uint8))
    with pytest.raises(leptonc.LeptoncError, match="exceeds its weight_max 64"):
        leptonc.compile(g, quiet=True, accuracy=False, cache=False)
