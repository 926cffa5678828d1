"""The kernel-body layer shared by the cpu and triton targets (codegen/kernel_body.py): every elementwise op
of the registry lowers on both from each target's primitives, and what one target decomposes (atan, tanh,
pow, round on triton) or spells natively (libm on cpu) computes what the reference does on both."""
from __future__ import annotations

import numpy as np
import pytest

import leptonc
from leptonc.codegen.cpu.cexpr import C
from leptonc.codegen.kernel_body import Ops, elementwise
from leptonc.codegen.triton.texpr import TRITON
from leptonc.ir import DType, Graph, TensorType
from leptonc.ir.registry import all_ops
from tests.codegen.cpu_check import assert_matches_reference

RNG = np.random.default_rng(0)
ELEMENTWISE = sorted(name for name, op in all_ops().items() if op.has("elementwise"))
ATTRS = {"isinf": {"detect_positive": True, "detect_negative": True}, "mod": {"fmod": False},
         "bit_shift": {"direction": "left"}, "cast": {"dtype": DType.i32}}
BITS = {"bit_shift", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not"}
BOOLS = {"and", "or", "xor", "not"}


def _operand_dtype(op: str) -> DType:
    return DType.bool if op in BOOLS else DType.i32 if op in BITS else DType.f32


@pytest.mark.parametrize("ops", [C, TRITON], ids=["cpu", "triton"])
def test_every_registered_elementwise_op_lowers_from_primitives(ops: Ops):
    for op in ELEMENTWISE:
        arity = all_ops()[op].arity[0]
        dt = _operand_dtype(op)
        dtypes = ([DType.bool, dt, dt] if op == "where" else [dt] * arity)
        out = DType.bool if op in BOOLS | {"isnan", "isinf", "equal", "less", "less_equal", "greater",
                                            "greater_equal"} else ATTRS.get(op, {}).get("dtype", dt)
        text = elementwise(ops, op, ATTRS.get(op, {}), [f"x{i}" for i in range(len(dtypes))], dtypes, out)
        assert all(f"x{i}" in text for i in range(len(dtypes))), (op, text)


def test_a_function_the_target_lacks_is_composed_from_the_ones_it_has():
    assert C.function("atan", ["x"], DType.f32) == "atanf(x)"
    assert TRITON.function("atan", ["x"], DType.f32) is None
    text = elementwise(TRITON, "atan", {}, ["x"], [DType.f32], DType.f32)
    assert "tl.abs(x)" in text and "atan" not in text


def test_a_composite_names_what_it_reads_twice_where_the_target_holds_statements():
    lines: list[str] = []

    def bind(expr: str, dtype: DType) -> str:
        lines.append(f"t{len(lines)} = {expr}")
        return f"t{len(lines) - 1}"

    text = elementwise(TRITON, "tanh", {}, ["x"], [DType.f32], DType.f32, bind=bind)
    assert lines[0] == "t0 = tl.abs(x)" and lines[1].startswith("t1 = tl.exp(") and text.count("tl.exp") == 0


def test_integer_pow_is_an_error_where_the_target_has_no_integer_power():
    assert "lep_ipow_int64_t" in elementwise(C, "pow", {}, ["a", "b"], [DType.i64, DType.i64], DType.i64)
    with pytest.raises(leptonc.LeptoncError, match="pow of i64 by i64 is not supported by the triton target"):
        elementwise(TRITON, "pow", {}, ["a", "b"], [DType.i64, DType.i64], DType.i64)


@pytest.fixture(params=["cpu", "triton"])
def target(request):
    if request.param == "triton":
        pytest.importorskip("triton")
        request.getfixturevalue("triton_device")
    return request.param


def _check(graph: Graph, target: str, *inputs) -> None:
    cm = leptonc.compile(graph, target=target, quiet=True)
    assert_matches_reference(cm.run(*inputs), leptonc.run_reference(graph, *inputs))


def test_inverse_trigonometric_and_hyperbolic_ops(target):
    g = Graph("inverse")
    x = g.add_input("x", TensorType(DType.f32, (4, 33)))
    big = g.add_input("big", TensorType(DType.f32, (4, 33)))
    g.set_outputs([g.add(op, x) for op in ("asin", "acos", "atan", "atanh", "tanh", "asinh", "round")]
                  + [g.add("atan", big), g.add("acosh", big), g.add("pow", big, x), g.add("mod", big, x),
                     g.add("pow", x, g.add_constant(np.array(0.37, np.float32), "c"))])
    xv = RNG.uniform(-1, 1, (4, 33)).astype(np.float32)
    xv[0, :8] = [1.0, -1.0, 0.0, np.nan, 0.5, -0.5, 0.4142, -2.5]
    bv = RNG.uniform(1, 40, (4, 33)).astype(np.float32)
    bv[0, :3] = [np.inf, 1.0, 2.414]
    _check(g, target, xv, bv)


@pytest.mark.parametrize("last", [False, True])
def test_arg_reductions_over_ties_and_nan(target, last):
    g = Graph("arg")
    x = g.add_input("x", TensorType(DType.f32, (4, 5)))
    g.set_outputs([g.add(op, x, axis=1, keepdims=False, select_last_index=last) for op in ("argmax", "argmin")]
                  + [g.add(op, x, axes=(1,), keepdims=False) for op in ("reduce_max", "reduce_min")])
    xv = np.array([[1, 3, 3, 0, 2], [2, np.nan, 5, np.nan, 1], [7, 7, 1, 1, 7], [-np.inf] * 5], np.float32)
    _check(g, target, xv)


def test_integer_division_and_casts_out_of_range(target):
    g = Graph("ints")
    a = g.add_input("a", TensorType(DType.i32, (3, 6)))
    b = g.add_input("b", TensorType(DType.i32, (3, 6)))
    f = g.add_input("f", TensorType(DType.f32, (6,)))
    g.set_outputs([g.add("div", a, b), g.add("mod", a, b), g.add("mod", a, b, fmod=True),
                   *(g.add("cast", f, dtype=dt) for dt in (DType.i32, DType.i8, DType.bool))])
    av = np.array([[-2**31, 7, -7, 7, -7, 0]] * 3, np.int32)
    bv = np.array([[-1, 2, 2, -2, 0, 0], [3, -1, -3, 1, 5, -5], [1, 1, 1, 1, 1, 1]], np.int32)
    fv = np.array([np.nan, 3e9, -3e9, 300.7, -2.5, 0.0], np.float32)
    _check(g, target, av, bv, fv)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.int64], ids=str)
