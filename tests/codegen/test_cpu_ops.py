"""Each op the cpu target compiles, against the reference interpreter: elementwise math in every
supported dtype with broadcasting, reductions, matmul and conv variants, pooling and data movement."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import leptonc
from leptonc.codegen.cpu.cexpr import UnsupportedError
from leptonc.ir import DType, Graph, TensorType
from tests.codegen.cpu_check import compile_and_check

RNG = np.random.default_rng(0)
FLOAT_UNARY = ("exp", "log", "sqrt", "rsqrt", "reciprocal", "sin", "cos", "tan", "asin", "acos", "atan", "sinh",
               "cosh", "tanh", "asinh", "acosh", "atanh", "erf", "sigmoid", "floor", "ceil", "round", "neg", "abs",
               "sign", "relu", "isnan", "isinf")
FLOAT_BINARY = ("add", "sub", "mul", "div", "max", "min", "pow", "mod", "equal", "less", "less_equal", "greater",
                "greater_equal")


def rand(shape, dtype=np.float32, lo=-3, hi=3):
    if np.dtype(dtype).kind == "f":
        return RNG.uniform(lo, hi, shape).astype(dtype)
    if np.dtype(dtype).kind == "b":
        return RNG.random(shape) < 0.5
    return RNG.integers(lo, hi, shape).astype(dtype)


def graph_of(inputs: dict, build) -> tuple[Graph, list]:
    g = Graph("ops")
    vals = [g.add_input(name, TensorType(DType.from_numpy(a.dtype), shape)) for name, (a, shape) in inputs.items()]
    g.set_outputs(build(g, *vals))
    return g, [a for a, _ in inputs.values()]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_unary_ops(dtype):
    x = rand((3, 17), dtype)
    x[0, :5] = [np.nan, np.inf, -np.inf, 0.0, -0.0]
    g, xs = graph_of({"x": (x, ("B", 17))}, lambda g, x: [g.add(op, x) for op in FLOAT_UNARY])
    compile_and_check(g, xs)


def test_float_binary_ops_with_broadcasting():
    a, b = rand((2, 3, 5)), rand((3, 1))
    b[0, 0] = 0.0
    g, xs = graph_of({"a": (a, (2, 3, 5)), "b": (b, (3, 1))},
                     lambda g, a, b: [g.add(op, a, b) for op in FLOAT_BINARY] + [g.add("mod", a, b, fmod=True)])
    compile_and_check(g, xs)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int8, np.uint8])
def test_integer_ops(dtype):
    lo = 0 if np.dtype(dtype).kind == "u" else -20
    a, b = rand((4, 6), dtype, lo, 20), rand((6,), dtype, lo + 1 if lo else 1, 7)
    ops = ("add", "sub", "mul", "div", "max", "min", "mod", "equal", "less", "bitwise_and", "bitwise_or",
           "bitwise_xor")
    unary = ("neg", "abs", "sign", "relu", "bitwise_not") if lo else ("abs", "relu", "bitwise_not")
    g, xs = graph_of({"a": (a, (4, 6)), "b": (b, (6,))},
                     lambda g, a, b: [g.add(op, a, b) for op in ops] + [g.add(op, a) for op in unary]
                     + [g.add("cast", a, dtype=DType.f32), g.add("reduce_sum", a, axes=(1,)),
                        g.add("reduce_max", a, axes=(0, 1), keepdims=False)])
    compile_and_check(g, xs)


def test_bool_ops_where_and_casts():
    c, a, b = rand((3, 4), np.bool_), rand((3, 4)), rand((4,))
    a[0, 0] = np.nan

    def build(g, c, a, b):
        cmp = g.add("less", a, b)
        return [g.add("and", c, cmp), g.add("or", c, cmp), g.add("xor", c, cmp), g.add("not", c),
                g.add("where", c, a, b), g.add("cast", a, dtype=DType.i32), g.add("cast", a, dtype=DType.bool),
                g.add("cast", c, dtype=DType.f32), g.add("cast", a, dtype=DType.f64)]
    g, xs = graph_of({"c": (c, (3, 4)), "a": (a, (3, 4)), "b": (b, (4,))}, build)
    compile_and_check(g, xs)


@pytest.mark.parametrize("axes,keepdims", [((1,), True), ((1,), False), ((0,), True), ((0, 2), False),
                                           ((2, 1), True), ((), True)])
def test_reductions(axes, keepdims):
    x = rand((3, 5, 7))
    ops = ("reduce_sum", "reduce_mean", "reduce_prod", "reduce_max", "reduce_min")
    g, xs = graph_of({"x": (x, ("B", 5, 7))},
                     lambda g, x: [g.add(op, x, axes=axes, keepdims=keepdims) for op in ops])
    compile_and_check(g, xs)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_argmax_argmin_ties_and_nan(axis):
    x = np.array([[1, 3, 3, 0], [2, np.nan, 5, np.nan], [7, 7, 1, 1]], np.float32)
    g, xs = graph_of({"x": (x, (3, 4))},
                     lambda g, x: [g.add(op, x, axis=axis, keepdims=k, select_last_index=last)
                                   for op in ("argmax", "argmin") for k in (True, False) for last in (False, True)])
    compile_and_check(g, xs)


@pytest.mark.parametrize("shapes", [((5, 8), (8, 3)), ((2, 5, 8), (8, 3)), ((2, 1, 5, 8), (3, 8, 4)),
                                    ((8,), (8, 3)), ((5, 8), (8,)), ((2, 5, 8), (2, 8, 3))])
def test_matmul_shapes(shapes):
    a, b = rand(shapes[0]), rand(shapes[1])
    g, xs = graph_of({"a": (a, shapes[0]), "b": (b, shapes[1])}, lambda g, a, b: [g.add("matmul", a, b)])
    compile_and_check(g, xs)


@pytest.mark.parametrize("perm_a,perm_b", [((1, 0), (1, 0)), ((0, 2, 1), (1, 0)), ((1, 0, 2), (0, 1))])
def test_matmul_reads_transposed_operands_as_strides(perm_a, perm_b):
    sa = (4, 6) if len(perm_a) == 2 else (3, 4, 6)
    a, b = rand(sa), rand((6, 6))

    def build(g, a, b):
        at = g.add("transpose", a, perm=perm_a)
        bt = g.add("transpose", b, perm=perm_b)
        k = at.shape[-1]
        bt = g.add("slice", bt, starts=(0,), ends=(k,), axes=(0,), steps=(1,)) if k != 6 else bt
        return [g.add("matmul", at, bt)]
    g, xs = graph_of({"a": (a, sa), "b": (b, (6, 6))}, build)
    compile_and_check(g, xs)


@pytest.mark.parametrize("dtype", [np.int64, np.float64])
def test_matmul_other_dtypes(dtype):
    a, b = rand((3, 4), dtype), rand((2, 4, 5), dtype)
    g, xs = graph_of({"a": (a, (3, 4)), "b": (b, (2, 4, 5))}, lambda g, a, b: [g.add("matmul", a, b)])
    compile_and_check(g, xs)


@pytest.mark.parametrize("attrs,wshape", [
    ({}, (4, 3, 3, 3)), ({"strides": (2, 2), "pads": (1, 1, 1, 1)}, (4, 3, 3, 3)),
    ({"dilations": (2, 2), "pads": (2, 1, 2, 1)}, (4, 3, 3, 3)), ({"group": 3}, (6, 1, 3, 3)),
    ({"group": 3, "strides": (2, 2), "pads": (1, 1, 1, 1)}, (3, 1, 3, 3)), ({}, (5, 3, 1, 1)),
    ({"strides": (2, 1)}, (5, 3, 1, 1))])
def test_conv2d(attrs, wshape):
    x, w, b = rand((2, 3, 9, 8)), rand(wshape), rand((wshape[0],))
    g, xs = graph_of({"x": (x, ("N", 3, 9, 8))},
                     lambda g, x: [g.add("conv", x, g.add_constant(w, "w"), g.add_constant(b, "b"), **attrs)])
    compile_and_check(g, xs)


def test_conv1d():
    x, w = rand((2, 4, 11)), rand((6, 2, 3))
    g, xs = graph_of({"x": (x, (2, 4, 11))},
                     lambda g, x: [g.add("conv", x, g.add_constant(w, "w"), group=2, strides=(2,), pads=(1, 1))])
    compile_and_check(g, xs)


@pytest.mark.parametrize("op", ["max_pool", "avg_pool"])
@pytest.mark.parametrize("attrs", [{"kernel": (2, 2), "strides": (2, 2)},
                                   {"kernel": (3, 3), "strides": (2, 2), "pads": (1, 1, 1, 1)},
                                   {"kernel": (3, 3), "strides": (2, 2), "ceil_mode": True},
                                   {"kernel": (3, 2), "pads": (1, 0, 1, 1), "dilations": (1, 2)}])
def test_pooling(op, attrs):
    x = rand((2, 3, 9, 8))
    extra = [{"count_include_pad": True}, {}] if op == "avg_pool" else [{}]
    if op == "avg_pool" and attrs.get("dilations"):
        return  # the reference's dilated average pool follows onnx; dilations are max_pool's business
    g, xs = graph_of({"x": (x, (2, 3, 9, 8))}, lambda g, x: [g.add(op, x, **attrs, **e) for e in extra])
    compile_and_check(g, xs)


@pytest.mark.parametrize("shape,perm", [((2, 3, 5, 7), (0, 2, 3, 1)), ((2, 37, 3, 19), (0, 3, 1, 2)), ((33, 17), (1, 0)),
                                        ((3, 1, 20, 18), (0, 3, 1, 2)), ((4, 6, 5), (2, 0, 1)),
                                        ((2, 3, 4, 5), (1, 0, 3, 2))])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.uint8, np.int16])
def test_transpose(shape, perm, dtype):
    """Batched 2-d transposes (after merging neighbor dims and dropping unit dims) run tiled, others as copies."""
    x = rand(shape, dtype, 0, 100)
    g, xs = graph_of({"x": (x, ("B",) + shape[1:])}, lambda g, x: [g.add("transpose", x, perm=perm)])
    compile_and_check(g, xs)


def test_data_movement():
    x, i = rand((4, 6, 5)), np.array([[3, -1], [0, 2]], np.int64)

    def build(g, x, i):
        parts = g.add_node("split", [x], {"axis": 1, "sizes": (2, 4)}, names=["p", "q"]).outputs
        return [g.add("transpose", x, perm=(2, 0, 1)),
                g.add("slice", x, starts=(1, -1), ends=(3, -7), axes=(0, 2), steps=(1, -2)),
                g.add("concat", x, parts[1], parts[0], axis=1),
                g.add("pad", x, pads=(1, 0, -1, 0, 2, 1), value=7.0),
                g.add("gather", x, i, axis=1),
                g.add("gather_elements", x, g.add_constant(rand((4, 2, 5), np.int64, -6, 6), "ge"), axis=1),
                g.add("tile", x, repeats=(1, 2, 3)),
                g.add("broadcast_to", g.add("slice", x, starts=(0,), ends=(1,), axes=(1,), steps=(1,)),
                      shape=(4, 3, 5)),
                g.add("cumsum", x, axis=1), g.add("cumsum", x, axis=2, exclusive=True, reverse=True),
                g.add("reshape", parts[0], shape=(8, 5)),
                g.add("gather_nd", x, g.add_constant(np.array([[[1, -2], [0, 5]]], np.int64), "nd")),
                g.add("gather_nd", x, g.add_constant(np.array([[2], [0], [3], [1]], np.int64), "nd1"),
                      batch_dims=1)]
    g, xs = graph_of({"x": (x, (4, 6, 5)), "i": (i, (2, 2))}, build)
    compile_and_check(g, xs)


def test_symbolic_shape_ops():
    x = rand((3, 5))
    g, xs = graph_of({"x": (x, ("B", "S"))},
                     lambda g, x: [g.add("shape_of", x),
                                   g.add("add", x, g.add("full", shape=("B", "S"), value=2.0, dtype=DType.f32))])
    compile_and_check(g, xs)


def test_unsupported_op_names_the_node():
    g, xs = graph_of({"x": (rand((3, 4)), (3, 4))}, lambda g, x: list(g.add_node("unique", [x], {}).outputs))
    with pytest.raises(UnsupportedError, match=r"'%unique, %unique_1, %unique_2, %unique_3 = unique': op 'unique' is "
                                               "not supported by the cpu"):
        leptonc.compile(g, quiet=True)


def test_unsupported_dtype_names_the_node():
    """(every dtype compiles for the cpu target; computing in f8e8m0fnu does not: tests/codegen/test_cpu_narrow.py)"""
    x = rand((3, 4)).astype(ml_dtypes.float8_e8m0fnu)
    g, xs = graph_of({"x": (x, (3, 4))}, lambda g, x: [g.add("exp", x)])
    with pytest.raises(leptonc.LeptoncError, match="'%exp = exp' computes in f8e8m0fnu"):
        leptonc.compile(g, quiet=True)


@pytest.mark.parametrize("rows", [1, 5])
def test_matmul_with_transposed_weight_view(rows):
    """A weight that is a transposed view (as torch's Linear gives after folding) is packed for the GEMM from
    its view: no plain copy of it is stored."""
    w = rand((24, 40))  # stored [out, in]; the graph multiplies by its transpose
    x = rand((rows, 40))
    g, xs = graph_of({"x": (x, (rows, 40))}, lambda g, x: [g.add("matmul", x, g.add_constant(w.T, "fc.weight"))])
    from leptonc.codegen.cpu.program import generate
    assert generate(g).meta["weights"] == ["fc.weight^P"]
    compile_and_check(g, xs)


def test_pointwise_conv_with_end_padding():
    x, w = rand((1, 2, 3, 2)), rand((3, 2, 1, 1))
    g, xs = graph_of({"x": (x, (1, 2, 3, 2))},
                     lambda g, x: [g.add("conv", x, g.add_constant(w, "w"), pads=(0, 0, 1, 1))])
    compile_and_check(g, xs)
