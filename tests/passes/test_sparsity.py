"""The prune and sparsify passes: differential tests against the reference interpreter (prune within its
declared tolerance, sparsify exact), what each method zeros, skipped layers, the cost model's choice and its
warning, option errors, and the compile report."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch.nn.utils import prune as torch_prune

import leptonc
from leptonc.ir import sparse as S
from leptonc.ir.ops.sparse import SPARSE_MATMULS
from leptonc.passes import PassError, run_pipeline
from leptonc.passes.prune import removed_energy_bound
from leptonc.passes.sparse_layers import SparsityWarning, layer_table, linear_layers
from leptonc.passes.tolerance import tolerance_of
from leptonc.runtime.accuracy import format_accuracy, measure_accuracy, within
from leptonc.runtime.reference import run_reference
from tests.codegen.test_quantized import linear_chain
from tests.passes.test_differential import assert_same_outputs
from tests.passes.test_precision import zoo_graph

PRUNE_PASSES = ["prune{method=magnitude,sparsity=0.9}", "prune{method=magnitude,sparsity=0.7,scope=global}",
                "prune{method=nm,n=2,m=4}", "prune{method=nm,n=1,m=4,skip=none}",
                "prune{method=block,block=1x8,sparsity=0.9}", "prune{method=block,block=4x1,sparsity=0.8,skip=none}",
                "prune{method=block,block=2x2,sparsity=0.5,scope=global}"]


def _prune(graph, passes, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SparsityWarning)
        return run_pipeline(graph, passes, verify_each=True, **kw)


def _sparse_ops(graph) -> int:
    return sum(n.op in SPARSE_MATMULS for n in graph.nodes)


@pytest.mark.parametrize("passes", PRUNE_PASSES)
@pytest.mark.parametrize("model", ["mlp", "bert_small", "gpt2_small", "vit_small"])
def test_prune_within_declared_tolerance(model, passes):
    graph, inputs = zoo_graph(model)
    if "skip" not in passes:
        passes = passes.replace("}", ",skip=none}")  # the model zoo's MLP has only a first and a last layer
    pruned = _prune(graph, passes.replace("}", ",kernels=sparse}"))
    assert _sparse_ops(pruned) >= 1
    assert [v.type for v in pruned.outputs] == [v.type for v in graph.outputs]
    report = measure_accuracy(graph, lambda *xs: run_reference(pruned, *xs), tolerance_of(passes), inputs,
                              samples=3)
    assert within(report), format_accuracy(report)


def _weights(graph) -> dict[str, np.ndarray]:
    return {l.name: l.effective for l in linear_layers(graph)}


@pytest.mark.parametrize("passes, check", [
    ("prune{method=magnitude,sparsity=0.75,skip=none}", lambda w: np.isclose(1 - np.count_nonzero(w) / w.size, 0.75)),
    ("prune{method=nm,n=2,m=4,skip=none}",
     lambda w: np.all(np.count_nonzero(w.reshape(w.shape[0], -1, 4), axis=2) <= 2)),
    ("prune{method=block,block=4x8,sparsity=0.5,skip=none}",
     lambda w: np.all(np.isin(np.count_nonzero(w.reshape(w.shape[0] // 4, 4, -1, 8), axis=(1, 3)), [0, 32]))),
])
def test_what_each_method_zeros(passes, check):
    """Exact sparsity, the n:m pattern, whole blocks; the kept weights are the original ones and carry
    at least the energy the tolerance's bound assumes."""
    graph = linear_chain(64, [64, 64, 32], (2,))
    before = _weights(graph)
    after = _weights(_prune(graph, passes.replace("}", ",kernels=dense}")))
    method = passes.split("method=")[1].split(",")[0]
    sparsity = float(passes.split("sparsity=")[1].split(",")[0].rstrip("}")) if "sparsity" in passes else 0.0
    for name, w in after.items():
        assert check(w), name
        kept = w != 0
        np.testing.assert_array_equal(w[kept], before[name][kept])
        removed = float(np.sum(before[name][~kept] ** 2) / np.sum(before[name] ** 2))
        assert removed <= removed_energy_bound(method, sparsity, 2, 4) + 1e-6


