"""The cpu target's attention kernel (codegen/cpu/attention.py, attention.c) against the reference
interpreter: shapes odd and even, head dims 32/64/80 and others, masks (additive, boolean, causal, rows
masked entirely), heads read through the transposes that split them, cross attention, symbolic sequence
lengths, and the AVX2 and plain C paths beside AVX-512."""
from __future__ import annotations

import numpy as np
import pytest

import leptonc
from leptonc.codegen.cpu import build
from leptonc.codegen.cpu.program import generate
from leptonc.ir import DType, Graph, TensorType
from leptonc.passes import run_pipeline
from leptonc.passes.fusion import plan_fusion
from tests.codegen.cpu_check import assert_matches_reference, compile_and_check

RNG = np.random.default_rng(0)


def normal(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def attention(g: Graph, q, k, v, scale: float, mask=None, kind: str = "", k_transposed: bool = False):
    """softmax(q k^T * scale [+ mask | where(mask, ., -inf)]) v, decomposed as the frontends give it."""
    rank = len(q.shape)
    kt = k if k_transposed else g.add("transpose", k, perm=tuple(range(rank - 2)) + (rank - 1, rank - 2))
    s = g.add("mul", g.add("matmul", q, kt), g.add_constant(np.array(scale, np.float32), f"scale{len(g.nodes)}"))
    if kind == "add":
        s = g.add("add", s, mask)
    elif kind == "where":
        s = g.add("where", mask, s, g.add_constant(np.array(-np.inf, np.float32), f"minf{len(g.nodes)}"))
    m = g.add("reduce_max", s, axes=(rank - 1,), keepdims=True)
    e = g.add("exp", g.add("sub", s, m))
    return g.add("matmul", g.add("div", e, g.add("reduce_sum", e, axes=(rank - 1,), keepdims=True)), v)


def split_heads(g: Graph, x, heads: int, width: int):
    """[B, S, heads * width] -> [B, heads, S, width], as a view and a transpose the kernel reads as strides."""
    b, s = x.shape[0], x.shape[1]
    return g.add("transpose", g.add("reshape", x, shape=(b, s, heads, width)), perm=(0, 2, 1, 3))


def merge_heads(g: Graph, o, heads: int, width: int):
    b, s = o.shape[0], o.shape[2]
    return g.add("reshape", g.add("transpose", o, perm=(0, 2, 1, 3)), shape=(b, s, heads * width))


def self_attention_graph(batch, seq, heads, width, kind="", name="att"):
    """Self attention on [B, S, 3 * heads * width] projections, heads split and merged by transposes."""
    g = Graph(name)
    q, k, v = (g.add_input(n, TensorType(DType.f32, (batch, seq, heads * width))) for n in "qkv")
    mask = None
    if kind == "add":  # padding: an additive [B, 1, 1, S] mask
        mask = g.add_input("mask", TensorType(DType.f32, (batch, 1, 1, seq)))
    elif kind == "causal":
        mask = g.add_constant(np.tril(np.ones((seq, seq), bool))[None, None], "causal")
    o = attention(g, *(split_heads(g, x, heads, width) for x in (q, k, v)), width ** -0.5, mask,
                  "where" if kind == "causal" else kind)
    g.set_outputs([merge_heads(g, o, heads, width)])
    return g


def fused_qkv_graph(batch, seq, heads, width, q_also_elsewhere=False):
    """GPT-2's layout: one [B, S, 3 * heads * width] projection split into Q, K and V, causal."""
    g = Graph("qkv")
    x = g.add_input("qkv", TensorType(DType.f32, (batch, seq, 3 * heads * width)))
    q, k, v = g.add_node("split", [x], {"axis": 2, "sizes": (heads * width,) * 3}, names=["q", "k", "v"]).outputs
    mask = g.add_constant(np.tril(np.ones((seq, seq), bool))[None, None], "causal") if isinstance(seq, int) \
        else None
    o = attention(g, *(split_heads(g, y, heads, width) for y in (q, k, v)), width ** -0.5, mask,
                  "where" if mask is not None else "")
    out = merge_heads(g, o, heads, width)
    g.set_outputs([g.add("add", out, q)] if q_also_elsewhere else [out])
    return g


@pytest.mark.parametrize("batch,seq", [(2, 37), (1, "S")])
def test_the_split_of_a_fused_qkv_projection_is_read_in_place(batch, seq):
    g = fused_qkv_graph(batch, seq, 3, 32)
    plan = plan_fusion(run_pipeline(g, "default,fuse"))
    assert [k.kind for k in plan.kernels] == ["attention"]
    assert "split" in {n.op for n in plan.kernels[0].absorbed}
    cm = leptonc.compile(g, quiet=True)
    for s in ([37] if seq == 37 else [5, 40]):
        xs = [normal(batch, s, 3 * 96)]
        assert_matches_reference(cm.run(*xs), leptonc.run_reference(g, *xs))


def test_a_split_read_elsewhere_too_stays_a_copy():
    g = fused_qkv_graph(1, 9, 2, 16, q_also_elsewhere=True)
    assert kinds(g) == ["op", "attention", "loop"]
    compile_and_check(g, [normal(1, 9, 96)])


def padding_mask(batch, seq):
    mask = np.zeros((batch, 1, 1, seq), np.float32)
    for b in range(1, batch):
        mask[b, ..., seq - seq // (b + 2):] = -1e9
    return mask


def kinds(g: Graph) -> list[str]:
    return [k.kind for k in plan_fusion(run_pipeline(g, "default,fuse")).kernels]


@pytest.mark.parametrize("batch,seq,heads,width,kind", [
    (1, 7, 2, 32, ""),          # shorter than a vector of keys
    (2, 33, 3, 64, "add"),      # padding masks
    (1, 130, 2, 80, "causal"),  # head dim 80: five AVX-512 vectors
    (2, 300, 1, 64, "causal"),  # two key blocks: the online softmax rescales
    (1, 1, 4, 64, ""),          # one query, one key
])
def test_self_attention_matches_reference(batch, seq, heads, width, kind):
    g = self_attention_graph(batch, seq, heads, width, kind)
    assert "attention" in kinds(g)
    inputs = [normal(batch, seq, heads * width) for _ in range(3)]
    if kind == "add":
        inputs.append(padding_mask(batch, seq))
    compile_and_check(g, inputs)


def test_cross_attention_odd_widths_and_a_residual_epilogue():
    """Queries and keys of other lengths, head widths that are not whole vectors (the remainder paths),
    K given already transposed ([.., D, N], read in place), a boolean mask broadcast over queries, and an
    epilogue on the output with a second output read outside."""
    g = Graph("cross")
    q = g.add_input("q", TensorType(DType.f32, (2, 3, 17, 20)))
    kt = g.add_input("kt", TensorType(DType.f32, (2, 3, 20, 45)))
    v = g.add_input("v", TensorType(DType.f32, (2, 1, 45, 24)))  # one value head shared by all heads
    keep = g.add_input("keep", TensorType(DType.bool, (2, 1, 1, 45)))
    o = attention(g, q, kt, v, 0.3, keep, "where", k_transposed=True)
    r = g.add("add", o, g.add_constant(normal(24), "bias"))
    g.set_outputs([g.add("relu", r), o])
    assert kinds(g) == ["attention"]
    keep_v = RNG.random((2, 1, 1, 45)) > 0.3
    keep_v[..., 0] = True
    compile_and_check(g, [normal(2, 3, 17, 20), normal(2, 3, 20, 45), normal(2, 1, 45, 24), keep_v])


@pytest.mark.parametrize("shift,causal", [(0, True), (3, True), (-2, True), (None, False)])
def test_keys_a_causal_mask_hides_are_skipped(shift, causal):
    """where(mask, s, -inf) with a constant mask that hides key j from query i when j > i + shift: blocks of
    rows skip the keys none of them sees (rows that see no key are NaN, as in the reference); any other
    constant mask is applied in full."""
    seq = 300
    keep = RNG.random((seq, seq)) > 0.5 if shift is None else np.tril(np.ones((seq, seq), bool), shift)
    keep[:, 0] |= shift is None
    g = Graph("causal")
    q, k, v = (g.add_input(n, TensorType(DType.f32, (1, 2, seq, 32))) for n in "qkv")
    g.set_outputs([attention(g, q, k, v, 0.2, g.add_constant(keep[None, None], "keep"), "where")])
    cm = compile_and_check(g, [normal(1, 2, seq, 32) for _ in range(3)])
    assert ("i0 += LEP_ATT_BMC" in cm.artifact.source) == causal


def test_fully_masked_rows_are_nan_as_in_the_reference():
    g = Graph("masked")
    q, k, v = (g.add_input(n, TensorType(DType.f32, (1, 2, 9, 16))) for n in "qkv")
    keep = g.add_input("keep", TensorType(DType.bool, (1, 2, 9, 9)))
    g.set_outputs([attention(g, q, k, v, 0.25, keep, "where")])
    keep_v = RNG.random((1, 2, 9, 9)) > 0.5
    keep_v[0, 1, 4] = False  # one query sees no key
    cm = compile_and_check(g, [normal(1, 2, 9, 16) for _ in range(3)] + [keep_v])
    out = cm.run(*[normal(1, 2, 9, 16) for _ in range(3)], keep_v)[0]
    assert np.isnan(out[0, 1, 4]).all() and not np.isnan(np.delete(out[0, 1], 4, axis=0)).any()


def test_attention_without_batch_dims_and_in_three_dims():
    g = Graph("plain")
    q2, k2, v2 = (g.add_input(n, TensorType(DType.f32, (19, 32))) for n in ("q2", "k2", "v2"))
    q3, k3, v3 = (g.add_input(n, TensorType(DType.f32, (3, 11, 32))) for n in ("q3", "k3", "v3"))
    g.set_outputs([attention(g, q2, k2, v2, 0.2), attention(g, q3, k3, v3, 0.2)])
    assert kinds(g) == ["attention", "attention"]
    compile_and_check(g, [normal(19, 32) for _ in range(3)] + [normal(3, 11, 32) for _ in range(3)])


def test_symbolic_sequence_length_runs_at_any_size_from_one_library():
    g = Graph("dyn")
    q, k, v = (g.add_input(n, TensorType(DType.f32, ("B", "S", 2 * 64))) for n in "qkv")
    mask = g.add_input("mask", TensorType(DType.f32, ("B", 1, 1, "S")))
    o = attention(g, *(split_heads(g, x, 2, 64) for x in (q, k, v)), 0.125, mask, "add")
    g.set_outputs([merge_heads(g, o, 2, 64)])
    cm = leptonc.compile(g, quiet=True)
    library = cm.executor.lib
    for batch, seq in [(2, 5), (1, 270)]:
        xs = [normal(batch, seq, 128) for _ in range(3)] + [padding_mask(batch, seq)]
        assert_matches_reference(cm.run(*xs), leptonc.run_reference(g, *xs))
    assert cm.executor.lib is library


def test_the_plan_holds_one_attention_kernel_with_every_op():
    g = self_attention_graph(1, 16, 2, 32, "causal")
    program = generate(run_pipeline(g, "default,fuse"))
    att = [k for k in program.plan.kernels if k.kind == "attention"]
    assert len(att) == 1
    ops = {op.split(" = ")[1] for op in att[0].describe_ops()}
    assert {"transpose", "matmul", "mul", "where", "reduce_max", "sub", "exp", "reduce_sum", "div"} <= ops
    assert f"{att[0].name} [attention]" in program.plan.report()
    # neither scores nor probabilities ([1, 2, 16, 16]) get memory
    assert all(b["bytes"] != 2 * 16 * 16 * 4 for b in program.meta["buffers"])


@pytest.mark.parametrize("march", ["x86-64-v3", "x86-64"])
def test_avx2_and_plain_c_paths(monkeypatch, march):
    monkeypatch.setattr(build, "FLAGS", [f"-march={march}" if f == "-march=native" else f for f in build.FLAGS])
    g = self_attention_graph(2, 37, 2, 40, "add")
    compile_and_check(g, [normal(2, 37, 80) for _ in range(3)] + [padding_mask(2, 37)])
