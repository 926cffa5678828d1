"""f16 and bf16 on the triton target, against the reference (on the GPU, else by Triton's interpreter, which
holds bf16 as raw 16-bit patterns): row extremes over negative values, attention with causal and padding masks
as the ONNX Attention op's decomposition gives it, and a q/k scale that rounds where it stands."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

pytest.importorskip("triton")
pytest.importorskip("torch")

import leptonc  # noqa: E402
from leptonc.ir import DType, Graph, TensorType  # noqa: E402

RNG = np.random.default_rng(3)
NP = {DType.f16: np.float16, DType.bf16: ml_dtypes.bfloat16}
ULPS = {DType.f16: 2.0 ** -10, DType.bf16: 2.0 ** -7}


@pytest.fixture(autouse=True)
def on_triton_device(triton_device):
    """The kernels run on the GPU where there is one, else through Triton's interpreter."""


def normal(dt: DType, *shape):
    return RNG.standard_normal(shape).astype(NP[dt])


def check(g: Graph, dt: DType, *inputs, ulps: float = 4):
    """The triton result within a few units in the last place of the reference's (exact where that is exact)."""
    ref = leptonc.run_reference(g, *inputs)
    cm = leptonc.compile(g, target="triton", quiet=True, cache=False)
    for a, b in zip(cm.run(*inputs), ref):
        assert a.dtype == b.dtype and a.shape == b.shape
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        assert not np.isnan(a64).any() and not np.isnan(b64).any()
        np.testing.assert_allclose(a64, b64, rtol=ulps * ULPS[dt], atol=ulps * ULPS[dt])
    return cm


@pytest.mark.parametrize("dt", [DType.f16, DType.bf16])
def test_row_extremes_and_their_positions_over_negative_values(dt):
    g = Graph("extremes")
    x = g.add_input("x", TensorType(dt, (5, 7)))
    g.set_outputs([g.add("reduce_max", x, axes=(1,), keepdims=True), g.add("reduce_min", x, axes=(1,), keepdims=True),
                   g.add("cast", g.add("argmax", x, axis=1, keepdims=True), dtype=dt)])
    xs = -np.abs(normal(dt, 5, 7)) - np.asarray(1, NP[dt])  # all negative: raw bit patterns order them backwards
    xs[1, 3] = -np.inf
    check(g, dt, xs, ulps=0)


def onnx_attention(dt: DType, causal: bool, scale: float, padded: bool, zero_empty_rows: bool = True) -> Graph:
    """What the ONNX Attention op imports to: q and k^T scaled by sqrt(scale), a bias of -inf (causal) or a
    padding mask, a softmax and a `where` that zeroes rows whose keys are all masked."""
    g = Graph("attention")
    q = g.add_input("q", TensorType(dt, (2, 3, 4, 8)))
    k = g.add_input("k", TensorType(dt, (2, 3, 6, 8)))
    v = g.add_input("v", TensorType(dt, (2, 3, 6, 8)))
    c = g.add_constant(np.array([np.sqrt(scale)], NP[dt]), "scale")
    s = g.add("matmul", g.add("mul", q, c), g.add("mul", g.add("transpose", k, perm=(0, 1, 3, 2)), c))
    bias = np.zeros((4, 6), NP[dt])
    if causal:
        bias[np.triu_indices(4, 1, 6)] = -np.inf
    if padded:
        bias[:, 5:] = -np.inf
    s = g.add("add", s, g.add_constant(bias, "bias"))
    m = g.add("reduce_max", s, axes=(3,), keepdims=True)
    e = g.add("exp", g.add("sub", s, m))
    p = g.add("div", e, g.add("reduce_sum", e, axes=(3,), keepdims=True))
    if zero_empty_rows:
        empty = g.add_constant(np.isinf(bias).all(axis=1, keepdims=True), "empty")
        p = g.add("where", empty, g.add_constant(np.zeros(1, NP[dt]), "zero"), p)
    g.set_outputs([g.add("matmul", p, v)])
    return g


@pytest.mark.parametrize("dt,causal,padded", [(DType.bf16, True, False), (DType.bf16, False, True),
                                              (DType.bf16, True, True), (DType.f16, True, False)])
def test_masked_attention_in_half_precision(dt, causal, padded):
    g = onnx_attention(dt, causal, 1 / np.sqrt(8), padded)
    check(g, dt, normal(dt, 2, 3, 4, 8), normal(dt, 2, 3, 6, 8), normal(dt, 2, 3, 6, 8))


@pytest.mark.parametrize("dt", [DType.f16, DType.bf16])
def test_half_scale_on_q_and_k_stays_before_the_matmul_unless_exact(dt):
    """(q * c) @ k rounds q * c in the half type; moved onto the scores it would round elsewhere, so the scale
    moves only when it is a power of two (exact either way)."""
    inputs = normal(dt, 2, 3, 4, 8), normal(dt, 2, 3, 6, 8), normal(dt, 2, 3, 6, 8)
    kept = check(onnx_attention(dt, False, 1 / np.sqrt(8), False), dt, *inputs)
    assert "mul" in kept.manifest["program"]["kernels"][0]["ops"][0]
    moved = check(onnx_attention(dt, False, 1 / 16, False), dt, *inputs)
    assert moved.manifest["program"]["kernels"][0]["kind"] == "matmul"


@pytest.mark.parametrize("dt", [DType.f16, DType.bf16])
def test_causal_attention_as_one_flash_kernel_in_half_precision(dt):
    g = onnx_attention(dt, True, 1 / 16, False, zero_empty_rows=False)
    cm = check(g, dt, normal(dt, 2, 3, 4, 8), normal(dt, 2, 3, 6, 8), normal(dt, 2, 3, 6, 8))
    assert [k["kind"] for k in cm.manifest["program"]["kernels"]] == ["attention"]
