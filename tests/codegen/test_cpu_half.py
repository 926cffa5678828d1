"""f16 and bf16 on the cpu target: values computed in f32 (the widen-half pass), casts in C.

Casts between f32 and the half types match numpy / ml_dtypes bit for bit (round to nearest even, ties,
subnormals, overflow to inf, NaN). Models with half inputs, weights and outputs (an MLP, a conv,
elementwise chains) match the reference interpreter, which computes in each op's dtype, within a few
units in the last place of the half type."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import leptonc
from leptonc.ir import DType, Graph, TensorType
from leptonc.passes import run_pipeline

HALVES = [DType.f16, DType.bf16]
ULP = {DType.f16: 2.0 ** -10, DType.bf16: 2.0 ** -7}


def _cast_graph(src: DType, dst: DType, n: int) -> Graph:
    g = Graph("cast")
    x = g.add_input("x", TensorType(src, (n,)))
    g.set_outputs([g.add("cast", x, dtype=dst)])
    return g


def _special_f32() -> np.ndarray:
    """Zeros, infinities, NaN, the edges of each half type's range, subnormals, and values at the tie
    between two half values (which round to the even one) or just beside it."""
    values = [0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1.0, -1.0, 65504.0, 65519.0, 65520.0, 65536.0, 1e30,
              2.0 ** -14, 2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -25, 1.5 * 2.0 ** -24, 2.0 ** -26, 1e-40, 1e-45,
              float(ml_dtypes.finfo(ml_dtypes.bfloat16).max), 3.3895314e38, 3.4e38]
    for ulp in (2.0 ** -10, 2.0 ** -7):          # ties of f16 and bf16 around 1 and 1.5
        for base in (1.0, 1.5, 1.0 + ulp):
            values += [base + ulp / 2, base + ulp / 2 * (1 + 2.0 ** -12), base + ulp / 2 * (1 - 2.0 ** -12)]
    special = np.array(values, np.float32)
    return np.concatenate([special, -special])


def _random_f32(n: int) -> np.ndarray:
    """f32 values of random bits (every exponent), NaNs left out (their payloads are checked apart)."""
    bits = np.random.default_rng(0).integers(0, 2 ** 32, n, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    return x[~np.isnan(x)]


def _same_bits(got: np.ndarray, want: np.ndarray) -> None:
    """Bit for bit, NaNs aside: a NaN must be a NaN of the same sign."""
    assert got.dtype == want.dtype
    nan = np.isnan(want.astype(np.float32))
    assert np.array_equal(np.isnan(got.astype(np.float32)), nan)
    assert np.array_equal(np.signbit(got[nan].astype(np.float32)), np.signbit(want[nan].astype(np.float32)))
    width = np.uint16 if got.itemsize == 2 else np.uint32
    bad = np.flatnonzero(got[~nan].view(width) != want[~nan].view(width))
    assert not bad.size, f"{bad.size} differ, first {want[~nan][bad[0]]!r}: got {got[~nan][bad[0]]!r}"


@pytest.mark.parametrize("half", HALVES, ids=str)
def test_cast_from_f32_is_bit_exact(half):
    x = np.concatenate([_special_f32(), _random_f32(1 << 16)])
    with np.errstate(over="ignore"):
        want = x.astype(half.numpy)
    got = leptonc.compile(_cast_graph(DType.f32, half, x.size), quiet=True).run(x)[0]
    _same_bits(got, want)


@pytest.mark.parametrize("half", HALVES, ids=str)
def test_cast_to_f32_is_bit_exact_for_every_half_value(half):
    x = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(half.numpy)
    got = leptonc.compile(_cast_graph(half, DType.f32, x.size), quiet=True).run(x)[0]
    _same_bits(got, x.astype(np.float32))


def test_cast_between_half_types_goes_through_f32_exactly():
    x = np.concatenate([_special_f32(), _random_f32(4096)]).astype(ml_dtypes.bfloat16)
    with np.errstate(over="ignore"):
        want = leptonc.run_reference(_cast_graph(DType.bf16, DType.f16, x.size), x)[0]
    _same_bits(leptonc.compile(_cast_graph(DType.bf16, DType.f16, x.size), quiet=True).run(x)[0], want)


def _assert_close(got, want, half: DType, ulps: float = 4.0) -> None:
    """Within `ulps` units in the last place of the half type, scaled by the output's largest value."""
    assert got.dtype == want.dtype and got.shape == want.shape
    g, w = got.astype(np.float64), want.astype(np.float64)
    assert np.array_equal(np.isnan(g), np.isnan(w))
    fin = np.isfinite(w)
    assert np.array_equal(g[~fin & ~np.isnan(w)], w[~fin & ~np.isnan(w)])
    err = float(np.abs(g[fin] - w[fin]).max())
    assert err <= ulps * ULP[half] * max(1.0, float(np.abs(w[fin]).max())), err


