"""The channels-last pass: conv and pooling run NHWC, transposes stay only at the edges of conv regions,
and the reference interpreter gives the same outputs before and after (graphs built here, random graphs
with convs, the small models of the zoo)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings

import leptonc
from leptonc import print_ir
from leptonc.ir import DType, Graph, TensorType
from leptonc.passes import run_pipeline
from tests.model_zoo import as_numpy, assert_close, build
from tests.passes.test_differential import assert_same_outputs
from tests.random_graphs import graphs

RNG = np.random.default_rng(0)


def const(g, shape, name):
    return g.add_constant(RNG.standard_normal(shape).astype(np.float32), name)


def conv(g, x, c_in, c_out, k=3, **attrs):
    attrs = {"pads": (k // 2,) * 4, **attrs}
    return g.add("conv", x, const(g, (c_out, c_in // attrs.get("group", 1), k, k), "w"), const(g, (c_out,), "b"),
                 **attrs)


def after_pass(g):
    """The graph after channels-last (verified), checked against the reference on random inputs."""
    after = run_pipeline(g, "channels-last", verify_each=True)
    assert_same_outputs(g, after, 1e-6)
    assert print_ir(leptonc.parse_ir(print_ir(after), after.constants)) == print_ir(after)
    return after


def ops(g, op):
    return [n for n in g.nodes if n.op == op]


def test_a_residual_block_keeps_one_transpose_in_and_one_out():
    g = Graph("block")
    x = g.add_input("x", TensorType(DType.f32, ("N", 8, 10, 10)))
    y = g.add("relu", conv(g, x, 8, 16, strides=(2, 2)))
    short = conv(g, x, 8, 16, k=1, strides=(2, 2), pads=(0, 0, 0, 0))
    y = g.add("relu", g.add("add", conv(g, y, 16, 16), short))
    y = g.add("min", g.add("max", y, g.add_constant(np.float32(0), "zero")), g.add_constant(np.float32(6), "six"))
    g.set_outputs([g.add("max_pool", y, kernel=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1))])
    after = after_pass(g)
    assert [n.attrs["perm"] for n in ops(after, "transpose")] == [(0, 2, 3, 1), (0, 3, 1, 2)]
    assert all(n.attrs["channels_last"] for n in ops(after, "conv") + ops(after, "max_pool"))
    assert after.outputs[0].name == g.outputs[0].name and after.outputs[0].shape == g.outputs[0].shape
    assert print_ir(run_pipeline(after, "channels-last")) == print_ir(after)  # nothing left to convert


def test_constant_operands_are_transposed_with_the_data():
    """A batchnorm left as per-channel mul/add between two convs moves with them: no transpose between."""
    g = Graph("bn")
    x = g.add_input("x", TensorType(DType.f32, (2, 4, 6, 6)))
    y = g.add("mul", conv(g, x, 4, 6), const(g, (6, 1, 1), "scale"))
    y = g.add("add", y, const(g, (1, 6, 1, 1), "shift"))
    y = g.add("sigmoid", g.add("sub", const(g, (6, 6, 6), "full"), y))
    g.set_outputs([conv(g, y, 6, 3, k=1, pads=(0, 0, 0, 0))])
    after = after_pass(g)
    assert len(ops(after, "transpose")) == 2
    assert [n.output.shape for n in ops(after, "mul")] == [(2, 6, 6, 6)]


def test_transposes_sink_through_pads_slices_concat_split_and_reductions():
    g = Graph("movers")
    x = g.add_input("x", TensorType(DType.f32, ("N", 4, 9, 9)))
    a = conv(g, x, 4, 6)
    b = g.add("slice", g.add("pad", a, pads=(0, 0, 1, 2, 0, 0, 0, 1), value=0.5),
              starts=(1, 0), ends=(10, 9), axes=(2, 3), steps=(1, 1))
    cat = g.add("concat", b, conv(g, x, 4, 2), axis=1)
    p, q = g.add_node("split", [cat], {"axis": 1, "sizes": (3, 5)}, names=["p", "q"]).outputs
    channels = g.add("reduce_sum", q, axes=(1,), keepdims=True)      # over C: trailing once channels-last
    spatial = g.add("reduce_mean", p, axes=(2, 3), keepdims=False)   # over H, W: a global average pool
    g.set_outputs([conv(g, g.add("mul", p, channels), 3, 4), spatial])
    after = after_pass(g)
    assert [n.attrs["axis"] for n in ops(after, "concat")] == [3]
    assert [n.attrs["axes"] for n in ops(after, "reduce_sum")] == [(3,)]
    assert [n.attrs["kernel"] for n in ops(after, "avg_pool")] == [(9, 9)] and not ops(after, "reduce_mean")
    assert len(ops(after, "transpose")) == 2  # in (x) and out (the conv result)


@pytest.mark.parametrize("op,keepdims", [("reduce_mean", True), ("reduce_max", True), ("reduce_max", False)])
def test_a_spatial_mean_or_max_becomes_a_global_pool(op, keepdims):
    """Squeeze-excitation: the mean over H and W of a conv's result scales that result; it runs channels-last as
    a global pool, so that no transpose of the whole tensor is left between the convs."""
    g = Graph("se")
    x = g.add_input("x", TensorType(DType.f32, ("N", 4, 7, 6)))
    y = g.add("relu", conv(g, x, 4, 8))
    s = g.add(op, y, axes=(2, 3), keepdims=keepdims)
    s = s if keepdims else g.add("reshape", s, shape=("N", 8, 1, 1))
    g.set_outputs([conv(g, g.add("mul", y, g.add("sigmoid", conv(g, s, 8, 8, k=1))), 8, 4)])
    after = after_pass(g)
    pool = "avg_pool" if op == "reduce_mean" else "max_pool"
    assert [n.attrs["kernel"] for n in ops(after, pool)] == [(7, 6)] and not ops(after, op)
    assert len(ops(after, "transpose")) == 2


def test_a_spatial_mean_of_unknown_size_is_left_to_a_transpose():
    g = Graph("dynamic")
    x = g.add_input("x", TensorType(DType.f32, (1, 4, "H", "W")))
    y = conv(g, x, 4, 8)
    g.set_outputs([g.add("mul", y, g.add("reduce_mean", y, axes=(2, 3)))])
    after = after_pass(g)
    assert len(ops(after, "reduce_mean")) == 1 and not ops(after, "avg_pool")


def test_a_global_average_pool_with_kept_dims_ends_in_a_reshape():
    g = Graph("gap")
    x = g.add_input("x", TensorType(DType.f32, (1, 3, 8, 8)))
    y = g.add("relu", conv(g, x, 3, 8))
    g.set_outputs([g.add("avg_pool", y, kernel=(8, 8))])
    after = after_pass(g)
    assert [n.op for n in after.nodes if n.op != "const"] == ["transpose", "conv", "relu", "avg_pool", "reshape"]


def test_a_weight_that_is_not_a_constant_is_transposed_in_the_graph():
    g = Graph("dynamic_weight")
    x = g.add_input("x", TensorType(DType.f32, (2, 4, 7)))
    w = g.add_input("w", TensorType(DType.f32, (6, 2, 3)))
    g.set_outputs([g.add("conv", x, w, group=2, strides=(2,), pads=(1, 1))])
    after = after_pass(g)
    assert [n.attrs["perm"] for n in ops(after, "transpose")] == [(0, 2, 1), (2, 1, 0), (0, 2, 1)]


def test_graphs_without_conv_or_pooling_are_left_alone():
    g = Graph("plain")
    x = g.add_input("x", TensorType(DType.f32, (2, 3, 4, 5)))
    g.set_outputs([g.add("relu", g.add("transpose", x, perm=(0, 2, 3, 1)))])
    assert print_ir(run_pipeline(g, "channels-last")) == print_ir(g)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=graphs(only=("conv", "unary", "binary", "reduce", "transpose", "reshape", "slice", "concat_split",
                          "no_ops", "constants")))
def test_random_graphs_with_convs(graph):
    note(print_ir(graph))
    after = run_pipeline(graph, "channels-last", verify_each=True)
    assert_same_outputs(graph, after, 1e-6)


@pytest.mark.parametrize("name", ["cnn", "resnet_small", "mobilenet_small"])
def test_small_models(name):
    """After the cleanup pipeline, as the cpu target runs it: same outputs, and transposes only where the
    model's inputs come in and its outputs go out."""
    module, inputs = build(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = run_pipeline(leptonc.import_torch(module, inputs), "default")
    after = run_pipeline(graph, "channels-last", verify_each=True)
    arrays = as_numpy(inputs)
    assert_close(leptonc.run_reference(after, *arrays), leptonc.run_reference(graph, *arrays))
    assert len(ops(after, "transpose")) <= len(after.inputs) + len(after.outputs)
    assert all(n.attrs["channels_last"] for n in ops(after, "conv"))


def channels_last_graph():
    """pad -> channels-last conv -> per-channel affine (a batchnorm as frontends decompose it)."""
    g = Graph("nhwc")
    x = g.add_input("x", TensorType(DType.f32, (2, 7, 7, 4)))
    y = g.add("pad", x, pads=(0, 1, 0, 0, 0, 2, 1, 0))
    y = g.add("conv", y, const(g, (3, 3, 4, 5), "w"), channels_last=True)
    y = g.add("add", g.add("mul", y, const(g, (5,), "gamma")), const(g, (5,), "beta"))
    g.set_outputs([y])
    return g


def test_cleanup_passes_fold_pads_and_batchnorm_into_channels_last_convs():
    g = channels_last_graph()
    after = run_pipeline(g, "default", verify_each=True)
    assert_same_outputs(g, after, 1e-5)
    assert [n.op for n in after.nodes if n.op != "const"] == ["conv"]
    assert ops(after, "conv")[0].attrs["pads"] == (1, 0, 2, 1)


@pytest.mark.parametrize("target", ["stablehlo", "triton"])
def test_other_targets_refuse_channels_last_ops(target):
    with pytest.raises(leptonc.ir.errors.LeptoncError, match="channels-last"):
        leptonc.compile(channels_last_graph(), target=target, quiet=True)