def test_global_scope_prunes_the_fraction_over_all_layers():
    graph = linear_chain(64, [64, 64], (2,))
    for i, name in enumerate(["w0", "w1"]):  # layer w1 has smaller weights: a global threshold takes more of it
        graph.constants[name] = (graph.constants[name] * (1.0 if i == 0 else 0.2)).astype(np.float32)
    after = _weights(_prune(graph, "prune{method=magnitude,sparsity=0.5,scope=global,skip=none,kernels=dense}"))
    zeros = {name: 1 - np.count_nonzero(w) / w.size for name, w in after.items()}
    assert zeros["w1"] > 0.8 > 0.2 > zeros["w0"]
    assert np.isclose(np.mean(list(zeros.values())), 0.5)


def test_skip_names_layers_and_first_last_are_skipped_by_default():
    graph = linear_chain(64, [64, 64, 64, 32], (2,))
    pruned = _weights(_prune(graph, "prune{sparsity=0.5,kernels=dense}"))
    assert [n for n, w in pruned.items() if np.count_nonzero(w) < w.size] == ["w1", "w2"]
    pruned = _weights(_prune(graph, 'prune{sparsity=0.5,kernels=dense,skip="w1,w3"}'))
    assert [n for n, w in pruned.items() if np.count_nonzero(w) < w.size] == ["w0", "w2"]


@pytest.mark.parametrize("passes, message", [
    ("prune{sparsity=1.5}", r"sparsity must be in \[0, 1\)"),
    ("prune{method=nm,n=5,m=4}", "n:m needs 1 <= n <= m"),
    ("prune{method=block,block=8}", "block='8' is not ROWSxCOLS"),
    ("prune{method=block,block=0x8}", "must have positive sides"),
    ("prune{skip=nosuchlayer}", r"skip='nosuchlayer' names no linear layer \(layers: w0, w1"),
    ("prune{method=dense}", "is not one of magnitude, nm, block"),
    ("prune{rows=-1}", "rows must be 0"),
    ("sparsify{min_sparsity=2}", r"min_sparsity must be in \[0, 1\]"),
])
def test_bad_options_are_clear_errors(passes, message):
    with pytest.raises(PassError, match=message):
        run_pipeline(linear_chain(64, [64, 32], (2,)), passes)


def test_a_shape_that_does_not_divide_is_left_alone_with_a_warning():
    graph = linear_chain(60, [36, 36, 8], (2,))
    with pytest.warns(SparsityWarning, match=r"layer w1 is not pruned: \[36, 36\] does not divide into 1x8 blocks"):
        pruned = run_pipeline(graph, "prune{method=block,block=1x8,sparsity=0.5}")
    assert pruned.op_counts() == graph.op_counts()


def test_cost_model_keeps_dense_where_sparse_is_not_faster_and_warns_once_per_layer():
    graph = linear_chain(512, [512, 512, 512], (64,))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pruned = run_pipeline(graph, "prune{method=magnitude,sparsity=0.3}")
    messages = [str(w.message) for w in caught if issubclass(w.category, SparsityWarning)]
    assert len(messages) == 1 and "layer w1 keeps its dense kernel: csr at 30% zeros" in messages[0]
    assert messages[0].endswith("for 64 row(s)")
    assert _sparse_ops(pruned) == 0 and np.count_nonzero(pruned.constants["w1"]) == 512 * 512 - round(0.3 * 512 * 512)
    fast = _prune(graph, "prune{method=block,block=8x1,sparsity=0.9}")
    assert _sparse_ops(fast) == 1  # 90% in 8x1 blocks: predicted several times faster


