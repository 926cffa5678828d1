"""Pipeline strings, as in mlir-opt: `"canonicalize,fold,cse,dce"`, options in braces:
`"quantize{weights=int8,per=channel}"`.

    item     := NAME [ "{" option ("," option)* "}" ]
    pipeline := item ("," item)*
    option   := KEY "=" VALUE      (VALUE bare, or "double-quoted" when it holds , { } = or spaces)

`parse_pipeline` checks every name and option against the registry, so a
typo fails before any pass runs; `str(pipeline)` prints the canonical form,
which parses back to an equal Pipeline.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from .registry import PassError, format_option_value, get_pass

_TOKEN = re.compile(r'\s*(?:(?P<word>[A-Za-z0-9_.+\-]+)|(?P<string>"(?:[^"\\]|\\.)*")|(?P<punct>[{},=]))')
_BARE = re.compile(r"[A-Za-z0-9_.+\-]+$")


@dataclass(frozen=True)
class PipelineEntry:
    """One pass of a pipeline with its options (typed values)."""

    name: str
    options: dict = field(default_factory=dict)

    def __str__(self) -> str:
        if not self.options:
            return self.name
        opts = ",".join(f"{k}={_format_value(v)}" for k, v in sorted(self.options.items()))
        return f"{self.name}{{{opts}}}"


@dataclass(frozen=True)
class Pipeline:
    entries: tuple

    def __str__(self) -> str:
        return ",".join(str(e) for e in self.entries)

    def __iter__(self):
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


def _format_value(v) -> str:
    text = format_option_value(v)
    return text if _BARE.match(text) else json.dumps(text)


def parse_pipeline(text: "str | Pipeline") -> Pipeline:
    """A pipeline string as a Pipeline; PassError on an unknown pass or option, or bad syntax."""
    if isinstance(text, Pipeline):
        return text
    tokens = _lex(text)
    entries = []
    pos = 0

    def where(i: int) -> str:
        col = tokens[i][2] if i < len(tokens) else len(text)
        return f"pipeline {text!r} at column {col + 1}"

    def expect(kind_or_text: str, what: str) -> str:
        nonlocal pos
        if pos < len(tokens) and kind_or_text in (tokens[pos][0], tokens[pos][1]):
            pos += 1
            return tokens[pos - 1][1]
        got = repr(tokens[pos][1]) if pos < len(tokens) else "the end"
        raise PassError(f"{where(pos)}: expected {what}, got {got}")

    while True:
        name_pos = pos
        name = expect("word", "a pass name")
        info = get_pass(name, where(name_pos))
        given = {}
        if pos < len(tokens) and tokens[pos][1] == "{":
            pos += 1
            while True:
                key_pos = pos
                key = expect("word", "an option name")
                expect("=", "'=' after the option name")
                value_tok = tokens[pos] if pos < len(tokens) else None
                if value_tok is None or value_tok[0] not in ("word", "string"):
                    expect("word", "an option value")
                pos += 1
                value = json.loads(value_tok[1]) if value_tok[0] == "string" else value_tok[1]
                if key in given:
                    raise PassError(f"{where(key_pos)}: option '{key}' is given twice")
                given[key] = value
                if pos < len(tokens) and tokens[pos][1] == "}":
                    pos += 1
                    break
                expect(",", "',' or '}' after an option")
        entries.append(PipelineEntry(name, info.check_options(given, where(name_pos))))
        if pos == len(tokens):
            break
        expect(",", "',' between passes")
    return Pipeline(tuple(entries))


def _lex(text: str) -> list[tuple[str, str, int]]:
    tokens, i = [], 0
    while i < len(text):
        m = _TOKEN.match(text, i)
        if m is None or m.end() == i:
            if text[i:].strip() == "":
                break
            raise PassError(f"pipeline {text!r} at column {i + 1}: unexpected {text[i]!r}")
        kind = m.lastgroup
        tokens.append((kind, m.group(kind), m.start(kind)))
        i = m.end()
    if not tokens:
        raise PassError("empty pipeline (give pass names separated by commas, e.g. \"fold,dce\")")
    return tokens
