"""Fusion on the cpu target: which ops share a kernel, why the others do not, and what the C looks like
(kernel names, header comments, vectorized loops, memory shared between lifetimes)."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import leptonc
from leptonc.codegen.cpu import TARGET_PIPELINE
from leptonc.codegen.cpu.program import generate
from leptonc.ir import DType, Graph, TensorType
from leptonc.passes import run_pipeline
from tests.codegen.cpu_check import compile_and_check
from tests.random_graphs import graphs, random_inputs

RNG = np.random.default_rng(0)


def const(g, shape, name):
    return g.add_constant(RNG.standard_normal(shape).astype(np.float32), name)


def scalar(g, value, name):
    return g.add_constant(np.array(value, np.float32), name)


def softmax(g, x, axis=-1):
    m = g.add("reduce_max", x, axes=(axis,), keepdims=True)
    e = g.add("exp", g.add("sub", x, m))
    return g.add("div", e, g.add("reduce_sum", e, axes=(axis,), keepdims=True))


def layer_norm(g, x, width):
    mean = g.add("reduce_mean", x, axes=(-1,), keepdims=True)
    d = g.add("sub", x, mean)
    var = g.add("reduce_mean", g.add("mul", d, d), axes=(-1,), keepdims=True)
    y = g.add("div", d, g.add("sqrt", g.add("add", var, scalar(g, 1e-5, "eps"))))
    return g.add("add", g.add("mul", y, const(g, (width,), "ln.w")), const(g, (width,), "ln.b"))


def rms_norm(g, x, width):
    ms = g.add("reduce_mean", g.add("mul", x, x), axes=(-1,), keepdims=True)
    r = g.add("rsqrt", g.add("add", ms, scalar(g, 1e-6, "eps")))
    return g.add("mul", g.add("mul", x, r), const(g, (width,), "rms.w"))


def gelu(g, x):
    inner = g.add("erf", g.add("mul", x, scalar(g, 0.7071067811865476, "r2")))
    return g.add("mul", g.add("mul", x, scalar(g, 0.5, "half")), g.add("add", inner, scalar(g, 1.0, "one")))


def plan_of(g):
    return generate(run_pipeline(g, "default," + TARGET_PIPELINE))


def uses_row_buffers(program) -> bool:
    kernel = program.plan.kernels[0].name
    return "lep_scratch(" in program.source.split(f"static void {kernel}(")[1]


def kinds(program):
    return [(k.kind, sorted({n.op for n in k.nodes})) for k in program.plan.kernels]


@pytest.mark.parametrize("norm", [softmax, lambda g, x: layer_norm(g, x, 32), lambda g, x: rms_norm(g, x, 32)],
                         ids=["softmax", "layernorm", "rmsnorm"])
def test_row_reductions_are_one_kernel(norm):
    g = Graph("norm")
    x = g.add_input("x", TensorType(DType.f32, ("B", 7, 32)))
    g.set_outputs([norm(g, x)])
    program = plan_of(g)
    assert len(program.plan.kernels) == 1 and program.plan.kernels[0].kind == "loop"
    # norms recompute x - mean where they need it again; softmax keeps its exps in a row buffer
    assert uses_row_buffers(program) == (norm is softmax)
    compile_and_check(g, [RNG.standard_normal((3, 7, 32)).astype(np.float32)])


def test_a_cheap_row_value_read_by_two_later_stages_is_recomputed_in_each():
    """x - mean is read by the variance loop and again by the normalizing loop, after a second reduction
    over y = (x - mean) * w; each stage recomputes it from x and the row's mean."""
    g = Graph("twice")
    x = g.add_input("x", TensorType(DType.f32, ("B", 40)))
    d = g.add("sub", x, g.add("reduce_mean", x, axes=(-1,), keepdims=True))
    y = g.add("mul", d, const(g, (40,), "w"))
    s1 = g.add("reduce_sum", g.add("mul", d, d), axes=(-1,), keepdims=True)
    s2 = g.add("reduce_max", g.add("add", y, s1), axes=(-1,), keepdims=True)
    g.set_outputs([g.add("div", g.add("add", d, y), s2)])
    program = plan_of(g)
    assert len(program.plan.kernels) == 1 and not uses_row_buffers(program)
    compile_and_check(g, [RNG.standard_normal((5, 40)).astype(np.float32)])


