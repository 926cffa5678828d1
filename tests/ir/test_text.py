"""The text form: round trips, parse errors with line:column, and a fuzz test of the parser."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import leptonc
from leptonc.ir import DType, Graph, ParseError, TensorType, parse_ir, print_ir
from tests.random_graphs import graphs

MLP = """\
graph @mlp(%x: f32[B, 4]) -> (f32[B, 2], i64[B]) {
  %h = matmul(%x, %w) : f32[B, 2] loc("encoder.fc")
  %s = mul(%h, %c) : f32[B, 2] loc("encoder.fc")
  %r = relu(%s) : f32[B, 2] loc("encoder.act")
  %parts.0, %parts.1 = split(%r) {axis = 1, sizes = [1, 1]} : f32[B, 1], f32[B, 1]
  %i = argmax(%r) {axis = 1, keepdims = false} : i64[B]
  %f = reshape(%parts.1) {shape = ["B", 1]} : f32[B, 1] loc("/head/Reshape [1]: <x@y>")
  %cat = concat(%parts.0, %f) {axis = 1} : f32[B, 2]
  return %cat, %i
}
constants {  # 2 constants, 36 bytes
  %w = const @fc.weight [0.5, -1.0, 2.0, 0.25, 1e-05, inf, -0.0, 3.0] : f32[4, 2]
  %c = const @c [1.5] : f32[]
}
"""


def test_round_trip_and_same_outputs():
    g = parse_ir(MLP)
    assert print_ir(g) == MLP
    assert print_ir(parse_ir(print_ir(g))) == print_ir(g)
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    y, i = leptonc.run_reference(g, x)
    w = np.array([0.5, -1.0, 2.0, 0.25, 1e-05, np.inf, -0.0, 3.0], np.float32).reshape(4, 2)
    np.testing.assert_allclose(y, np.maximum((x @ w) * 1.5, 0), rtol=1e-6)
    assert i.dtype == np.int64 and i.shape == (3,)


def test_named_constants_come_from_the_constants_dict():
    g = Graph("big")
    x = g.add_input("x", TensorType(DType.f32, (2, 16)))
    w = g.add_constant(np.arange(32, dtype=np.float32).reshape(16, 2), "layer.w")
    g.set_outputs([g.add("matmul", x, w)])
    text = print_ir(g)
    assert "const @layer.w : f32[16, 2]" in text
    with pytest.raises(ParseError, match="no array for constant @layer.w"):
        parse_ir(text)
    g2 = parse_ir(text, constants=g.constants)
    assert print_ir(g2) == text


def test_ops_come_first_and_large_constants_as_a_summary():
    g = Graph("big")
    x = g.add_input("x", TensorType(DType.f32, (2, 16)))
    w = g.add_constant(np.arange(64, dtype=np.float32).reshape(16, 4), "layer.w")
    b = g.add_constant(np.ones(4, np.float32), "layer.b")
    g.set_outputs([g.add("add", g.add("matmul", x, w, loc="layer"), b, loc="layer")])
    text = print_ir(g)
    lines = text.splitlines()
    assert lines[1] == '  %matmul = matmul(%x, %layer.w) : f32[2, 4] loc("layer")'
    assert lines[5:] == ["constants {  # 2 constants, 272 bytes", "  %layer.w = const @layer.w : f32[16, 4]",
                         "  %layer.b = const @layer.b [1.0, 1.0, 1.0, 1.0] : f32[4]", "}"]
    again = parse_ir(text, {"layer.w": g.constants["layer.w"]})
    assert print_ir(again) == text and [n.loc for n in again.nodes if n.op != "const"] == ["layer", "layer"]
    np.testing.assert_array_equal(again.constants["layer.w"], g.constants["layer.w"])
    # every value inline: the text is complete on its own
    full = print_ir(g, constants="inline")
    assert "const @layer.w [0.0, 1.0, 2.0," in full
    assert print_ir(parse_ir(full), constants="inline") == full
    with pytest.raises(leptonc.LeptoncError, match="'summary' or 'inline'"):
        print_ir(g, constants="values")


def test_constants_among_the_ops_still_parse():
    """Text written before the constants block (artifacts store IR text) reads back the same."""
    old = MLP.replace('  %h = matmul', '  %w = const @fc.weight [0.5, -1.0, 2.0, 0.25, 1e-05, inf, -0.0, 3.0] : '
                      'f32[4, 2]\n  %h = matmul').replace('  %s = mul', '  %c = const @c [1.5] : f32[]\n  %s = mul')
    old = old[:old.index("constants {")]
    assert print_ir(parse_ir(old)) == MLP


def test_the_constants_block_holds_only_constants():
    bad = MLP.replace("  %c = const @c [1.5] : f32[]", "  %c = neg(%x) : f32[B, 4]")
    with pytest.raises(ParseError, match="13:8: expected 'const'"):
        parse_ir(bad)
    with pytest.raises(ParseError, match="%w is defined twice"):
        parse_ir(MLP.replace("  %s = mul", "  %w = neg(%x) : f32[B, 4]\n  %s = mul"))


def test_every_dtype_and_symbolic_dims_round_trip():
    g = Graph("types")
    outs = []
    for i, dt in enumerate(DType):
        v = g.add_input(f"x{i}", TensorType(dt, ("B*S", "S + 1", "?", 3)))
        outs.append(v)
    g.set_outputs(outs)
    text = print_ir(g)
    assert "bf16[B*S, S + 1, ?, 3]" in text and "i4[" in text
    assert print_ir(parse_ir(text)) == text


@pytest.mark.parametrize("text, where, expected", [
    ("graph @g() -> () {\n  return\n", "3:1", "expected a value like %x, found end of input"),
    ("graph @g(%x: f33[2]) -> () {\n return\n}", "1:14", "unknown dtype 'f33'"),
    ("graph @g(%x: f32[2]) -> (f32[2]) {\n  %y = neg(%z) : f32[2]\n  return %y\n}", "2:12",
     "use of undefined value %z"),
    ("graph @g(%x: f32[2]) -> (f32[2]) {\n  %y = nope(%x) : f32[2]\n  return %y\n}", "2:8",
     "unregistered op 'nope'"),
    ("graph @g(%x: f32[2]) -> (f32[2]) {\n  %y = neg(%x) : f32[3]\n  return %y\n}", "2:3",
     "inference gives f32[2]"),
    ("graph @g(%x: f32[2]) -> (f32[2]) {\n  %y = neg(%x) f32[2]\n  return %y\n}", "2:16",
     "expected ':' and the result types"),
    ("graph @g(%x: f32[2]) -> (f32[2]) {\n  %x = neg(%x) : f32[2]\n  return %x\n}", "2:3",
     "%x is defined twice"),
    ("graph @g(%x: f32[2]) -> (f32[2]) {\n  %y = neg(%x) {bad = 1} : f32[2]\n  return %y\n}", "2:8",
     "unknown attribute 'bad'"),
])
def test_parse_errors_give_line_column_and_what_was_expected(text, where, expected):
    with pytest.raises(ParseError) as info:
        parse_ir(text)
    assert str(info.value).startswith(where + ":"), str(info.value)
    assert expected in str(info.value)


_TOKENS = MLP.replace("(", " ( ").replace(")", " ) ").replace(",", " , ").replace("[", " [ ") \
    .replace("]", " ] ").replace("{", " { ").replace("}", " } ").replace(":", " : ").split(" ")


@st.composite
def mutated_ir(draw):
    tokens = list(_TOKENS)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["drop", "dup", "swap", "replace"]))
        i = draw(st.integers(0, len(tokens) - 1))
        j = draw(st.integers(0, len(tokens) - 1))
        if kind == "drop":
            del tokens[i]
        elif kind == "dup":
            tokens.insert(i, tokens[j])
        elif kind == "swap":
            tokens[i], tokens[j] = tokens[j], tokens[i]
        else:
            tokens[i] = draw(st.sampled_from(["%", "@", "-", "9" * 30, "1e999", '"', "?", "f32", "[]", "nan",
                                              "const", "=", "->", "}", "\x00", "%h", "B*", "-3"]))
        if not tokens:
            tokens = ["graph"]
    return " ".join(tokens)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_ir())
def test_mutated_text_raises_only_parse_errors(text):
    try:
        g = parse_ir(text)
    except ParseError:
        return
    assert print_ir(parse_ir(print_ir(g))) == print_ir(g)


_EDGE_TEXT = ["9" * 4300, "[" * 5000, "]" * 5000, "300", "-129", "256", "1e999", "1e39", "nan", "inf", "-inf",
              "-B", "B - 9", "99999999999", "9223372036854775808", "-1", "0", "true", "u8", "i4", "f8e4m3fn",
              "\x00", "\u00e9", "{", "}", "%", "@", ",", "]", "["]


@st.composite
def mutated_printed_graph(draw):
    """A random graph's text with bytes deleted, inserted or replaced, or edge-case tokens spliced in."""
    g = draw(graphs(max_steps=6))
    text = print_ir(g, inline_limit=draw(st.sampled_from([0, 8, 64])))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(text)))
        j = min(len(text), i + draw(st.integers(0, 3)))
        kind = draw(st.sampled_from(["delete", "byte", "edge"]))
        new = "" if kind == "delete" else chr(draw(st.integers(0, 255))) if kind == "byte" else \
            draw(st.sampled_from(_EDGE_TEXT))
        text = text[:i] + new + text[j:]
    return text, g.constants


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated_printed_graph())
def test_mutated_printed_graphs_raise_only_parse_errors(case):
    text, constants = case
    try:
        g = parse_ir(text, constants)
    except ParseError:
        return
    again = print_ir(g, inline_limit=0)
    assert print_ir(parse_ir(again, g.constants), inline_limit=0) == again
