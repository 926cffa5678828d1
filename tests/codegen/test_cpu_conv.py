"""Channels-last convolution and pooling on the cpu target, against the reference interpreter: the GEMM path
(1x1 read in place, strided and padded im2col, groups), convs over few channels that read their input
channels-first (on each instruction set), the direct depthwise path (channel blocks and their tails), fused
epilogues (bias, ReLU6, residual add), 1-d ops, symbolic batch, and pooling."""
from __future__ import annotations

import numpy as np
import pytest

from leptonc.codegen.cpu import build
from leptonc.ir import DType, Graph, TensorType
from tests.codegen.cpu_check import compile_and_check

RNG = np.random.default_rng(1)


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def conv_graph(x_shape, w_shape, epilogue=None, bias=True, batch="N", **attrs):
    """One conv (channels-first, as frontends build it) and an optional epilogue over its result."""
    g = Graph("conv")
    x = g.add_input("x", TensorType(DType.f32, (batch,) + tuple(x_shape[1:])))
    operands = [x, g.add_constant(rand(*w_shape), "w")] + ([g.add_constant(rand(w_shape[0]), "b")] if bias else [])
    y = g.add_node("conv", operands, attrs).output
    g.set_outputs([epilogue(g, y) if epilogue else y])
    return g, [rand(*x_shape)]


def relu6(g, y):
    return g.add("min", g.add("max", y, g.add_constant(np.float32(0), "zero")), g.add_constant(np.float32(6), "six"))


def silu(g, y):
    return g.add("mul", y, g.add("sigmoid", y))


def residual_relu(g, y):
    return g.add("relu", g.add("add", y, g.add_constant(rand(*y.shape[1:]), "residual")))


@pytest.mark.parametrize("x_shape,w_shape,attrs", [
    ((2, 24, 9, 11), (40, 24, 1, 1), {}),                                            # 1x1: x itself is A
    ((2, 24, 9, 11), (40, 24, 1, 1), {"strides": (2, 2)}),                           # 1x1 strided
    ((1, 3, 23, 21), (16, 3, 7, 7), {"strides": (2, 2), "pads": (3, 3, 3, 3)}),      # a stem
    ((2, 16, 10, 9), (24, 16, 3, 3), {"pads": (0, 1, 2, 1)}),                        # asymmetric pads
    ((1, 8, 12, 12), (8, 8, 3, 3), {"dilations": (2, 3), "pads": (2, 3, 2, 3)}),
    ((2, 8, 9, 9), (12, 4, 3, 3), {"group": 2, "pads": (1, 1, 1, 1)}),               # groups
    ((1, 8, 9, 9), (16, 1, 3, 3), {"group": 8, "pads": (1, 1, 1, 1)}),               # channel multiplier 2
    ((1, 8, 40, 40), (40, 8, 3, 3), {"pads": (1, 1, 1, 1)}),                         # many pixels: in blocks
    ((2, 6, 37, 30), (10, 3, 3, 3), {"group": 2, "strides": (1, 2), "pads": (1, 0, 1, 2)}),
])
@pytest.mark.parametrize("epilogue", [None, relu6, residual_relu], ids=["plain", "relu6", "residual"])
def test_gemm_convolutions(x_shape, w_shape, attrs, epilogue):
    compile_and_check(*conv_graph(x_shape, w_shape, epilogue, **attrs))


