"""prune on convolutions: the weight viewed as W [O, C / group * kernel], SparseGPT's Hessian from the im2col'd
inputs (re-derived here with plain loops), its reconstruction against magnitude's, exact block patterns
and groups, the sparse conv kernel against the reference, and convs=false."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import leptonc
from leptonc.ir import DType, Graph, TensorType
from leptonc.passes import run_pipeline
from leptonc.passes.calibration import calibrating, load_calibration
from leptonc.passes.obs_prune import Pattern, sparsegpt
from leptonc.passes.prune_conv import conv_layers
from leptonc.passes.sparse_layers import SparsityWarning
from leptonc.recover import layer_weight
from leptonc.runtime.reference import run_reference

C, O, KH, KW, H, W = 4, 8, 3, 3, 7, 6
PADS, STRIDES, GROUP = (1, 0, 1, 2), (1, 2), 2


def conv_graph(group=GROUP, o=O, pads=PADS, strides=STRIDES, seed=0) -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph("conv")
    x = g.add_input("x", TensorType(DType.f32, (3, C, H, W)))
    w = g.add_constant(rng.standard_normal((o, C // group, KH, KW)).astype(np.float32), "w")
    b = g.add_constant(rng.standard_normal(o).astype(np.float32), "b")
    g.set_outputs([g.add("relu", g.add("conv", x, w, b, strides=strides, pads=pads, group=group))])
    return g


def correlated_images(samples=6, seed=1) -> list[tuple[np.ndarray]]:
    """Images whose channels and neighbouring pixels are correlated, channels of unequal scales."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(samples):
        x = rng.standard_normal((3, C, H + 1, W + 1))
        x = x[:, :, 1:, 1:] + 0.8 * x[:, :, :-1, :-1]                     # neighbouring pixels
        x = np.einsum("nchw,cd->ndhw", x, np.eye(C) + 0.5)                  # channels mixed
        out.append(((x * np.exp(np.linspace(-2, 2, C))[None, :, None, None]).astype(np.float32),))
    return out


def prune(graph, passes, data):
    with warnings.catch_warnings(), calibrating(load_calibration(data, graph)):
        warnings.simplefilter("ignore", SparsityWarning)
        return run_pipeline(graph, passes, verify_each=True)


def im2col(x: np.ndarray, group: int) -> list[np.ndarray]:
    """Per group, one row per (image, output pixel): the window's inputs in (channel, kh, kw) order."""
    pt, pl, pb, pr = PADS
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oh, ow = (H + pt + pb - KH) // STRIDES[0] + 1, (W + pl + pr - KW) // STRIDES[1] + 1
    cg = C // group
    groups = []
    for g in range(group):
        rows = []
        for n in range(x.shape[0]):
            for i in range(oh):
                for j in range(ow):
                    r, c = i * STRIDES[0], j * STRIDES[1]
                    rows.append(xp[n, g * cg:(g + 1) * cg, r:r + KH, c:c + KW].reshape(-1))
        groups.append(np.array(rows))
    return groups


def conv_weight(graph) -> np.ndarray:
    """The conv's W [O, C / group * kernel], dense or conv_bsr."""
    node = next(n for n in graph.nodes if n.op in ("conv", "conv_bsr"))
    return layer_weight(graph, node) if node.op == "conv_bsr" else \
        graph.constant_of(node.inputs[1]).reshape(O, -1)


def test_sparsegpt_on_a_conv_is_the_obs_update_on_its_im2col_hessian_and_beats_magnitude():
    graph, data = conv_graph(), correlated_images()
    w = conv_layers(graph)[0].stored.astype(np.float64)
    cols = [np.concatenate(parts) for parts in zip(*(im2col(s[0], GROUP) for s in data))]
    pruned = conv_weight(prune(graph, "prune{method=sparsegpt,sparsity=0.5,skip=none,kernels=dense}", data))
    og = O // GROUP
    want = np.concatenate([sparsegpt(w[g * og:(g + 1) * og].astype(np.float32), cols[g].T @ cols[g],
                                     Pattern("unstructured", 0.5)) for g in range(GROUP)])
    np.testing.assert_allclose(pruned, want, rtol=1e-5, atol=1e-6)
    magnitude = conv_weight(prune(graph, "prune{method=magnitude,sparsity=0.5,skip=none,kernels=dense}", data))
    assert (pruned == 0).mean() == 0.5 and (magnitude == 0).mean() == 0.5

    def error(wp):   # the conv's output error over the calibration data, from the im2col rows
        return sum(np.linalg.norm(x @ (w - wp)[g * og:(g + 1) * og].T) ** 2 for g, x in enumerate(cols))

    assert error(pruned) < 0.7 * error(magnitude), (error(pruned), error(magnitude))


@pytest.mark.parametrize("passes", [
    "prune{method=block,block=1x6,sparsity=0.75,skip=none,kernels=sparse}",
    "prune{method=sparsegpt,pattern=block,block=2x3,sparsity=0.5,skip=none,kernels=sparse}",
    "prune{method=wanda,pattern=nm,n=1,m=3,skip=none,kernels=sparse}",
    "prune{method=block,block=4x1,sparsity=0.5,skip=none,kernels=sparse}",
])
def test_pruned_conv_runs_on_the_sparse_conv_kernel_as_the_reference(passes):
    graph, data = conv_graph(), correlated_images()
    pruned = prune(graph, passes, data)
    assert [n.op for n in pruned.nodes if n.op.startswith("conv")] == ["conv_bsr"]
    w = conv_weight(pruned)
    if "block=1x6" in passes:     # whole blocks of W [O, C / group * kernel], the fraction exact
        blocks = (w.reshape(O, -1, 6) == 0).all(axis=2)
        assert blocks.mean() == 0.75
    x = correlated_images(1, seed=7)[0][0]
    cm = leptonc.compile(pruned, quiet=True, cache=False)
    np.testing.assert_allclose(cm(x), run_reference(pruned, x)[0], rtol=1e-4, atol=1e-4)


def test_blocks_across_groups_and_convs_false_leave_the_conv_dense():
    graph, data = conv_graph(), correlated_images()
    with pytest.warns(SparsityWarning, match="groups of 4 outputs do not divide into rows of 8"):
        with calibrating(load_calibration(data, graph)):
            pruned = run_pipeline(graph, "prune{method=block,block=8x1,sparsity=0.5,skip=none}")
    assert np.count_nonzero(conv_weight(pruned)) == O * C // GROUP * KH * KW
    pruned = prune(graph, "prune{method=magnitude,sparsity=0.5,skip=none,convs=false}", data)
    assert np.count_nonzero(conv_weight(pruned)) == O * C // GROUP * KH * KW


def test_the_layer_table_reports_pruned_convs():
    from leptonc.passes.sparse_layers import layer_table

    graph, data = conv_graph(group=1), correlated_images()
    rows = layer_table(prune(graph, "prune{method=block,block=1x4,sparsity=0.75,skip=none,kernels=sparse}", data))
    assert [(r["shape"], r["format"], r["sparsity"]) for r in rows] == [([O, C * KH * KW], "conv bsr 1x4", 0.75)]
    rows = layer_table(graph)
    assert [(r["shape"], r["format"], r["sparsity"]) for r in rows] == [([O, C * KH * KW], "dense f32", 0.0)]
