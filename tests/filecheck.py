"""A small FileCheck: match text against CHECK directives, as LLVM's FileCheck does.

    # CHECK: %y = exp(%x)            the pattern occurs, after the previous match
    # CHECK-NEXT: return %y          ... on the line right after the previous match
    # CHECK-NOT: transpose           ... nowhere between the previous and the next match
    # CHECK-LABEL: graph @main       like CHECK (kept for familiarity)

A pattern is literal text, except {{regex}} parts, which are regular
expressions. Directives are read from lines of the form `# CHECK...: pattern`
(or `// CHECK...:`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_DIRECTIVE = re.compile(r"^\s*(?:#|//)\s*(CHECK(?:-NEXT|-NOT|-LABEL)?):\s?(.*?)\s*$")
_ANY_DIRECTIVE = re.compile(r"^\s*(?:#|//)\s*(CHECK[A-Z-]*):")


@dataclass
class Check:
    kind: str
    pattern: str
    line: int  # in the file that holds the directives, for messages

    def regex(self) -> re.Pattern:
        parts = re.split(r"\{\{(.*?)\}\}", self.pattern)
        return re.compile("".join(re.escape(p) if i % 2 == 0 else f"(?:{p})" for i, p in enumerate(parts)))


class CheckFailure(AssertionError):
    pass


def parse_checks(text: str) -> list[Check]:
    checks = []
    for number, line in enumerate(text.splitlines(), 1):
        m = _DIRECTIVE.match(line)
        if m:
            checks.append(Check(m.group(1), m.group(2), number))
        elif _ANY_DIRECTIVE.match(line):
            raise ValueError(f"line {number}: unknown directive {_ANY_DIRECTIVE.match(line).group(1)}")
    if checks and checks[0].kind == "CHECK-NEXT":
        raise ValueError(f"line {checks[0].line}: CHECK-NEXT cannot be the first directive")
    return checks


def filecheck(output: str, checks: "str | list[Check]") -> None:
    """Raise CheckFailure (an AssertionError) naming the first directive that does not hold."""
    if isinstance(checks, str):
        checks = parse_checks(checks)
    if not checks:
        raise ValueError("no CHECK directives")
    lines = output.splitlines()
    pos = 0  # index of the first line still open to matching
    pending_not: list[Check] = []

    def fail(check: Check, why: str, start: int) -> CheckFailure:
        shown = "\n".join(f"  {i + 1:3}| {text}" for i, text in enumerate(lines) if i >= start - 1)
        return CheckFailure(f"{check.kind} at line {check.line} ({check.pattern!r}): {why}\noutput from line "
                            f"{max(start, 1)}:\n{shown}")

    def check_nots(end: int) -> None:
        for c in pending_not:
            rx = c.regex()
            for i in range(pos, end):
                if rx.search(lines[i]):
                    raise fail(c, f"found on output line {i + 1}", pos)
        pending_not.clear()

    for check in checks:
        rx = check.regex()
        if check.kind == "CHECK-NOT":
            pending_not.append(check)
            continue
        if check.kind == "CHECK-NEXT":
            if pos >= len(lines) or not rx.search(lines[pos]):
                raise fail(check, "not on the next line", pos)
            found = pos
        else:
            found = next((i for i in range(pos, len(lines)) if rx.search(lines[i])), None)
            if found is None:
                raise fail(check, "not found", pos + 1)
        check_nots(found)
        pos = found + 1
    check_nots(len(lines))
