"""prune{method=sparsegpt|wanda}: SparseGPT's reconstruction against magnitude pruning and against a plain
numpy re-derivation of the OBS update, Wanda's mask re-derived, exact patterns, the sparse kernels against
the reference, pruned weights kept as they are, and the errors."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import leptonc
from leptonc.ir.ops.sparse import SPARSE_MATMULS
from leptonc.passes import PassError, run_pipeline
from leptonc.passes.calibration import calibrating, load_calibration
from leptonc.passes.obs_prune import DAMP, Pattern, sparsegpt
from leptonc.passes.sparse_layers import SparsityWarning, linear_layers
from leptonc.runtime.reference import run_reference
from tests.codegen.test_quantized import linear_chain

K = 64


def correlated(samples=8, rows=32, k=K, seed=1) -> list[tuple[np.ndarray]]:
    """Inputs whose columns are correlated and of unequal scales (as a network's hidden activations are)."""
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((k, k)) * 0.4 + np.eye(k)
    scales = np.exp(rng.uniform(-1.5, 1.5, k))
    return [(((rng.standard_normal((rows, k)) @ mix) * scales).astype(np.float32),) for _ in range(samples)]


def prune(graph, passes, data):
    with warnings.catch_warnings(), calibrating(load_calibration(data, graph)):
        warnings.simplefilter("ignore", SparsityWarning)
        return run_pipeline(graph, passes, verify_each=True)


def weights(graph) -> list[np.ndarray]:
    """W [N, K] of each dense linear layer, in graph order."""
    return [l.effective for l in linear_layers(graph)]


def rel_error(data, w, w_pruned) -> float:
    x = np.concatenate([s[0] for s in data])
    return float(np.linalg.norm(x @ w.T - x @ w_pruned.T) / np.linalg.norm(x @ w.T))


PATTERNS = {"unstructured": "sparsity=0.5", "nm": "pattern=nm,n=2,m=4", "block": "pattern=block,block=2x4,sparsity=0.5"}
MAGNITUDE = {"unstructured": "method=magnitude,sparsity=0.5", "nm": "method=nm,n=2,m=4",
             "block": "method=block,block=2x4,sparsity=0.5"}


@pytest.mark.parametrize("pattern", list(PATTERNS))
def test_sparsegpt_reconstructs_better_than_magnitude_and_wanda_on_correlated_inputs(pattern):
    graph, data = linear_chain(K, [48], (32,)), correlated()
    (w,) = weights(graph)
    errors = {}
    for name, opts in [("sparsegpt", f"method=sparsegpt,{PATTERNS[pattern]}"),
                       ("wanda", f"method=wanda,{PATTERNS[pattern]}"), ("magnitude", MAGNITUDE[pattern])]:
        (pruned,) = weights(prune(graph, f"prune{{{opts},skip=none,kernels=dense}}", data))
        assert (pruned == 0).mean() == 0.5, name
        errors[name] = rel_error(data, w, pruned)
    assert errors["sparsegpt"] < 0.8 * errors["magnitude"], errors
    assert errors["sparsegpt"] < errors["wanda"] < errors["magnitude"], errors


def _damped(data) -> np.ndarray:
    x = np.concatenate([s[0] for s in data]).astype(np.float64)
    h = x.T @ x
    return h + DAMP * np.mean(np.diag(h)) * np.eye(len(h))


def test_sparsegpt_is_the_obs_update_column_by_column():
    """One column block (K <= 128): the mask drops the lowest w^2 / [H_rest^-1]_00, where H_rest is H over
    the columns not yet visited, and each pruned column's error is spread by OBS over those columns."""
    graph, data = linear_chain(K, [16], (32,)), correlated()
    (w,) = weights(graph)
    (pruned,) = weights(prune(graph, "prune{method=sparsegpt,sparsity=0.5,skip=none,kernels=dense}", data))
    h = _damped(data)
    inv_rest = [np.linalg.inv(h[j:, j:]) for j in range(K)]
    saliency = w.astype(np.float64) ** 2 / np.array([r[0, 0] for r in inv_rest])[None, :]
    drop = np.zeros(w.size, bool)
    drop[np.argsort(saliency, axis=None, kind="stable")[:w.size // 2]] = True
    drop = drop.reshape(w.shape)
    expected = w.astype(np.float64)
    for j in range(K):
        e = np.where(drop[:, j], expected[:, j], 0.0) / inv_rest[j][0, 0]
        expected[:, j:] -= np.outer(e, inv_rest[j][0])
    np.testing.assert_array_equal(pruned == 0, drop)
    np.testing.assert_allclose(pruned, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("pattern", ["sparsity=0.75", "pattern=nm,n=1,m=4", "pattern=block,block=1x8,sparsity=0.5"])
def test_wanda_mask_is_weight_times_input_norm_per_output(pattern):
    graph, data = linear_chain(K, [24], (32,)), correlated()
    (w,) = weights(graph)
    (pruned,) = weights(prune(graph, f"prune{{method=wanda,{pattern},skip=none,kernels=dense}}", data))
    x = np.concatenate([s[0] for s in data]).astype(np.float64)
    score = np.abs(w) * np.linalg.norm(x, axis=0)[None, :]
    group = {"sparsity=0.75": K, "pattern=nm,n=1,m=4": 4}.get(pattern, 8)
    drop = {"sparsity=0.75": 48, "pattern=nm,n=1,m=4": 3}.get(pattern)
    groups = score.reshape(24, K // group, group)
    if drop is None:  # 1x8 blocks: half the blocks of each row, by the sum of their scores
        blocks = score.reshape(24, K // 8, 8).sum(axis=2)
        keep = np.argsort(np.argsort(blocks, axis=1, kind="stable"), axis=1) >= blocks.shape[1] // 2
        expected = np.repeat(keep, 8, axis=1)
    else:
        expected = (np.argsort(np.argsort(groups, axis=2, kind="stable"), axis=2) >= drop).reshape(24, K)
    np.testing.assert_array_equal(pruned != 0, expected)
    np.testing.assert_array_equal(pruned[expected], w[expected])  # no update


@pytest.mark.parametrize("method", ["sparsegpt", "wanda"])
@pytest.mark.parametrize("pattern, check", [
    ("sparsity=0.7", lambda w: (w == 0).sum() == round(0.7 * w.size)),
    ("pattern=nm,n=2,m=4", lambda w: ((w.reshape(len(w), -1, 4) != 0).sum(axis=2) == 2).all()),
    ("pattern=block,block=4x2,sparsity=0.6",
     lambda w: (lambda z: set(np.unique(z)) <= {0, 8} and (z == 8).sum() == round(0.6 * z.size))(
         (w == 0).reshape(len(w) // 4, 4, -1, 2).sum(axis=(1, 3)))),
])
def test_patterns_are_exact_and_the_sparse_kernels_match_the_reference(method, pattern, check):
    graph, data = linear_chain(160, [40, 24], (5,)), correlated(samples=3, rows=5, k=160)
    dense = prune(graph, f"prune{{method={method},{pattern},skip=none,kernels=dense}}", data)
    for w in weights(dense):
        assert check(w)
    sparse = prune(graph, f"prune{{method={method},{pattern},skip=none,kernels=sparse}}", data)
    assert sum(n.op in SPARSE_MATMULS for n in sparse.nodes) == 2
    x = data[0][0]
    np.testing.assert_allclose(run_reference(sparse, x)[0], run_reference(dense, x)[0], rtol=1e-5, atol=1e-5)


def test_compiled_sparsegpt_model_matches_the_reference():
    graph, data = linear_chain(K, [64, 32], (4,)), correlated(samples=4, rows=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SparsityWarning)
        cm = leptonc.compile(graph, data[0], passes="prune{method=sparsegpt,pattern=nm,n=2,m=4,skip=none,"
                             "kernels=sparse}", calibration=data, quiet=True, cache=False)
    pruned = prune(graph, "prune{method=sparsegpt,pattern=nm,n=2,m=4,skip=none,kernels=dense}", data)
    x = data[1][0]
    np.testing.assert_allclose(cm(x), run_reference(pruned, x)[0], rtol=1e-4, atol=1e-4)


def test_sequential_false_prunes_every_layer_on_the_unpruned_activations():
    graph, data = linear_chain(K, [48, 32], (32,)), correlated()
    hidden = linear_layers(graph)[1].node.inputs[0]
    x2 = np.concatenate([acts[0] for acts in load_calibration(data, graph).observe(graph, [hidden])])
    passes = "prune{method=sparsegpt,sparsity=0.5,skip=none,kernels=dense,sequential=%s}"
    w1, w2 = weights(graph)
    at_once, in_turn = weights(prune(graph, passes % "false", data)), weights(prune(graph, passes % "true", data))
    np.testing.assert_array_equal(at_once[0], in_turn[0])        # (the first layer sees the same x either way)
    np.testing.assert_array_equal(at_once[1], sparsegpt(w2, x2.T.astype(np.float64) @ x2, Pattern("unstructured", 0.5)))
    assert not np.array_equal(at_once[1], in_turn[1])


@pytest.mark.parametrize("method", ["sparsegpt", "wanda", "magnitude"])
def test_a_layer_already_pruned_to_the_pattern_is_kept_as_it_is(method):
    graph, data = linear_chain(K, [32], (32,)), correlated()
    once = prune(graph, f"prune{{method={method},sparsity=0.5,skip=none,kernels=dense}}", data)
    (w,) = weights(once)
    w = np.where(w != 0, w * 1.1 + 0.01, 0).astype(np.float32)   # (fine-tuned with its mask fixed)
    name = linear_layers(once)[0].node.inputs[1].producer.attrs["name"]
    once.constants[name] = np.ascontiguousarray(w.T)
    (again,) = weights(prune(once, f"prune{{method={method},sparsity=0.5,skip=none,kernels=dense}}", data))
    np.testing.assert_array_equal(again, w)


def test_int8_layers_are_pruned_on_their_grid():
    graph, data = linear_chain(K, [32], (32,)), correlated()
    (w8,) = weights(run_pipeline(graph, "quantize{weights=int8}"))
    errors = {}
    for method in ("sparsegpt", "magnitude"):
        (layer,) = linear_layers(prune(graph, f"quantize{{weights=int8}},prune{{method={method},sparsity=0.5,"
                                              "skip=none,kernels=dense}", data))
        assert layer.stored.dtype == np.int8 and (layer.stored == 0).mean() >= 0.5  # (kept ones may round to 0)
        errors[method] = rel_error(data, w8, layer.effective)
    assert errors["sparsegpt"] < 0.8 * errors["magnitude"], errors


@pytest.mark.parametrize("passes, message", [
    ("prune{method=sparsegpt,sparsity=0.5}", "pass prune{method=sparsegpt} needs calibration data"),
    ("prune{method=wanda,pattern=nm}", "pass prune{method=wanda} needs calibration data"),
])
def test_missing_calibration_is_a_pass_error(passes, message):
    with pytest.raises(PassError, match=message.replace("{", r"\{").replace("}", r"\}")):
        run_pipeline(linear_chain(K, [32, 16], (4,)), passes)


@pytest.mark.parametrize("passes, message", [
    ("prune{method=nm,pattern=block}", "method=nm prunes nm; pattern=block is for sparsegpt and wanda"),
    ("prune{method=sparsegpt,scope=global}", "prunes each layer on its own"),
])
def test_option_errors(passes, message):
    graph, data = linear_chain(K, [32, 16], (4,)), correlated(samples=1, rows=4)
    with pytest.raises(PassError, match=message):
        prune(graph, passes, data)