CHANNELS_FIRST = [
    ((2, 3, 30, 29), (16, 3, 7, 7), {"strides": (2, 2), "pads": (3, 3, 3, 3)}),       # a 7x7/2 stem
    ((1, 3, 37, 35), (40, 3, 3, 3), {"strides": (2, 2), "pads": (1, 1, 1, 1)}),       # 3x3/2, two panels
    ((1, 2, 20, 19), (8, 2, 3, 3), {"pads": (0, 2, 1, 0)}),                            # stride 1, uneven pads
    ((1, 2, 13, 31), (8, 2, 3, 3), {"strides": (2, 2), "dilations": (2, 3), "pads": (2, 0, 1, 5)}),
    ((2, 4, 9, 5), (6, 2, 3, 2), {"group": 2, "strides": (1, 3), "dilations": (2, 1), "pads": (1, 1, 2, 0)}),
    ((1, 4, 24, 40), (40, 2, 3, 5), {"group": 2, "strides": (2, 2), "dilations": (2, 1), "pads": (1, 2, 1, 2)}),
    ((1, 2, 6, 40), (8, 2, 1, 27), {"pads": (0, 13, 0, 13)}),                          # a window of 27 taps
    ((2, 3, 9, 6), (8, 3, 3, 3), {"strides": (2, 1), "pads": (1, 1, 1, 1)}),            # rows of 6 pixels
    ((1, 3, 100, 100), (8, 3, 3, 3), {"pads": (1, 1, 1, 1)}),                          # many pixels: blocks
    ((2, 3, 50), (8, 3, 5), {"strides": (2,), "pads": (2, 1)}),                        # 1-d
]


@pytest.mark.parametrize("x_shape,w_shape,attrs", CHANNELS_FIRST)
@pytest.mark.parametrize("epilogue", [None, residual_relu], ids=["plain", "residual"])
def test_convs_over_few_channels_read_their_input_channels_first(x_shape, w_shape, attrs, epilogue):
    """Output rows narrower than a panel, windows in the padding on every side, groups, strides of 1, 2 and 3,
    dilation, K in kernel rows: no transpose of the input is computed, but where the width's step is wider than
    2 (a stride of 3, a dilation), which the channels-last path computes."""
    cm = compile_and_check(*conv_graph(x_shape, w_shape, epilogue, **attrs))
    narrow = attrs.get("strides", (1,))[-1] <= 2 and attrs.get("dilations", (1,))[-1] == 1
    assert ("lep_conv_cf_rows(&rows" in cm.source) == narrow
    assert cm.kernel_names[0].endswith("transpose") != narrow


@pytest.mark.parametrize("march", ["x86-64-v3", "x86-64"])
@pytest.mark.parametrize("case", [0, 5, 6, 7])
def test_channels_first_input_on_avx2_and_plain_c(monkeypatch, march, case):
    monkeypatch.setattr(build, "FLAGS", [f"-march={march}" if f == "-march=native" else f for f in build.FLAGS])
    x_shape, w_shape, attrs = CHANNELS_FIRST[case]
    compile_and_check(*conv_graph(x_shape, w_shape, relu6, **attrs))


def test_an_input_read_by_more_than_convs_is_transposed_once():
    """The transpose into channels-last stays when something else reads it (a pool), or the input has more
    channels than a conv reads channels-first."""
    for channels, pool in ((3, True), (6, False)):
        g = Graph("shared")
        x = g.add_input("x", TensorType(DType.f32, ("N", channels, 12, 12)))
        y = g.add("conv", x, g.add_constant(rand(8, channels, 3, 3), "w"), pads=(1, 1, 1, 1))
        outs = [y, g.add("max_pool", x, kernel=(2, 2), strides=(2, 2))] if pool else [y]
        g.set_outputs(outs)
        cm = compile_and_check(g, [rand(2, channels, 12, 12)])
        assert cm.kernel_names[0].endswith("transpose") and "lep_conv_cf_rows(&rows" not in cm.source


@pytest.mark.parametrize("channels", [16, 80, 144])
@pytest.mark.parametrize("attrs", [{"pads": (1, 1, 1, 1)}, {"strides": (2, 2), "pads": (0, 0, 1, 1)},
                                   {"dilations": (2, 2), "pads": (2, 2, 2, 2)}])
def test_depthwise_convolutions(channels, attrs):
    """Blocks of 64 channels and the tail after them, strides, TF-style end padding, dilation."""
    g, xs = conv_graph((2, channels, 11, 10), (channels, 1, 3, 3), relu6, group=channels, **attrs)
    compile_and_check(g, xs)


def test_depthwise_without_bias():
    compile_and_check(*conv_graph((1, 20, 6, 6), (20, 1, 5, 5), bias=False, group=20, pads=(2, 2, 2, 2)))


