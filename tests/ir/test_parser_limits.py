"""IR text at the edges: numbers too long, lists too deep, constants outside their dtype, sizes that
are negative or too large. Each is a ParseError with line:column, never a ValueError or RecursionError
and never a silently wrapped value."""
from __future__ import annotations

import numpy as np
import pytest

import leptonc
from leptonc.ir import ParseError, parse_ir


def _neg(attrs: str) -> str:
    return f"graph @g(%x: f32[2]) -> (f32[2]) {{\n  %y = neg(%x) {{{attrs}}} : f32[2]\n  return %y\n}}"


def _const(values: str, ty: str) -> str:
    return f"graph @g() -> ({ty}) {{\n  %c = const @c [{values}] : {ty}\n  return %c\n}}"


def _error(text: str) -> str:
    with pytest.raises(ParseError) as info:
        parse_ir(text)
    return str(info.value)


def test_a_4300_digit_integer_is_a_parse_error():
    assert _error(_neg("a = " + "9" * 4300)).startswith("2:21: number of 4300 characters")
    assert "out of the range of f64" in _error(_neg("a = 1e999"))


def test_deep_nesting_is_a_parse_error():
    assert "lists nested deeper than 32" in _error(_neg("a = " + "[" * 5000 + "]" * 5000))
    assert "dim expression longer than 64" in _error("graph @g(%x: f32[" + " + ".join(["B"] * 5000) + "]) -> () {\n"
                                                     "  return\n}")


@pytest.mark.parametrize("values, ty, words", [
    ("300, 1", "u8[2]", "300 is out of the range of u8"),
    ("-1", "u32[1]", "-1 is out of the range of u32"),
    ("128", "i8[1]", "128 is out of the range of i8"),
    ("9223372036854775808", "i64[1]", "out of the range of i64"),
    ("-9", "i4[1]", "-9 is out of the range of i4"),
    ("nan", "i32[1]", "nan is out of the range of i32"),
    ("1.5", "i32[1]", "1.5 is out of the range of i32"),
    ("2", "bool[1]", "2 is out of the range of bool"),
    ("1e6", "f16[1]", "out of the range of f16"),
    ("1e39", "f32[1]", "out of the range of f32"),
    ("3.5e38", "f32[1]", "out of the range of f32"),
    ("1e30", "f4e2m1fn[1]", "out of the range of f4e2m1fn"),
    ("inf", "f8e4m3fn[1]", "inf is not a value of f8e4m3fn"),
    ("nan", "f4e2m1fn[1]", "nan is not a value of f4e2m1fn"),
    ("-1.0", "f8e8m0fnu[1]", "not a value of f8e8m0fnu"),
    ("1, 2, 3", "f32[2]", "3 constant values do not fill f32[2]"),
    ('"a"', "f32[1]", "'a' is not a number"),
    ("none", "f32[1]", "None is not a number"),
])
def test_constant_literals_outside_their_dtype_are_refused(values, ty, words):
    message = _error(_const(values, ty))
    assert message.startswith("2:14:") and words in message, message


@pytest.mark.parametrize("values, ty, want", [
    ("255, 0", "u8[2]", [255, 0]),
    ("18446744073709551615", "u64[1]", [2 ** 64 - 1]),
    ("-8, 7", "i4[2]", [-8, 7]),
    ("true, 0", "bool[2]", [True, False]),
    ("65504.0, -inf, nan", "f16[3]", [65504.0, -np.inf, np.nan]),
    ("448.0", "f8e4m3fn[1]", [448.0]),
    ("-3.4028235e+38, 3.4028235e+38", "f32[2]", [np.finfo(np.float32).min, np.finfo(np.float32).max]),
    ("6.5", "f4e2m1fn[1]", [6.0]),  # rounds to the largest value
])
def test_constant_literals_at_the_edges_of_their_dtype_parse(values, ty, want):
    g = parse_ir(_const(values, ty))
    np.testing.assert_array_equal(g.constants["c"].astype(np.float64 if "f" in ty else object), want)
    assert leptonc.parse_ir(leptonc.print_ir(g)).constants["c"].tobytes() == g.constants["c"].tobytes()


@pytest.mark.parametrize("ty, words", [
    ("f32[-2]", "negative dim -2"),
    ("f32[-B - 1]", "dim 0 (-B - 1) is negative"),
    ("f32[99999999999, 99999999999]", "too large"),
    ("f64[70368744177664]", "too large"),  # 2**46 elements of 8 bytes
])
def test_negative_and_huge_dims_are_refused_where_written(ty, words):
    message = _error(f"graph @g(%x: {ty}) -> () {{\n  return\n}}")
    assert message.startswith("1:") and words in message, message


def test_results_with_negative_dims_are_refused_naming_the_node():
    text = ("graph @g(%x: f32[2, 3]) -> (f32[2, ?]) {\n"
            "  %y = pad(%x) {pads = [0, -5, 0, -5]} : f32[2, ?]\n  return %y\n}")
    message = _error(text)
    assert message.startswith("2:") and "pad" in message and "negative" in message, message


def test_operand_counts_and_attribute_domains_come_from_the_registry():
    assert "takes 1 operands, got 2" in _error(
        "graph @g(%x: f32[2]) -> (f32[2]) {\n  %y = relu(%x, %x) : f32[2]\n  return %y\n}")
    text = ("graph @g(%x: f32[1, 1, 4, 4]) -> (f32[1, 1, 4, 4]) {\n"
            "  %y = max_pool(%x) {kernel = [1, 1], strides = [0, 1]} : f32[1, 1, 4, 4]\n  return %y\n}")
    assert "attribute 'strides' must be >= 1" in _error(text)
    assert "must be int (64-bit)" in _error(
        "graph @g(%x: f32[2]) -> (f32[2]) {\n  %y = cumsum(%x) {axis = 99999999999999999999} : f32[2]\n"
        "  return %y\n}")


@pytest.mark.parametrize("op, ty, words", [
    ('topk(%x) {k = -1, axis = 1}', "f32[3, ?], i64[3, ?]", "attribute 'k' must be >= 0"),
    ('pad(%x) {pads = [0, -4, 0, 2], mode = "edge"}', "f32[3, 2]", "cannot pad axis 1, which holds no elements"),
    ("tile(%x) {repeats = [-1, 1]}", "f32[?, 4]", "dim 0 (-3) is negative"),
    ("split(%x) {axis = 1, sizes = [-1, 5]}", "f32[3, ?], f32[3, ?]", "dim 1 (-1) is negative"),
])
def test_attributes_that_would_give_negative_or_empty_sizes_are_refused(op, ty, words):
    lhs = "%y, %z" if ", i64" in ty or ty.count("f32") == 2 else "%y"
    text = f"graph @g(%x: f32[3, 4]) -> ({ty}) {{\n  {lhs} = {op} : {ty}\n  return {lhs}\n}}"
    message = _error(text)
    assert message.startswith("2:") and words in message, message
