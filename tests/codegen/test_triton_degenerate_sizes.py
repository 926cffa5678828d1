"""Each family of Triton kernel at degenerate sizes, against the reference (on the GPU, else by Triton's
interpreter): attention over one token (a decode step, MobileViT's patch attention) and other short
sequences, one key for many queries, and matmuls, row reductions, softmax and layer-norm rows, gathers and
convolutions, pooling and data movement with one row, one column, a 1x1 output or an empty batch."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("triton")
pytest.importorskip("torch")

from leptonc.ir import DType, Graph, TensorType  # noqa: E402
from tests.codegen.test_cpu_attention import attention, fused_qkv_graph, self_attention_graph  # noqa: E402
from tests.codegen.test_triton_ops import check, normal  # noqa: E402


@pytest.fixture(autouse=True)
def on_triton_device(triton_device):
    """The kernels run on the GPU where there is one, else through Triton's interpreter."""


def kinds(cm) -> list[str]:
    return [k["kind"] for k in cm.manifest["program"]["kernels"]]


@pytest.mark.parametrize("seq", [1, 2, 3, 17])
def test_self_attention_over_any_number_of_tokens(seq):
    """Heads split from [B, S, H * W] and merged back by transposes the kernel reads and writes in place."""
    cm = check(self_attention_graph(2, seq, 2, 32), *(normal(2, seq, 64) for _ in range(3)))
    assert kinds(cm) == ["attention"]


@pytest.mark.parametrize("seq", [1, 3])
def test_causal_attention_on_a_fused_qkv_projection(seq):
    cm = check(fused_qkv_graph(1, seq, 2, 16), normal(1, seq, 96))
    assert kinds(cm) == ["attention"]


@pytest.mark.parametrize("queries,keys", [(5, 1), (1, 6)])
def test_one_key_for_many_queries_and_one_query_for_many_keys(queries, keys):
    """A decode step (one query over the cache) and its converse, without batch dims and with them."""
    g = Graph("cross")
    q = g.add_input("q", TensorType(DType.f32, (2, queries, 16)))
    k = g.add_input("k", TensorType(DType.f32, (2, keys, 16)))
    v = g.add_input("v", TensorType(DType.f32, (2, keys, 24)))
    q2, k2, v2 = (g.add_input(n, TensorType(DType.f32, (rows, 16))) for n, rows in
                  (("q2", queries), ("k2", keys), ("v2", keys)))
    g.set_outputs([attention(g, q, k, v, 0.25), attention(g, q2, k2, v2, 0.25)])
    cm = check(g, normal(2, queries, 16), normal(2, keys, 16), normal(2, keys, 24), normal(queries, 16),
               normal(keys, 16), normal(keys, 16))
    assert kinds(cm) == ["attention", "attention"]


@pytest.mark.parametrize("m,k,n", [(1, 8, 5), (6, 8, 1), (3, 1, 4), (1, 1, 1)])
def test_matmul_with_one_row_one_column_or_one_term(m, k, n):
    g = Graph("mm")
    x = g.add_input("x", TensorType(DType.f32, (2, m, k)))
    w = g.add_constant(normal(k, n), "w")
    g.set_outputs([g.add("relu", g.add("add", g.add("matmul", x, w), g.add_constant(normal(n), "b")))])
    check(g, normal(2, m, k))


def test_matmul_over_an_empty_batch():
    g = Graph("mm0")
    x = g.add_input("x", TensorType(DType.f32, (0, 3, 8)))
    g.set_outputs([g.add("matmul", x, g.add_constant(normal(8, 5), "w"))])
    (y,) = check(g, normal(0, 3, 8)).run(normal(0, 3, 8))
    assert y.shape == (0, 3, 5)