def _check(graph: Graph, inputs, half: DType, ulps: float = 4.0):
    cm = leptonc.compile(graph, quiet=True)
    got, want = cm.run(*inputs), leptonc.run_reference(graph, *inputs)
    for g, w in zip(got, want):
        _assert_close(g, w, half, ulps)
    return cm


def _no_half_arithmetic(graph: Graph) -> None:
    """After widen-half only casts (to or from f32) touch a half value."""
    lowered = run_pipeline(graph, "widen-half")
    for node in lowered.nodes:
        if node.op != "cast":
            assert all(v.dtype not in HALVES for v in node.inputs + node.outputs), node.label
    assert [v.type for v in lowered.inputs] == [v.type for v in graph.inputs]
    assert [v.type for v in lowered.outputs] == [v.type for v in graph.outputs]


@pytest.mark.parametrize("half", HALVES, ids=str)
def test_mlp_with_half_weights_inputs_and_outputs(half):
    rng = np.random.default_rng(1)
    g = Graph("mlp")
    x = g.add_input("x", TensorType(half, (8, 32)))
    h = x
    for i, (k, n) in enumerate([(32, 64), (64, 64), (64, 10)]):
        w = g.add_constant((rng.standard_normal((k, n)) / np.sqrt(k)).astype(half.numpy), f"w{i}")
        b = g.add_constant(rng.standard_normal(n).astype(half.numpy), f"b{i}")
        h = g.add("add", g.add("matmul", h, w), b)
        h = g.add(("tanh", "relu", "exp")[i], h)
    g.set_outputs([g.add("div", h, g.add("reduce_sum", h, axes=(1,), keepdims=True))])
    _no_half_arithmetic(g)
    _check(g, [rng.standard_normal((8, 32)).astype(half.numpy)], half)


@pytest.mark.parametrize("half", HALVES, ids=str)
def test_conv_and_pooling_with_half_values(half):
    rng = np.random.default_rng(2)
    g = Graph("conv")
    x = g.add_input("x", TensorType(half, (2, 3, 12, 12)))
    w = g.add_constant((rng.standard_normal((8, 3, 3, 3)) / 5).astype(half.numpy), "w")
    b = g.add_constant(rng.standard_normal(8).astype(half.numpy), "b")
    y = g.add("relu", g.add("conv", x, w, b, pads=(1, 1, 1, 1)))
    # (the reference's max_pool takes no bf16 operand: its padding value is read from np.iinfo)
    y = g.add("max_pool" if half is DType.f16 else "avg_pool", y, kernel=(2, 2), strides=(2, 2))
    g.set_outputs([y, g.add("reduce_mean", y, axes=(2, 3))])
    _no_half_arithmetic(g)
    _check(g, [rng.standard_normal((2, 3, 12, 12)).astype(half.numpy)], half)