def test_bias_gelu_and_residual_fuse_into_the_matmul_epilogue():
    g = Graph("ffn")
    x = g.add_input("x", TensorType(DType.f32, ("B", 16)))
    h = gelu(g, g.add("add", g.add("matmul", x, const(g, (16, 64), "w1")), const(g, (64,), "b1")))
    y = g.add("add", g.add("add", g.add("matmul", h, const(g, (64, 16), "w2")), const(g, (16,), "b2")), x)
    g.set_outputs([y])
    program = plan_of(g)
    assert [k.kind for k in program.plan.kernels] == ["matmul", "matmul"]
    assert program.plan.kernels[0].name.startswith("k0_matmul_gelu")
    assert {"erf", "add", "mul"} <= {n.op for n in program.plan.kernels[0].nodes}
    pairs = [(p.producer.op, p.consumer.op, p.reason) for p in program.plan.unfused]
    assert pairs == [("mul", "matmul", "matmul starts its own kernel (its operands come from memory)")]
    # the epilogue writes over the matmul's own buffer: one intermediate buffer for h
    assert len(program.meta["buffers"]) == 1
    compile_and_check(g, [RNG.standard_normal((5, 16)).astype(np.float32)])


def test_conv_bias_relu_is_one_kernel():
    g = Graph("convnet")
    x = g.add_input("x", TensorType(DType.f32, ("N", 3, 8, 8)))
    y = g.add("conv", x, const(g, (4, 3, 3, 3), "w"), pads=(1, 1, 1, 1))
    y = g.add("relu", g.add("add", y, const(g, (1, 4, 1, 1), "b")))
    g.set_outputs([g.add("max_pool", y, kernel=(2, 2), strides=(2, 2))])
    program = plan_of(g)
    # the bias is the conv's own operand (canonicalize folds the add into it) or an epilogue add; conv and
    # pooling run channels-last, the conv reading its 3-channel input through the transpose in (absorbed), one
    # transpose out
    (kind, ops), pool, back = kinds(program)
    assert kind == "conv" and "relu" in ops and pool == ("op", ["max_pool"]) and back == ("op", ["transpose"])
    assert [n.op for n in program.plan.kernels[0].absorbed] == ["transpose"]
    assert [p.reason for p in program.plan.unfused] == [
        "max_pool is not an elementwise op or a reduction over trailing axes",
        "transpose is not an elementwise op or a reduction over trailing axes"]
    compile_and_check(g, [RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)])


def test_unfused_pairs_have_reasons_and_kernels_have_headers():
    g = Graph("attn")
    q = g.add_input("q", TensorType(DType.f32, ("B", 4, 8, 16)))
    k = g.add_input("k", TensorType(DType.f32, ("B", 4, 8, 16)))
    s = g.add("mul", g.add("matmul", q, g.add("transpose", k, perm=(0, 1, 3, 2))), scalar(g, 0.25, "scale"))
    p = softmax(g, s)
    g.set_outputs([g.add("matmul", p, q), p])  # the probabilities are an output: no attention kernel
    program = plan_of(g)
    report = program.plan.report()
    assert [kk.kind for kk in program.plan.kernels] == ["matmul", "loop", "matmul"]
    assert program.plan.kernels[0].absorbed  # k's transpose is read by BLAS as a transposed operand
    assert all(p.reason for p in program.plan.unfused) and "softmax" in report
    for kk in program.plan.kernels:
        assert f"static void {kk.name}(" in program.source
        assert f"/* {kk.name}: {kk.kind} kernel; fused IR ops:" in program.source
    xs = [RNG.standard_normal((2, 4, 8, 16)).astype(np.float32) for _ in range(2)]
    compile_and_check(g, xs)


