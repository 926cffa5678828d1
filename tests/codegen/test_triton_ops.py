"""Each kind of Triton kernel on small hand-built graphs, run against the reference (on the GPU, else by
Triton's interpreter): batched matmul with absorbed transposes and epilogues, conv (groups, strides,
dilation, 1-D, depthwise), pooling, row reductions, the elementwise op table (float, integer, bool, f16),
data movement, and symbolic sizes."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("triton")
pytest.importorskip("torch")

import leptonc  # noqa: E402
from leptonc.codegen.triton.texpr import UnsupportedError  # noqa: E402
from leptonc.ir import DType, Graph, TensorType  # noqa: E402
from tests.codegen.cpu_check import assert_matches_reference  # noqa: E402
from tests.codegen.test_cpu_attention import fused_qkv_graph  # noqa: E402

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def on_triton_device(triton_device):
    """The kernels run on the GPU where there is one, else through Triton's interpreter."""


def check(graph: Graph, *inputs):
    ref = leptonc.run_reference(graph, *inputs)
    cm = leptonc.compile(graph, target="triton", quiet=True)
    assert_matches_reference(cm.run(*inputs), ref)
    return cm


def normal(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def test_batched_matmul_reads_transposes_as_strides_and_fuses_the_epilogue():
    g = Graph("bmm")
    a = g.add_input("a", TensorType(DType.f32, (2, 3, 20, 33)))
    b = g.add_input("b", TensorType(DType.f32, (3, 20, 17)))
    at = g.add("transpose", a, perm=(0, 1, 3, 2))              # [2, 3, 33, 20], read in place
    y = g.add("matmul", at, b)                                 # b broadcasts over the leading batch dim
    bias = g.add_constant(normal(17), "bias")
    g.set_outputs([g.add("relu", g.add("add", y, bias))])
    cm = check(g, normal(2, 3, 20, 33), normal(3, 20, 17))
    assert [k["kind"] for k in cm.manifest["program"]["kernels"]] == ["matmul"]


@pytest.mark.parametrize("group,stride,dilation,pads", [(1, (1, 1), (1, 1), (1, 1, 1, 1)),
                                                        (2, (2, 1), (1, 2), (0, 2, 1, 0)),
                                                        (4, (1, 1), (1, 1), (1, 1, 1, 1))])
def test_conv_with_bias_and_epilogue(group, stride, dilation, pads):
    g = Graph("conv")
    x = g.add_input("x", TensorType(DType.f32, (2, 4, 9, 8)))
    w = g.add_constant(normal(8, 4 // group, 3, 3), "w")
    bias = g.add_constant(normal(8), "b")
    y = g.add("conv", x, w, bias, strides=stride, dilations=dilation, pads=pads, group=group)
    g.set_outputs([g.add("sigmoid", y)])
    check(g, normal(2, 4, 9, 8))


def test_depthwise_and_1d_conv():
    g = Graph("conv")
    x = g.add_input("x", TensorType(DType.f32, (1, 6, 7, 7)))
    dw = g.add("conv", x, g.add_constant(normal(6, 1, 3, 3), "dw"), strides=(2, 2), pads=(1, 1, 1, 1), group=6)
    s = g.add_input("s", TensorType(DType.f32, (2, 3, 11)))
    c1 = g.add("conv", s, g.add_constant(normal(5, 3, 3), "w1"), strides=(2,), pads=(1, 0), dilations=(1,),
               group=1)
    g.set_outputs([dw, c1])
    check(g, normal(1, 6, 7, 7), normal(2, 3, 11))


@pytest.mark.parametrize("op,extra", [("max_pool", {"ceil_mode": True}), ("avg_pool", {"count_include_pad": True}),
                                      ("avg_pool", {"count_include_pad": False})])
def test_pooling(op, extra):
    g = Graph("pool")
    x = g.add_input("x", TensorType(DType.f32, (2, 3, 7, 6)))
    g.set_outputs([g.add(op, x, kernel=(3, 2), strides=(2, 2), pads=(1, 0, 1, 1), **extra)])
    check(g, normal(2, 3, 7, 6))


@pytest.mark.parametrize("op", ["reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod"])
def test_row_reductions_over_two_trailing_axes(op):
    g = Graph("reduce")
    x = g.add_input("x", TensorType(DType.f32, (3, 5, 7)))
    r = g.add(op, g.add("exp", x), axes=(1, 2), keepdims=True)
    g.set_outputs([g.add("sub", x, r), r])
    check(g, normal(3, 5, 7) * 0.3)


@pytest.mark.parametrize("op", ["argmax", "argmin"])
def test_arg_reductions(op):
    g = Graph("arg")
    x = g.add_input("x", TensorType(DType.f32, (4, 37)))
    g.set_outputs([g.add(op, x, axis=1, keepdims=False)])
    check(g, normal(4, 37))


def test_integer_reductions():
    g = Graph("ireduce")
    x = g.add_input("x", TensorType(DType.i32, (4, 6)))
    g.set_outputs([g.add("reduce_max", x, axes=(1,), keepdims=False),
                   g.add("reduce_sum", x, axes=(1,), keepdims=False)])
    check(g, RNG.integers(-50, 50, (4, 6)).astype(np.int32))


UNARY = ["exp", "log", "sqrt", "rsqrt", "reciprocal", "sin", "cos", "tan", "sinh", "cosh", "tanh", "asinh",
         "erf", "sigmoid", "floor", "ceil", "round", "neg", "abs", "sign", "relu", "isnan"]
BINARY = ["add", "sub", "mul", "div", "pow", "max", "min", "mod", "equal", "less", "greater_equal"]


def test_float_elementwise_table():
    g = Graph("float_ops")
    x = g.add_input("x", TensorType(DType.f32, (5, 40)))
    y = g.add_input("y", TensorType(DType.f32, (40,)))
    outs = [g.add(op, x) for op in UNARY] + [g.add(op, x, y) for op in BINARY]
    outs.append(g.add("where", g.add("less", x, y), x, y))
    outs.append(g.add("pow", x, g.add_constant(np.array(3.0, np.float32), "three")))
    g.set_outputs(outs)
    xv = normal(5, 40) * 3
    xv[0, :4] = [np.nan, np.inf, -np.inf, 2.5]
    xv[1, :6] = [0.5, 1.5, -0.5, -2.5, 0.0, -0.0]  # round half to even, signed zeros
    check(g, xv, normal(40) * 2)


def test_integer_and_bool_elementwise():
    g = Graph("int_ops")
    a = g.add_input("a", TensorType(DType.i64, (6, 8)))
    b = g.add_input("b", TensorType(DType.i64, (6, 8)))
    outs = [g.add(op, a, b) for op in ("add", "sub", "mul", "div", "mod", "max", "min", "bitwise_and",
                                       "bitwise_xor", "less")]
    outs.append(g.add("mod", a, b, fmod=True))
    gt = g.add("greater", a, b)
    outs += [g.add("and", gt, g.add("not", g.add("equal", a, b))), g.add("cast", gt, dtype=DType.f32),
             g.add("cast", g.add("cast", a, dtype=DType.f32), dtype=DType.i32)]
    g.set_outputs(outs)
    check(g, RNG.integers(-9, 9, (6, 8)), RNG.integers(-4, 4, (6, 8)))  # includes division by zero


def test_f16_elementwise_and_matmul():
    g = Graph("half")
    x = g.add_input("x", TensorType(DType.f16, (16, 32)))
    w = g.add_constant(normal(32, 24, dtype=np.float16), "w")
    g.set_outputs([g.add("tanh", g.add("matmul", x, w))])
    ref = leptonc.run_reference(g, x_ := normal(16, 32, dtype=np.float16))[0]
    got = leptonc.compile(g, target="triton", quiet=True)(x_)
    assert got.dtype == np.float16
    assert np.abs(got.astype(np.float32) - ref.astype(np.float32)).max() <= 2e-3  # f16 rounding


def test_data_movement():
    g = Graph("moves")
    x = g.add_input("x", TensorType(DType.f32, (4, 5, 6)))
    idx = g.add_input("idx", TensorType(DType.i64, (2, 3)))
    outs = [g.add("transpose", x, perm=(2, 0, 1)),
            g.add("slice", x, starts=(1, -1), ends=(4, -6), axes=(0, 2), steps=(2, -2)),
            g.add("concat", x, g.add("neg", x), axis=1),
            g.add("pad", x, pads=(0, 1, -1, 1, 0, 2), value=7.0),
            g.add("gather", x, idx, axis=1),
            g.add("broadcast_to", g.add("reduce_sum", x, axes=(1,), keepdims=True), shape=(2, 4, 5, 6)),
            g.add("tile", x, repeats=(1, 2, 1)),
            g.add("cumsum", x, axis=1, exclusive=True, reverse=True),
            g.add("gather_elements", x, g.add("cast", g.add("abs", g.add("floor", x)), dtype=DType.i64), axis=2)]
    outs += list(g.add_node("split", [x], {"axis": 2, "sizes": (1, 2, 3)}, names=["s0", "s1", "s2"]).outputs)
    g.set_outputs(outs)
    xv = normal(4, 5, 6)
    xv = np.clip(xv, -3.9, 3.9)  # gather_elements indices |floor(x)| stay inside axis 2 (size 6)
    check(g, xv, np.array([[0, -1, 2], [4, 1, -5]], dtype=np.int64))


def test_symbolic_sizes_are_kernel_arguments():
    g = Graph("dyn")
    x = g.add_input("x", TensorType(DType.f32, ("B", "S", 16)))
    w = g.add_constant(normal(16, 8), "w")
    h = g.add("matmul", x, w)
    m = g.add("reduce_max", h, axes=(2,), keepdims=True)
    g.set_outputs([g.add("exp", g.add("sub", h, m)), g.add("transpose", h, perm=(0, 2, 1))])
    inputs = [normal(2, 3, 16)]
    cm = check(g, *inputs)
    assert "s_B" in cm.artifact.source and "s_S" in cm.artifact.source
    for shape in [(1, 7, 16), (5, 1, 16)]:
        other = [normal(*shape)]
        assert_matches_reference(cm.run(*other), leptonc.run_reference(g, *other))


def test_unsupported_op_is_a_clear_error():
    g = Graph("det")
    x = g.add_input("x", TensorType(DType.f32, (4, 3, 3)))
    g.set_outputs([g.add("det", x)])
    with pytest.raises(UnsupportedError, match="'det' is not supported by the triton target"):
        leptonc.compile(g, target="triton", quiet=True)


def attention_graph(seq: int, causal: bool) -> Graph:
    """softmax(q k^T * scale + mask) v, decomposed as frontends give it, then a residual add."""
    g = Graph("attention")
    q, k, v = (g.add_input(n, TensorType(DType.f32, (2, 2, seq, 16))) for n in ("q", "k", "v"))
    s = g.add("mul", g.add("matmul", q, g.add("transpose", k, perm=(0, 1, 3, 2))),
              g.add_constant(np.array(0.25, np.float32), "scale"))
    if causal:
        keep = g.add_constant(np.tril(np.ones((seq, seq), bool))[None, None], "causal")
        s = g.add("where", keep, s, g.add_constant(np.array(-np.inf, np.float32), "minus_inf"))
    else:
        mask = g.add_input("mask", TensorType(DType.f32, (2, 1, 1, seq)))
        s = g.add("add", s, mask)
    m = g.add("reduce_max", s, axes=(3,), keepdims=True)
    e = g.add("exp", g.add("sub", s, m))
    p = g.add("div", e, g.add("reduce_sum", e, axes=(3,), keepdims=True))
    g.set_outputs([g.add("add", g.add("matmul", p, v), q)])
    return g


@pytest.mark.parametrize("seq,causal", [(130, False), (40, True)])  # 130 keys: two key blocks
def test_attention_is_one_flash_kernel(seq, causal):
    g = attention_graph(seq, causal)
    inputs = [normal(2, 2, seq, 16) for _ in range(3)]
    if not causal:
        mask = np.zeros((2, 1, 1, seq), np.float32)
        mask[1, ..., seq // 2:] = -1e9  # padding of the second sequence
        inputs.append(mask)
    cm = check(g, *inputs)
    kinds = [k["kind"] for k in cm.manifest["program"]["kernels"]]
    assert kinds == ["attention"], kinds
    assert "reduce_max" in " ".join(cm.manifest["program"]["kernels"][0]["ops"])
    assert not cm.manifest["program"]["buffers"][:-1]  # scores and probabilities never reach memory


def test_attention_reads_a_fused_qkv_split_in_place_and_writes_the_merged_heads():
    g = fused_qkv_graph(2, 21, 2, 16)
    cm = check(g, normal(2, 21, 96))
    kernels = cm.manifest["program"]["kernels"]
    assert [k["kind"] for k in kernels] == ["attention"]
    assert any("split" in op for op in kernels[0]["ops"]) and kernels[0]["ops"][-1].endswith("transpose")