def test_elementwise_chains_mixing_half_types_and_f32():
    """f16 and bf16 inputs in one graph, a cast between them, a half input that is also an output, an f32
    output computed from half values, and an explicit cast to f16 inside f32 arithmetic, whose rounding
    must stay (compared bit for bit: everything around it is f32)."""
    rng = np.random.default_rng(3)
    g = Graph("chain")
    a = g.add_input("a", TensorType(DType.f16, (4, 33)))
    b = g.add_input("b", TensorType(DType.bf16, (4, 33)))
    c = g.add_input("c", TensorType(DType.f32, (4, 33)))
    t = g.add("tanh", g.add("mul", a, g.add_constant(np.float16(1.5), "k")))
    s = g.add("add", g.add("cast", t, dtype=DType.bf16), g.add("exp", b))
    rounded = g.add("mul", g.add("cast", g.add("cast", c, dtype=DType.f16), dtype=DType.f32), c)
    mixed = g.add("where", g.add("greater", a, g.add_constant(np.float16(0), "z")),
                  g.add("cast", s, dtype=DType.f32), c)
    padded = g.add("pad", t, pads=(0, 1, 0, 2), value=0.1)   # the pad value is rounded to f16 too
    g.set_outputs([s, a, rounded, mixed, g.add("neg", t), g.add("cast", padded, dtype=DType.f32)])
    _no_half_arithmetic(g)
    inputs = [rng.standard_normal((4, 33)).astype(np.float16), rng.standard_normal((4, 33)).astype(ml_dtypes.bfloat16),
              (rng.standard_normal((4, 33)) * 1000).astype(np.float32)]
    cm = leptonc.compile(g, quiet=True)
    got, want = cm.run(*inputs), leptonc.run_reference(g, *inputs)
    _assert_close(got[0], want[0], DType.bf16)
    _same_bits(got[1], inputs[0])
    _same_bits(got[2], want[2])
    _assert_close(got[3], want[3], DType.bf16)
    _same_bits(got[4], want[4])
    _same_bits(got[5], want[5])


@pytest.mark.parametrize("half", HALVES, ids=str)
def test_widen_half_keeps_the_reference_values(half):
    """The pass itself, on the reference interpreter: rounding after each op reproduces each op's dtype."""
    rng = np.random.default_rng(4)
    g = Graph("widen")
    x = g.add_input("x", TensorType(half, (6, 16)))
    w = g.add_constant(rng.standard_normal((16, 16)).astype(half.numpy), "w")
    y = g.add("sigmoid", g.add("add", g.add("matmul", x, w), x))
    g.set_outputs([g.add("transpose", y, perm=(1, 0)), g.add("reduce_max", y, axes=(1,))])
    inputs = [rng.standard_normal((6, 16)).astype(half.numpy)]
    for got, want in zip(leptonc.run_reference(run_pipeline(g, "widen-half"), *inputs),
                         leptonc.run_reference(g, *inputs)):
        _assert_close(got, want, half, ulps=1.0)


def test_widen_half_keeps_the_bits_a_bitcast_reads():
    """A bitcast of half values (the graph's, an op's, a constant's) reads their bits, not the f32 ones."""
    g = Graph("bits")
    x = g.add_input("x", TensorType(DType.i16, (5,)))
    y = g.add("exp", g.add("bitcast", x, dtype=DType.f16))
    c = g.add_constant(np.array([1, 2, 3, 4, 5], np.float16), "c")
    g.set_outputs([y, g.add("bitcast", y, dtype=DType.i16), g.add("bitcast", c, dtype=DType.i16)])
    widened = run_pipeline(g, "widen-half")
    x_bits = np.array([15360, 0, -1024, 100, 31744], np.int16)
    for got, want in zip(leptonc.run_reference(widened, x_bits),
                         leptonc.run_reference(g, x_bits)):
        _same_bits(got, want)


@pytest.mark.parametrize("op, out", [("cast", DType.f32), ("cast", DType.i8), ("add", DType.i4), ("less", DType.bool)])
def test_i4_operands_are_sign_extended(op, out):
    """An i4 element sits in a byte with its high bits clear: -8 must read as -8, not 8."""
    g = Graph()
    x = g.add_input("x", TensorType(DType.i4, (8,)))
    y = g.add_input("y", TensorType(DType.i4, (8,)))
    r = g.add("cast", x, dtype=out) if op == "cast" else g.add(op, x, y)
    g.set_outputs([r])
    a = np.array([-8, -7, -1, 0, 1, 3, 7, -3]).astype(ml_dtypes.int4)
    b = np.array([-8, 1, -1, 7, 7, -8, 1, 2]).astype(ml_dtypes.int4)
    want = leptonc.run_reference(g, a, b)[0]
    got = leptonc.compile(g, (a, b), quiet=True, cache=False)(a, b)
    np.testing.assert_array_equal(np.asarray(got).astype(np.float32), want.astype(np.float32))