@pytest.mark.parametrize("shape", [(1, 9), (6, 1), (1, 1), (0, 9)])
def test_reductions_softmax_and_layer_norm_rows(shape):
    """Row kernels with one row, rows of one element, and no rows at all."""
    g = Graph("rows")
    x = g.add_input("x", TensorType(DType.f32, shape))
    e = g.add("exp", g.add("sub", x, g.add("reduce_max", x, axes=(1,), keepdims=True)))
    softmax = g.add("div", e, g.add("reduce_sum", e, axes=(1,), keepdims=True))
    centred = g.add("sub", x, g.add("reduce_mean", x, axes=(1,), keepdims=True))
    var = g.add("reduce_mean", g.add("mul", centred, centred), axes=(1,), keepdims=True)
    eps = g.add_constant(np.array(1e-5, np.float32), "eps")
    norm = g.add("mul", centred, g.add("rsqrt", g.add("add", var, eps)))
    g.set_outputs([softmax, norm, g.add("reduce_min", x, axes=(1,), keepdims=False),
                   g.add("argmax", x, axis=1, keepdims=False)])
    check(g, normal(*shape))


@pytest.mark.parametrize("shape,idx", [((1, 5), [[0]]), ((4, 1), [[0, 0, 0]]), ((4, 5), np.zeros((0, 2)))])
def test_gather_of_one_row_one_column_or_no_indices(shape, idx):
    g = Graph("gather")
    x = g.add_input("x", TensorType(DType.f32, shape))
    i = g.add_input("i", TensorType(DType.i64, np.shape(idx)))
    g.set_outputs([g.add("gather", x, i, axis=0), g.add("gather", x, g.add("mul", i, i), axis=1)
                   if shape[1] > 0 else x])
    check(g, normal(*shape), np.asarray(idx, np.int64))


@pytest.mark.parametrize("batch,cin,cout,hw,kernel", [(2, 3, 4, 3, 3), (1, 3, 4, 5, 1), (2, 3, 4, 1, 1), (1, 1, 1, 1, 1),
                                                   (0, 3, 4, 4, 3)])
def test_conv_to_a_1x1_output_a_1x1_kernel_one_channel_and_an_empty_batch(batch, cin, cout, hw, kernel):
    g = Graph("conv")
    x = g.add_input("x", TensorType(DType.f32, (batch, cin, hw, hw)))
    w = g.add_constant(normal(cout, cin, kernel, kernel), "w")
    y = g.add("conv", x, w, g.add_constant(normal(cout), "b"), strides=(1, 1), dilations=(1, 1), pads=(0, 0, 0, 0),
              group=1)
    g.set_outputs([g.add("relu", y)])
    check(g, normal(batch, cin, hw, hw))


@pytest.mark.parametrize("batch,hw", [(2, 3), (0, 4)])
def test_pooling_to_a_1x1_output_and_over_an_empty_batch(batch, hw):
    g = Graph("pool")
    x = g.add_input("x", TensorType(DType.f32, (batch, 3, hw, hw)))
    g.set_outputs([g.add("max_pool", x, kernel=(3, 3), strides=(1, 1), pads=(0, 0, 0, 0)),
                   g.add("avg_pool", x, kernel=(3, 3), strides=(1, 1), pads=(0, 0, 0, 0), count_include_pad=False)])
    check(g, normal(batch, 3, hw, hw))


@pytest.mark.parametrize("shape", [(1, 1), (0, 4)])
def test_data_movement_of_one_element_and_of_none(shape):
    g = Graph("moves")
    x = g.add_input("x", TensorType(DType.f32, shape))
    g.set_outputs([g.add("cumsum", x, axis=1), g.add("concat", x, g.add("neg", x), axis=0),
                   g.add("transpose", x, perm=(1, 0)), g.add("tile", x, repeats=(2, 3))])
    check(g, normal(*shape))


def test_attention_over_an_empty_batch_and_over_no_queries():
    g = Graph("empty")
    q, k, v = (g.add_input(n, TensorType(DType.f32, (0, 3, 16))) for n in "qkv")
    q0 = g.add_input("q0", TensorType(DType.f32, (2, 0, 16)))
    k4, v4 = (g.add_input(n, TensorType(DType.f32, (2, 4, 16))) for n in ("k4", "v4"))
    g.set_outputs([attention(g, q, k, v, 0.25), attention(g, q0, k4, v4, 0.25)])
    cm = check(g, *(normal(0, 3, 16) for _ in range(3)), normal(2, 0, 16), normal(2, 4, 16), normal(2, 4, 16))
    assert kinds(cm) == ["attention", "attention"]