def test_arena_is_smaller_than_the_intermediates():
    g = Graph("chain")
    x = g.add_input("x", TensorType(DType.f32, (64, 64)))
    h = x
    for i in range(6):
        h = g.add("relu", g.add("matmul", h, const(g, (64, 64), f"w{i}")))
    g.set_outputs([h])
    cm = compile_and_check(g, [RNG.standard_normal((64, 64)).astype(np.float32)])
    arena, total = cm.memory_report()
    # 5 matmul results and 5 relu results (each written over its matmul), in two alternating buffers
    assert total == 10 * 64 * 64 * 4 and arena == 2 * 64 * 64 * 4


def test_repeated_layers_share_one_function():
    """Kernels that compile to the same code (a model's repeated layers) call one C function; each is
    still its own kernel for the report and the profile."""
    g = Graph("layers")
    h = g.add_input("x", TensorType(DType.f32, ("B", 32)))
    for i in range(4):
        h = layer_norm(g, g.add("relu", g.add("matmul", h, const(g, (32, 32), f"w{i}"))), 32)
    g.set_outputs([h])
    program = plan_of(g)
    assert len(program.plan.kernels) == 8
    defined = [kk.name for kk in program.plan.kernels if f"static void {kk.name}(" in program.source]
    assert len(defined) == 2
    assert "also runs kernels" in program.source
    cm = compile_and_check(g, [RNG.standard_normal((3, 32)).astype(np.float32)])
    assert len(cm.profile(RNG.standard_normal((3, 32)).astype(np.float32))) == 8


def test_loops_vectorize():
    """The generated elementwise and reduction loops compile to packed AVX instructions and call the
    vector variants of libm functions."""
    objdump = shutil.which("objdump")
    if objdump is None:
        pytest.skip("objdump is not installed")
    g = Graph("vec")
    x = g.add_input("x", TensorType(DType.f32, ("B", 1024)))
    g.set_outputs([softmax(g, g.add("mul", g.add("add", x, scalar(g, 1.0, "one")), x))])
    cm = leptonc.compile(g, quiet=True)
    text = subprocess.run([objdump, "-d", "-T", str(cm.executor.lib._name)], capture_output=True,
                          text=True).stdout
    packed = [line for line in text.splitlines()
              if any(op in line for op in ("vaddps", "vmulps", "vmaxps", "vfmadd", "vdivps"))
              and ("%ymm" in line or "%zmm" in line)]
    assert len(packed) > 5, "no packed AVX arithmetic in the generated library"
    assert "_ZGV" in text and "expf" in text, "exp did not vectorize (no libmvec call)"


def test_epilogue_fuses_across_the_reshape_torch_puts_after_a_linear():
    """Linear on [B, S, H] is exported as reshape -> matmul -> reshape; bias, GELU and residual add
    written on the 3-D view still join the matmul, and layer norm runs on the flat rows."""
    g = Graph("linear3d")
    x = g.add_input("x", TensorType(DType.f32, ("B", 8, 16)))
    flat = g.add("reshape", x, shape=("8*B", 16))
    y = g.add("reshape", g.add("matmul", flat, const(g, (16, 16), "w")), shape=("B", 8, 16))
    y = g.add("add", gelu(g, g.add("add", y, const(g, (16,), "b"))), x)
    g.set_outputs([layer_norm(g, y, 16)])
    program = plan_of(g)
    assert [k.kind for k in program.plan.kernels] == ["matmul", "loop"]
    assert {"erf", "add"} <= {n.op for n in program.plan.kernels[0].nodes}
    compile_and_check(g, [RNG.standard_normal((3, 8, 16)).astype(np.float32)])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=graphs())
def test_fuse_pass_keeps_outputs(graph):
    after = run_pipeline(graph, "fuse", verify_each=True)
    inputs = random_inputs(graph, seed=0)
    try:
        want = leptonc.run_reference(graph, *inputs)
    except leptonc.LeptoncError:
        return
    got = leptonc.run_reference(after, *inputs)
    for w, a in zip(want, got):
        np.testing.assert_allclose(a, w, rtol=1e-5, atol=1e-5, equal_nan=True)