DEPTHWISE_WINDOWS = [
    (3, {"pads": (1, 1, 1, 1)}),
    (3, {"strides": (2, 2), "pads": (1, 0, 2, 1)}),                      # asymmetric pads
    (5, {"pads": (2, 2, 2, 2)}),
    (5, {"strides": (2, 2), "pads": (1, 1, 2, 2)}),                      # TF-style: more at the end
    (7, {"pads": (3, 3, 3, 3)}),
    (7, {"strides": (2, 1), "pads": (0, 3, 1, 2)}),
    (7, {"strides": (1, 2), "dilations": (1, 2), "pads": (3, 6, 3, 6)}),  # dilation: the generic taps
    (3, {"strides": (3, 3), "pads": (1, 1, 1, 1)}),                      # stride 3: the generic taps
    (4, {"pads": (1, 2, 2, 1)}),                                          # an even window
]


@pytest.mark.parametrize("channels", [8, 13, 40, 136])
@pytest.mark.parametrize("k,attrs", DEPTHWISE_WINDOWS)
def test_depthwise_windows_strides_and_pads(channels, k, attrs):
    """The unrolled 3-, 5- and 7-wide windows of stride 1 and 2 and the generic taps, on rows wide enough for
    blocks of 8 and 4 pixels and the ones left, edges on every side, channels in whole vectors, chunks and a
    tail, a SiLU epilogue; and an image narrower than the window (every pixel at an edge)."""
    g, xs = conv_graph((2, channels, 9, 21), (channels, 1, k, k), silu, group=channels, **attrs)
    compile_and_check(g, xs)
    if k == 7 and "strides" not in attrs:
        compile_and_check(*conv_graph((1, channels, 3, 5), (channels, 1, k, k), relu6, group=channels, **attrs))


@pytest.mark.parametrize("march", ["x86-64-v3", "x86-64"])
def test_depthwise_on_avx2_and_plain_c(monkeypatch, march):
    monkeypatch.setattr(build, "FLAGS", [f"-march={march}" if f == "-march=native" else f for f in build.FLAGS])
    for k, attrs in DEPTHWISE_WINDOWS[:3]:
        compile_and_check(*conv_graph((1, 21, 9, 19), (21, 1, k, k), relu6, group=21, **attrs))