def test_shift_counts_out_of_range_give_what_numpy_gives(target, dtype):
    """0, or -1 shifting a negative value right, for a count below 0 or past the width (undefined in C)."""
    g = Graph("shifts")
    a = g.add_input("a", TensorType(DType.from_numpy(dtype), (2, 8)))
    b = g.add_input("b", TensorType(DType.from_numpy(dtype), (2, 8)))
    g.set_outputs([g.add("bit_shift", a, b, direction=d) for d in ("left", "right")])
    av = np.array([[5, -8, 1, -1, 100, -100, 3, -3]] * 2).astype(dtype)
    bv = np.array([[0, 1, 7, 8, 31, 32, 63, 64], [-1, -2, 2, 3, 33, 100, 127, 9]]).astype(dtype)
    _check(g, target, av, bv)


@pytest.mark.parametrize("exclusive,reverse", [(False, False), (True, False), (True, True)])
def test_scans_and_triangles(target, exclusive, reverse):
    g = Graph("scans")
    x = g.add_input("x", TensorType(DType.f32, (3, 6)))
    k = g.add_input("k", TensorType(DType.i64, (1,)))
    g.set_outputs([g.add(op, x, axis=1, exclusive=exclusive, reverse=reverse) for op in ("cumsum", "cumprod")]
                  + [g.add("trilu", x, k, upper=False), g.add("trilu", x, upper=True, diagonal=-1)])
    xv = RNG.uniform(0.5, 1.5, (3, 6)).astype(np.float32)
    xv[1, 2] = 0.0  # an exclusive product past a zero is not a quotient
    _check(g, target, xv, np.array([1], np.int64))
