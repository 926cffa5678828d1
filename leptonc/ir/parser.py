"""Parse IR text (the form printer.py writes) back into a Graph.

The constants may follow the graph in a `constants { ... }` block (as print_ir writes them) or stand among
the ops (as older text has them); a constant in the block is placed before every op. A statement may end
with its source location, loc("...").

Every problem, lexical, syntactic or semantic (unknown op, bad attribute,
type that disagrees with inference), is a ParseError with line:column. Input
is bounded: numbers up to MAX_NUMBER characters, lists nested up to MAX_DEPTH,
dims of up to MAX_DIM_TOKENS tokens; a constant's values must be numbers its
dtype holds (no 300 as u8, no NaN into an integer or into a type without NaN).
"""
from __future__ import annotations

import json
import math
import re

import ml_dtypes
import numpy as np

from . import dims as D
from .dtypes import DType
from .errors import LeptoncError, ParseError
from .graph import Graph, Node, Value
from .types import TensorType
from .verifier import check_node, verify

MAX_NUMBER = 64       # characters of a number
MAX_DEPTH = 32        # nesting of [...] in attribute values and constant literals
MAX_DIM_TOKENS = 64   # tokens of one dim expression

_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r]+|\#[^\n]*)
  | (?P<nl>\n)
  | (?P<value>%[A-Za-z0-9_.]+)
  | (?P<symbol>@[A-Za-z0-9_.]+)
  | (?P<number>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<arrow>->)
  | (?P<ident>-?[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[()\[\]{},:=?+*-])
""", re.VERBOSE)


class _Tok:
    __slots__ = ("kind", "text", "line", "col")

    def __init__(self, kind, text, line, col):
        self.kind, self.text, self.line, self.col = kind, text, line, col

    def __repr__(self):
        return self.text if self.kind != "eof" else "end of input"


def _lex(text: str) -> list[_Tok]:
    toks, pos, line, line_start = [], 0, 1, 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ParseError(f"unexpected character {text[pos]!r}", line, pos - line_start + 1)
        kind = m.lastgroup
        if kind == "number" and m.end() - pos > MAX_NUMBER:
            raise ParseError(f"number of {m.end() - pos} characters (at most {MAX_NUMBER})", line,
                             pos - line_start + 1)
        if kind == "nl":
            line, line_start = line + 1, m.end()
        elif kind != "ws":
            toks.append(_Tok(kind, m.group(), line, pos - line_start + 1))
        pos = m.end()
    toks.append(_Tok("eof", "", line, pos - line_start + 1))
    return toks


class _Parser:
    def __init__(self, text: str, constants):
        self.toks = _lex(text)
        self.i = 0
        self.constants = constants or {}
        self.values: dict[str, Value] = {}

    # -- token helpers -------------------------------------------------
    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def error(self, message: str, tok: _Tok | None = None) -> ParseError:
        tok = tok or self.tok
        return ParseError(message, tok.line, tok.col)

    def next(self) -> _Tok:
        tok = self.tok
        if tok.kind != "eof":
            self.i += 1
        return tok

    def at(self, text: str) -> bool:
        return self.tok.text == text and self.tok.kind in ("punct", "ident", "arrow")

    def expect(self, text: str, what: str | None = None) -> _Tok:
        if not self.at(text):
            raise self.error(f"expected {what or repr(text)}, found {self.tok!r}")
        return self.next()

    def expect_kind(self, kind: str, what: str) -> _Tok:
        if self.tok.kind != kind:
            raise self.error(f"expected {what}, found {self.tok!r}")
        return self.next()

    def comma_list(self, close: str, item):
        out = []
        if self.at(close):
            self.next()
            return out
        while True:
            out.append(item())
            if self.at(","):
                self.next()
                continue
            self.expect(close, f"',' or '{close}'")
            return out

    # -- grammar -------------------------------------------------------
    def graph(self) -> Graph:
        self.expect("graph", "'graph'")
        g = Graph(self.expect_kind("symbol", "a graph name like @main").text[1:])
        self.expect("(")

        def arg():
            tok = self.expect_kind("value", "an argument like %x")
            self.expect(":")
            v = g.add_input(tok.text[1:], self.type())
            self._define(v, tok, tok.text[1:])
            return v

        self.comma_list(")", arg)
        self.expect("->", "'->'")
        self.expect("(")
        result_types = self.comma_list(")", self.type)
        self.expect("{")
        end = self._constants_block(g)
        positions: dict[int, _Tok] = {}
        while not self.at("return"):
            start = self.tok
            node = self.statement(g)
            positions[id(node)] = start
        ret = self.next()
        outs = [] if self.at("}") else self._value_list()
        self.expect("}")
        if end is not None:
            self.i = end
        self.expect_kind("eof", "end of input after '}'")
        if len(outs) != len(result_types):
            raise self.error(f"graph returns {len(outs)} values but its signature lists {len(result_types)}", ret)
        for v, t in zip(outs, result_types):
            if v.type != t:
                raise self.error(f"returned %{v.name} is {v.type}, the signature says {t}", ret)
        g.set_outputs(outs)
        try:
            verify(g)
        except LeptoncError as e:
            bad = getattr(e, "node", None)
            tok = positions.get(id(bad), ret)
            raise ParseError(str(e), tok.line, tok.col) from None
        return g

    def _constants_block(self, g: Graph) -> int | None:
        """Parse the `constants { ... }` block that follows the graph body (which starts here), if any, and
        come back to the body; the index of the token after the block, or None when there is none."""
        start, depth = self.i, 1
        while depth and self.tok.kind != "eof":
            tok = self.next()
            if tok.kind == "punct" and tok.text in "{}":
                depth += 1 if tok.text == "{" else -1
        if depth or not self.at("constants"):
            self.i = start
            return None
        self.next()
        self.expect("{", "'{' after 'constants'")
        while not self.at("}"):
            targets = [self.expect_kind("value", "a constant like %w = const @name : f32[2]")]
            self.expect("=")
            op_tok = self.expect("const", "'const' (the constants block holds only constants)")
            self.const(g, targets, op_tok)
        self.next()
        end, self.i = self.i, start
        return end

    def _value_list(self) -> list[Value]:
        out = [self.use()]
        while self.at(","):
            self.next()
            out.append(self.use())
        return out

    def _define(self, v: Value, tok: _Tok, name: str):
        if name in self.values:
            raise self.error(f"%{name} is defined twice", tok)
        if v.name != name:
            raise self.error(f"bad value name %{name}", tok)
        self.values[name] = v

    def use(self) -> Value:
        tok = self.expect_kind("value", "a value like %x")
        try:
            return self.values[tok.text[1:]]
        except KeyError:
            raise self.error(f"use of undefined value {tok.text}", tok) from None

    def type(self) -> TensorType:
        tok = self.expect_kind("ident", "a type like f32[2, 3]")
        try:
            dtype = DType(tok.text)
        except ValueError:
            raise self.error(f"unknown dtype {tok.text!r}", tok) from None
        self.expect("[")
        t = TensorType(dtype, tuple(self.comma_list("]", self.dim)))
        try:
            t.check("type")
        except LeptoncError as e:
            raise self.error(str(e), tok) from None
        return t

    def dim(self):
        start = self.tok
        parts = []
        while self.tok.kind in ("number", "ident") or self.tok.text in ("?", "+", "-", "*"):
            parts.append(self.next().text)
            if len(parts) > MAX_DIM_TOKENS:
                raise self.error(f"dim expression longer than {MAX_DIM_TOKENS} tokens", start)
        if not parts:
            raise self.error("expected a dim (an int, a symbol or '?')")
        text = " ".join(parts)
        if text == "?":
            return D.UNKNOWN
        try:
            d = D.canonical(int(text)) if re.fullmatch(r"-?\d+", text) else D.canonical(text)
        except ValueError as e:
            raise self.error(str(e), start) from None
        if isinstance(d, int) and d < 0:
            raise self.error(f"negative dim {d}", start)
        return d

    def statement(self, g: Graph) -> Node:
        targets = [self.expect_kind("value", "a statement like %y = op(...) or 'return'")]
        while self.at(","):
            self.next()
            targets.append(self.expect_kind("value", "a result name"))
        self.expect("=")
        op_tok = self.expect_kind("ident", "an op name")
        if op_tok.text == "const":
            return self.const(g, targets, op_tok)
        self.expect("(")
        operands = self.comma_list(")", self.use)
        attrs = {}
        if self.at("{"):
            self.next()

            def attr():
                key = self.expect_kind("ident", "an attribute name")
                self.expect("=")
                if key.text in attrs:
                    raise self.error(f"attribute {key.text!r} given twice", key)
                attrs[key.text] = self.attr_value()

            self.comma_list("}", attr)
        types = self.result_types(len(targets))
        loc = self.loc()
        try:
            node = g.add_node(op_tok.text, operands, attrs, names=[t.text[1:] for t in targets], types=types,
                              loc=loc)
        except LeptoncError as e:
            raise self.error(str(e), op_tok) from None
        try:
            check_node(g, node)
        except LeptoncError as e:
            raise self.error(str(e), targets[0]) from None
        for v, t in zip(node.outputs, targets):
            self._define(v, t, t.text[1:])
        return node

    def loc(self) -> str | None:
        """An optional trailing loc("source")."""
        if not self.at("loc"):
            return None
        self.next()
        self.expect("(", "'(' after 'loc'")
        loc = self.string(self.expect_kind("string", 'a source name like "encoder.fc1"'))
        self.expect(")", "')' after the source name")
        return loc or None

    def string(self, tok: _Tok) -> str:
        try:
            return json.loads(tok.text)
        except ValueError as e:
            raise self.error(f"bad string {tok.text}: {e}", tok) from None

    def result_types(self, n: int) -> list[TensorType]:
        self.expect(":", "':' and the result types")
        types = [self.type()]
        while self.at(","):
            self.next()
            types.append(self.type())
        if len(types) != n:
            raise self.error(f"{n} results but {len(types)} types")
        return types

    def const(self, g: Graph, targets, op_tok) -> Node:
        if len(targets) != 1:
            raise self.error("const has one result", op_tok)
        name_tok = self.expect_kind("symbol", "a constant name like @fc1.weight")
        literal = None
        if self.at("["):
            literal = self.attr_value()
        (ty,) = self.result_types(1)
        cname = name_tok.text[1:]
        if literal is not None:
            arr = self.literal(literal, ty, name_tok)
        elif cname in self.constants:
            arr = np.asarray(self.constants[cname])
        else:
            raise self.error(f"no array for constant @{cname} (pass it in `constants`)", name_tok)
        if cname in g.constants and not np.array_equal(g.constants[cname], arr):
            raise self.error(f"constant @{cname} is given two different values", name_tok)
        g.constants[cname] = arr
        if not ty.is_static or (DType.from_numpy(arr.dtype), tuple(arr.shape)) != (ty.dtype, ty.shape):
            raise self.error(f"constant @{cname} is {DType.from_numpy(arr.dtype)}{list(arr.shape)}, "
                             f"the statement says {ty}", name_tok)
        node = g.add_node("const", [], {"name": cname}, names=[targets[0].text[1:]], types=[ty])
        self._define(node.output, targets[0], targets[0].text[1:])
        return node

    def literal(self, values, ty: TensorType, tok: _Tok) -> np.ndarray:
        """A const's printed values as an array of type `ty`, each value one that the dtype holds."""
        flat = list(_leaves(values))
        if not ty.is_static or len(flat) != math.prod(ty.shape):
            raise self.error(f"{len(flat)} constant values do not fill {ty}", tok)
        dtype = ty.dtype
        for x in flat:
            if not isinstance(x, (bool, int, float)):
                raise self.error(f"constant value {x!r} is not a number", tok)
            if dtype is DType.bool:
                ok = x in (0, 1)
            elif dtype.is_int:
                info = ml_dtypes.iinfo(dtype.numpy)
                ok = not isinstance(x, float) and info.min <= x <= info.max
            else:
                ok = math.isnan(x) or math.isinf(x) or _within_float_range(x, dtype)
            if not ok:
                raise self.error(f"constant value {x!r} is out of the range of {dtype}", tok)
        with np.errstate(all="ignore"):
            arr = np.array(flat, dtype=np.float64 if dtype.is_float else object).astype(dtype.numpy)
        if dtype.is_float:
            back = arr.astype(np.float64)
            for x, y in zip(flat, back):
                if math.isnan(x) != math.isnan(y) or (math.isinf(x) and x != y):
                    raise self.error(f"constant value {x!r} is not a value of {dtype}", tok)
        return arr.reshape(ty.shape)

    def attr_value(self, depth: int = 0):
        tok = self.next()
        if tok.kind == "number":
            if not re.search(r"[.eE]", tok.text):
                return int(tok.text)
            value = float(tok.text)
            if math.isinf(value):
                raise self.error(f"number {tok.text} is out of the range of f64 (write inf for infinity)", tok)
            return value
        if tok.kind == "string":
            return self.string(tok)
        if tok.kind == "ident":
            words = {"true": True, "false": False, "none": None, "inf": float("inf"),
                     "-inf": float("-inf"), "nan": float("nan")}
            if tok.text in words:
                return words[tok.text]
            try:
                return DType(tok.text)
            except ValueError:
                raise self.error(f"unexpected word {tok.text!r} in an attribute value", tok) from None
        if tok.text == "[":
            if depth >= MAX_DEPTH:
                raise self.error(f"lists nested deeper than {MAX_DEPTH}", tok)
            return tuple(self.comma_list("]", lambda: self.attr_value(depth + 1)))
        raise self.error(f"expected an attribute value, found {tok!r}", tok)


def _within_float_range(x: float, dtype: DType) -> bool:
    """x is at most the dtype's largest value, or rounds to it (as -3.4028235e+38, the text of f32's
    lowest, does)."""
    info = ml_dtypes.finfo(dtype.numpy)
    top = float(info.max)
    if abs(x) <= top:
        return True
    with np.errstate(all="ignore"):
        y = float(np.array(x).astype(dtype.numpy))
    return abs(y) == top and abs(x - y) <= float(info.eps) * top


def _leaves(value):
    if isinstance(value, tuple):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def parse_ir(text: str, constants: dict | None = None) -> Graph:
    """Parse IR text into a verified Graph. Constants printed by name only are looked up in `constants`."""
    if not isinstance(text, str):
        raise ParseError(f"IR text must be a str, got {type(text).__name__}", 1, 1)
    return _Parser(text, constants).graph()
