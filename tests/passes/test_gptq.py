"""quantize{method=gptq}: the blocked Cholesky GPTQ against a direct re-derivation (the optimal brain surgeon
update with the inverse Hessian of the columns left, recomputed per column), its error against
round-to-nearest's on correlated inputs, its option errors, and a calibrated compile through the cpu target."""
import numpy as np
import pytest

import leptonc
from leptonc.ir import TensorType
from leptonc.ir.dtypes import DType
from leptonc.ir.graph import Graph
from leptonc.ir.ops.quant import RANGES, dequantize_array
from leptonc.passes import PassError, run_pipeline
from leptonc.passes.calibration import calibrating, load_calibration
from leptonc.passes.gptq import PERCDAMP, gptq_weight, output_error
from leptonc.passes.quantize import quantize_weight
from leptonc.runtime.accuracy import format_accuracy


def correlated(rng, rows: int, k: int, seed: int = 0) -> np.ndarray:
    """Inputs whose features are strongly correlated (as a layer's inputs are), with unequal scales; the
    same distribution (mixing of features) for the same `seed`, fresh draws from `rng`."""
    fixed = np.random.default_rng(seed)
    mix = (fixed.standard_normal((k, k)) * 0.5 + np.eye(k) * 2) * fixed.uniform(0.2, 3, k)
    return (rng.standard_normal((rows, k)) @ mix).astype(np.float32)


def gptq_direct(w: np.ndarray, h: np.ndarray, dtype: DType, group: int) -> tuple[np.ndarray, np.ndarray]:
    """GPTQ as derived: round column j, then move the columns after it by -e_j [H_F^-1]_{j,F} / [H_F^-1]_jj,
    with H_F the dampened Hessian of the columns j.. not yet quantized (inverted afresh for each column)."""
    n, k = w.shape
    lo, hi = RANGES[dtype]
    h = h + PERCDAMP * np.mean(np.diag(h)) * np.eye(k)
    W = w.astype(np.float64)
    q = np.zeros((n, k))
    scale = np.zeros((n, k // group), np.float32) if group else quantize_weight(w, dtype)[1]
    for j in range(k):
        if group and j % group == 0:
            amax = np.abs(W[:, j:j + group]).max(axis=1)
            scale[:, j // group] = np.where(amax > 0, amax / hi, 1.0)
        s = (scale[:, j // group] if group else scale).astype(np.float64)
        q[:, j] = np.clip(np.rint(W[:, j] / s), lo, hi)
        hinv = np.linalg.inv(h[j:, j:])
        W[:, j:] -= np.outer((W[:, j] - q[:, j] * s) / hinv[0, 0], hinv[0])
    return q, scale


@pytest.mark.parametrize("dtype, group", [(DType.i4, 8), (DType.i4, 0), (DType.i8, 0)])
def test_gptq_matches_the_direct_derivation(dtype, group):
    rng = np.random.default_rng(1)
    x = correlated(rng, 200, 24).astype(np.float64)
    w = rng.standard_normal((5, 24)).astype(np.float32)
    q, scale = gptq_weight(w, 2 * x.T @ x, dtype, group)
    q_direct, scale_direct = gptq_direct(w, 2 * x.T @ x, dtype, group)
    assert q.dtype == dtype.numpy and scale.shape == ((5, 3) if group else (5,))
    np.testing.assert_allclose(scale, scale_direct, rtol=1e-5)
    np.testing.assert_array_equal(q.astype(np.int32), q_direct)


@pytest.mark.parametrize("dtype, group", [(DType.i4, 32), (DType.i4, 0), (DType.i8, 0)])
def test_gptq_output_error_is_below_round_to_nearest_on_correlated_inputs(dtype, group):
    rng = np.random.default_rng(2)
    x = correlated(rng, 1024, 128)
    w = rng.standard_normal((48, 128)).astype(np.float32)
    h = 2 * x.astype(np.float64).T @ x
    axis = 1 if group else 0

    def error(q, scale):
        wq = dequantize_array(q, scale, None, axis, group)
        measured = np.linalg.norm(x @ w.T - x @ wq.T) ** 2 / np.linalg.norm(x @ w.T) ** 2
        assert output_error(w, wq, h) == pytest.approx(measured, rel=1e-3)
        return measured

    rtn, gptq = error(*quantize_weight(w, dtype, group)), error(*gptq_weight(w, h, dtype, group))
    assert gptq < 0.7 * rtn, (gptq, rtn)


def test_dead_inputs_and_a_singular_hessian_still_quantize():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 16))
    x[:, 5] = 0  # an input that is 0 on every calibration sample; rank 4 < 16
    w = rng.standard_normal((3, 16)).astype(np.float32)
    q, scale = gptq_weight(w, 2 * x.T @ x, DType.i4, 8)
    assert np.abs(q.astype(np.int32)).max() <= 7 and np.all(scale > 0)


def two_layers() -> Graph:
    rng = np.random.default_rng(4)
    g = Graph()
    x = g.add_input("x", TensorType(DType.f32, ("batch", 64)))
    h = g.add("relu", g.add("matmul", x, g.add_constant(rng.standard_normal((64, 128)).astype(np.float32) / 8,
                                                         "w1")))
    y = g.add("matmul", h, g.add_constant(rng.standard_normal((128, 16)).astype(np.float32) / 11, "w2"))
    g.set_outputs([y])
    return g


def calibration_samples(n: int, seed: int = 5) -> list[tuple[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [(correlated(rng, 64, 64),) for _ in range(n)]


def test_gptq_needs_calibration_and_weight_only():
    with pytest.raises(PassError, match=r"quantize\{method=gptq\} needs calibration data"):
        run_pipeline(two_layers(), "quantize{weights=int4,group=32,method=gptq}")
    with calibrating(load_calibration(calibration_samples(1), two_layers())):
        with pytest.raises(PassError, match="method=gptq quantizes weights only"):
            run_pipeline(two_layers(), "quantize{weights=int8,activations=int8-dynamic,method=gptq}")
        with pytest.raises(PassError, match="method"):
            run_pipeline(two_layers(), "quantize{weights=int4,method=awq}")


def test_calibrated_compile_on_the_cpu_target_matches_the_reference_and_beats_round_to_nearest():
    passes = "quantize{weights=int4,group=32,method=gptq}"
    data = calibration_samples(8)
    cm = leptonc.compile(two_layers(), data[0], passes=passes, calibration=data, quiet=True, cache=False,
                         accuracy=8)
    report = cm.manifest["accuracy"]
    layers = report["calibrated_layers"]
    assert [(c["method"], c["baseline"]) for c in layers] == [("gptq", "rtn")] * 2
    assert all(0 < c["error"] < c["baseline_error"] for c in layers)
    assert "error of each calibrated layer on the calibration data" in format_accuracy(report)
    with calibrating(load_calibration(data, two_layers())):
        gptq = run_pipeline(two_layers(), passes)
    rtn = run_pipeline(two_layers(), "quantize{weights=int4,group=32}")
    assert gptq.op_counts()["matmul_wq"] == 2 and "matmul" not in gptq.op_counts()
    (x,) = calibration_samples(1, seed=6)[0]  # held-out inputs drawn like the calibration set
    (ref,) = leptonc.run_reference(two_layers(), x)
    (expected,) = leptonc.run_reference(gptq, x)
    np.testing.assert_allclose(cm(x), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    (rounded,) = leptonc.run_reference(rtn, x)
    assert np.linalg.norm(expected - ref) < 0.8 * np.linalg.norm(rounded - ref)