def _already_sparse_graph():
    graph = linear_chain(128, [128, 128, 64], (3,))
    rng = np.random.default_rng(5)
    for name, block in (("w0", (8, 1)), ("w1", (1, 1)), ("w2", None)):
        w = graph.constants[name].T
        if block is None:  # 2:4
            keep = np.argsort(rng.random((w.shape[0], w.shape[1] // 4, 4)), axis=2)[:, :, :2]
            mask = np.zeros((w.shape[0], w.shape[1] // 4, 4), bool)
            np.put_along_axis(mask, keep, True, axis=2)
            mask = mask.reshape(w.shape)
        else:
            mask = np.kron(rng.random((w.shape[0] // block[0], w.shape[1] // block[1])) < 0.2, np.ones(block)) > 0
        graph.constants[name] = np.ascontiguousarray((w * mask).T)
    return graph


def test_sparsify_is_exact():
    """Every weight value is kept (the sparse weight expands to the dense one bit for bit); the outputs
    differ at most by the order of a summation, as for the other exact passes."""
    graph = _already_sparse_graph()
    sparse = run_pipeline(graph, "sparsify{kernels=sparse}", verify_each=True)
    assert [r["format"] for r in layer_table(sparse)] == ["bsr 8x1", "csr", "2:4"]
    for node, name in zip([n for n in sparse.nodes if n.op in SPARSE_MATMULS], ["w0", "w1", "w2"]):
        arrays = [sparse.constant_of(v) for v in node.inputs[1:]]
        if node.op == "matmul_nm":
            dense = S.nm_to_dense(*arrays, 2, 4, 128)
        else:
            dense = S.bsr_to_dense(arrays[0].reshape(len(arrays[1]), *(arrays[0].shape[1:] or (1, 1))), *arrays[1:],
                                   128)
        np.testing.assert_array_equal(dense, graph.constants[name].T)
    assert_same_outputs(graph, sparse, 1e-6)
    x = np.random.default_rng(6).standard_normal((3, 128)).astype(np.float32)
    cm = leptonc.compile(sparse, quiet=True)
    np.testing.assert_allclose(cm(x), run_reference(graph, x)[0], rtol=1e-5, atol=1e-5)


def test_sparsify_leaves_dense_layers_alone():
    graph = linear_chain(64, [64], (2,))
    assert not _sparse_ops(run_pipeline(graph, "sparsify{kernels=sparse}"))


def test_sparsify_finds_torch_pruned_weights():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 128)).eval()
    torch_prune.l1_unstructured(model[0], "weight", amount=0.85)
    torch_prune.ln_structured(model[2], "weight", amount=0.75, n=2, dim=0)  # whole outputs
    x = torch.randn(2, 256)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch.export on the reparametrized module
        cm = leptonc.compile(model, (x,), passes="sparsify", quiet=True)
    graph = leptonc.parse_ir(cm.ir_text, constants=cm.weights)
    assert _sparse_ops(graph) == 2
    np.testing.assert_allclose(cm(x.numpy()), model(x).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_int8_layers_are_pruned_and_stay_int8():
    graph = linear_chain(128, [128, 128, 64], (1,))
    pruned = _prune(graph, "quantize{weights=int8},prune{method=block,block=1x8,sparsity=0.8,kernels=sparse}")
    row = [r for r in layer_table(pruned) if r["format"].startswith("bsr")]
    assert len(row) == 1 and row[0]["format"] == "bsr 1x8 i8" and row[0]["sparsity"] >= 0.8
    x = np.random.default_rng(7).standard_normal((1, 128)).astype(np.float32)
    cm = leptonc.compile(pruned, quiet=True)
    ref = run_reference(pruned, x)[0]
    assert np.max(np.abs(cm(x) - ref)) <= 1e-4 * max(1.0, float(np.max(np.abs(ref))))


def test_compile_report_lists_each_layer_with_its_sparsity():
    graph = linear_chain(128, [128, 128, 64], (4,))
    x = np.ones((4, 128), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SparsityWarning)
        cm = leptonc.compile(graph, (x,), passes="prune{method=block,block=8x1,sparsity=0.9,kernels=sparse}",
                             quiet=True)
    report = cm.manifest["accuracy"]
    assert report["within_tolerance"]
    layers = {r["name"]: r for r in report["layers"]}
    assert layers["w1"]["format"] == "bsr 8x1" and abs(layers["w1"]["sparsity"] - 0.9) < 1e-3
    assert layers["w0"]["format"] == "dense f32" and layers["w0"]["sparsity"] == 0.0
    text = format_accuracy(report)
    assert "bsr 8x1" in text and "90.0%" in text


def test_nm_pattern_is_kept_in_values_and_meta():
    graph = linear_chain(64, [32, 16], (1,))
    pruned = _prune(graph, "prune{method=nm,n=2,m=4,skip=none,kernels=sparse}")
    node = next(n for n in pruned.nodes if n.op == "matmul_nm")
    values, meta = (pruned.constant_of(v) for v in node.inputs[1:3])
    dense = S.nm_to_dense(values, meta, 2, 4, 64)
    np.testing.assert_array_equal(dense, _weights(_prune(graph, "prune{method=nm,skip=none,kernels=dense}"))["w0"])