def test_squeeze_excitation_runs_channels_last_end_to_end():
    """Depthwise conv, SiLU, the mean over H and W (a global pool), two 1x1 convs, a sigmoid scale of the
    depthwise result, a 1x1 projection: one transpose in, one out, none between the kernels."""
    g = Graph("se")
    x = g.add_input("x", TensorType(DType.f32, ("N", 24, 14, 13)))

    def conv(v, c_in, c_out, k, **attrs):
        return g.add("conv", v, g.add_constant(rand(c_out, c_in // attrs.get("group", 1), k, k), "w"),
                     g.add_constant(rand(c_out), "b"), **attrs)
    y = silu(g, conv(x, 24, 24, 5, group=24, strides=(2, 2), pads=(1, 1, 2, 2)))
    s = g.add("sigmoid", conv(silu(g, conv(g.add("reduce_mean", y, axes=(2, 3)), 24, 6, 1)), 6, 24, 1))
    g.set_outputs([conv(g.add("mul", y, s), 24, 16, 1)])
    cm = compile_and_check(g, [rand(2, 24, 14, 13)])
    assert sum(name.endswith("transpose") for name in cm.kernel_names) == 2


def _clamp_chain(g, y):
    """max(y, -1), relu, min(6, .): a clamp to [0, 6] written three ops long."""
    y = g.add("max", y, g.add_constant(np.full((1, 1, 1, 1), -1, np.float32), "minus_one"))
    return g.add("min", g.add_constant(np.float32(6), "six"), g.add("relu", y))


@pytest.mark.parametrize("group", [1, 8])
def test_a_fused_clamp_is_applied_by_the_conv_kernel(group):
    """Fused ops that only clamp the result run inside the GEMM's or the depthwise loop's stores (NaN stays
    NaN); a clamp whose input is also read elsewhere stays a separate fused op."""
    g, xs = conv_graph((2, 8, 10, 10), (8, 8 // group, 3, 3), _clamp_chain, group=group, pads=(1, 1, 1, 1))
    xs[0][0, :, 4, 4] = np.nan
    cm = compile_and_check(g, xs)
    assert "const float clamp[2] = {0.0f, 6.0f};" in cm.source
    g2, xs2 = conv_graph((2, 8, 10, 10), (8, 8 // group, 3, 3), None, group=group, pads=(1, 1, 1, 1))
    y = g2.outputs[0]
    g2.set_outputs([relu6(g2, y), y])
    cm2 = compile_and_check(g2, xs2)
    assert "clamp[2]" not in cm2.source


def test_a_computed_weight_is_packed_at_run_time():
    g = Graph("computed")
    x = g.add_input("x", TensorType(DType.f32, ("N", 6, 9, 9)))
    w = g.add_input("w", TensorType(DType.f32, (8, 3, 3, 3)))
    g.set_outputs([relu6(g, g.add("conv", x, w, g.add_constant(rand(8), "b"), group=2, pads=(1, 1, 1, 1)))])
    compile_and_check(g, [rand(2, 6, 9, 9), rand(8, 3, 3, 3)])


def test_conv1d_and_static_batch():
    compile_and_check(*conv_graph((3, 6, 17), (8, 3, 3), relu6, batch=3, group=2, strides=(2,), pads=(1, 2)))


def test_conv_chain_with_residual_and_pooling():
    """A small residual network: the convs and pools run channels-last from one transpose in to one out."""
    g = Graph("net")
    x = g.add_input("x", TensorType(DType.f32, ("N", 3, 16, 16)))

    def conv(v, c_in, c_out, k, **attrs):
        return g.add("conv", v, g.add_constant(rand(c_out, c_in, k, k), "w"), g.add_constant(rand(c_out), "b"),
                     **attrs)
    y = g.add("relu", conv(x, 3, 16, 3, strides=(2, 2), pads=(1, 1, 1, 1)))
    y = g.add("max_pool", y, kernel=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1))
    z = g.add("relu", conv(y, 16, 16, 3, pads=(1, 1, 1, 1)))
    y = g.add("relu", g.add("add", conv(z, 16, 16, 1), y))
    g.set_outputs([g.add("avg_pool", y, kernel=(2, 2), strides=(2, 2)), g.add("reduce_mean", y, axes=(2, 3))])
    compile_and_check(g, [rand(2, 3, 16, 16)])


@pytest.mark.parametrize("op,extra", [("max_pool", {}), ("avg_pool", {}), ("avg_pool", {"count_include_pad": True})])
def test_windows_wider_than_the_input(op, extra):
    """A pooler written as a 1280-wide average in ceil mode over a 7x7 map (EfficientNet's) visits only the taps
    inside the input (or its padding, for the divisor); dilated and strided windows with more padding than input,
    and a global pool of a large map split over its channels."""
    g = Graph("wide")
    x = g.add_input("x", TensorType(DType.f32, ("N", 70, 7, 7)))
    g.set_outputs([g.add(op, x, kernel=(1280, 1280), strides=(1280, 1280), ceil_mode=True, **extra),
                   g.add(op, x, kernel=(3, 4), strides=(3, 2), dilations=(2, 3), pads=(2, 5, 3, 6), ceil_mode=True,
                         **extra)])
    compile_and_check(g, [rand(2, 70, 7, 7)])
    g = Graph("global")
    x = g.add_input("x", TensorType(DType.f32, (1, 200, 60, 50)))
    g.set_outputs([g.add(op, x, kernel=(60, 50), **extra)])
    compile_and_check(g, [rand(1, 200, 60, 50)])


@pytest.mark.parametrize("op,extra", [("max_pool", {}), ("avg_pool", {}), ("avg_pool", {"count_include_pad": True})])
def test_pooling_over_many_channels(op, extra):
    g = Graph("pool")
    x = g.add_input("x", TensorType(DType.f32, ("N", 20, 9, 8)))
    g.set_outputs([g.add(op, x, kernel=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1), ceil_mode=True, **extra)])
    xs = rand(2, 20, 9, 8)
    xs[0, 3, 4, 4] = np.nan  # a NaN wins its max windows
    compile_and_check(g, [xs])
