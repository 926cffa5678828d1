"""Tensor dimensions: an int, a symbol ("B"), an expression of symbols ("B*S", "S + 1"), or "?".

A symbolic dim is kept as its canonical text, so types compare and print as
plain data. Expressions are integer polynomials over the symbols; "?" is a
size nobody knows before run time (data-dependent) and is equal to nothing.
"""
from __future__ import annotations

import ast
import functools
from typing import Mapping, Union

Dim = Union[int, str]
UNKNOWN = "?"

# A polynomial: {sorted tuple of symbol names: integer coefficient}.
_Poly = dict


def _poly(d: Dim) -> _Poly | None:
    if isinstance(d, bool):
        raise TypeError("a dim is an int or a str")
    if isinstance(d, int):
        return {(): d} if d else {}
    if d == UNKNOWN:
        return None
    return _parse(d)


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> _Poly:  # (the dicts it returns are shared: nothing here edits a polynomial in place)
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError:
        raise ValueError(f"bad dim expression {text!r}") from None

    def walk(n) -> _Poly:
        if isinstance(n, ast.Name):
            return {(n.id,): 1}
        if isinstance(n, ast.Constant) and isinstance(n.value, int) and not isinstance(n.value, bool):
            return {(): n.value} if n.value else {}
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
            return _scale(walk(n.operand), -1)
        if isinstance(n, ast.BinOp):
            a, b = walk(n.left), walk(n.right)
            if isinstance(n.op, ast.Add):
                return _add(a, b)
            if isinstance(n.op, ast.Sub):
                return _add(a, _scale(b, -1))
            if isinstance(n.op, ast.Mult):
                return _mul(a, b)
        raise ValueError(f"bad dim expression {text!r}: only + - * of ints and symbols")

    return walk(tree)


def _add(a: _Poly, b: _Poly) -> _Poly:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
        if out[k] == 0:
            del out[k]
    return out


def _scale(a: _Poly, c: int) -> _Poly:
    return {k: v * c for k, v in a.items()} if c else {}


def _mul(a: _Poly, b: _Poly) -> _Poly:
    out: _Poly = {}
    for ka, va in a.items():
        for kb, vb in b.items():
            out = _add(out, {tuple(sorted(ka + kb)): va * vb})
    return out


def _format(p: _Poly | None) -> Dim:
    if p is None:
        return UNKNOWN
    if not p:
        return 0
    if list(p) == [()]:
        return p[()]
    terms = sorted(p.items(), key=lambda kv: (-len(kv[0]), kv[0]))
    text = ""
    for mono, c in terms:
        factors = list(mono)
        if abs(c) != 1 or not factors:
            factors.insert(0, str(abs(c)))
        term = "*".join(factors)
        if not text:
            text = ("-" if c < 0 else "") + term
        else:
            text += (" - " if c < 0 else " + ") + term
    return text


def canonical(d: Dim) -> Dim:
    """The one spelling of a dim: ints stay ints, expressions are normalized."""
    return _format(_poly(d))


def is_static(d: Dim) -> bool:
    return isinstance(d, int)


def symbols(d: Dim) -> set[str]:
    p = _poly(d)
    return set() if p is None else {s for mono in p for s in mono}


def mul(a: Dim, b: Dim) -> Dim:
    pa, pb = _poly(a), _poly(b)
    if pa == {} or pb == {}:
        return 0
    return UNKNOWN if pa is None or pb is None else _format(_mul(pa, pb))


def add(a: Dim, b: Dim) -> Dim:
    pa, pb = _poly(a), _poly(b)
    return UNKNOWN if pa is None or pb is None else _format(_add(pa, pb))


def sub(a: Dim, b: Dim) -> Dim:
    pa, pb = _poly(a), _poly(b)
    return UNKNOWN if pa is None or pb is None else _format(_add(pa, _scale(pb, -1)))


def floordiv(a: Dim, b: int) -> Dim:
    """a // b for an int b; symbolic only when every coefficient divides."""
    if isinstance(a, int):
        return a // b
    pa = _poly(a)
    if pa is None or any(v % b for v in pa.values()):
        return UNKNOWN
    return _format({k: v // b for k, v in pa.items()})


def product(dims) -> Dim:
    out: Dim = 1
    for d in dims:
        out = mul(out, d)
    return out


def divide_exact(a: Dim, b: Dim) -> Dim:
    """a / b when b divides a exactly (b an int or a single monomial), else UNKNOWN."""
    pa, pb = _poly(a), _poly(b)
    if pa is None or pb is None or len(pb) != 1:
        return UNKNOWN
    (mono_b, cb), = pb.items()
    out: _Poly = {}
    for mono, c in pa.items():
        rest = list(mono)
        for s in mono_b:
            if s not in rest:
                return UNKNOWN
            rest.remove(s)
        if c % cb:
            return UNKNOWN
        out[tuple(rest)] = c // cb
    return _format(out)


def provably_negative(d: Dim) -> bool:
    """Negative for every size of its symbols (sizes are >= 0): a negative int, or a polynomial whose
    constant term is negative and whose other coefficients are not positive."""
    p = _poly(d)
    return p is not None and p.get((), 0) < 0 and all(c <= 0 for c in p.values())


def may_be_negative(d: Dim) -> bool:
    """Some sizes of its symbols make d negative: a coefficient (or the constant term) below zero."""
    p = _poly(d)
    return p is not None and any(c < 0 for c in p.values())


def signed_dims(values) -> list[tuple[str, int, Dim]]:
    """(name, dim index, dim) of each symbolic dim of `values` (Values of a graph) that some sizes of its
    symbols make negative, as "H - 2" after a 3x3 conv: what every runtime checks before a run (bind_inputs)."""
    out = []
    for v in values:
        for i, d in enumerate(v.type.shape):
            if isinstance(d, str) and d != UNKNOWN and may_be_negative(d):
                out.append((v.name, i, d))
    return out


def same(a: Dim, b: Dim) -> bool:
    """Known to be equal (UNKNOWN is equal to nothing, itself included)."""
    return a != UNKNOWN and b != UNKNOWN and canonical(a) == canonical(b)


def compatible(a: Dim, b: Dim) -> bool:
    """Equal at run time without a relation between sizes that the graph does not state: the same
    polynomial, or either side "?" (known only at run time, and checked then). B against 768, or B
    against C, is not: that would pin B (see `relation`) or tie two symbols, and is refused."""
    return a == UNKNOWN or b == UNKNOWN or same(a, b)


def relation(a: Dim, b: Dim) -> str:
    """Why a == b cannot be assumed, for messages: the symbol it pins to a size ("B = 1"), or the tie
    between sizes it needs ("B = C")."""
    diff = _add(_poly(a) or {}, _scale(_poly(b) or {}, -1))
    linear = [m for m in diff if m]
    if len(linear) == 1 and len(linear[0]) == 1:
        (sym,), c = linear[0], diff[linear[0]]
        k = -diff.get((), 0)
        size = f"{k // c}" if k % c == 0 and k // c >= 0 else f"{k}/{c}, which is no size"
        return f"it pins the dynamic dim {sym} to {size} (compile with a fixed size for {sym})"
    return f"it needs {a} = {b}, which no input states (give equal dims one symbol)"


def evaluate(d: Dim, bindings: Mapping[str, int]) -> int:
    """The size of a dim once its symbols are bound; KeyError names a missing symbol."""
    if isinstance(d, int):
        return d
    p = _poly(d)
    if p is None:
        raise KeyError(UNKNOWN)
    total = 0
    for mono, c in p.items():
        term = c
        for s in mono:
            term *= bindings[s]
        total += term
    return total


def terms(d: Dim) -> list[tuple[int, tuple]]:
    """A known dim as (coefficient, symbols) terms of its polynomial, in canonical order."""
    p = _poly(d)
    if p is None:
        raise ValueError("an unknown dim ('?') has no terms")
    return sorted(((c, mono) for mono, c in p.items()), key=lambda t: (-len(t[1]), t[1]))


def contiguous_strides(shape) -> list:
    """Element strides of a row-major array of `shape`."""
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc = mul(acc, d)
    return list(reversed(strides))


def view_strides(shape, strides, new_shape) -> list | None:
    """Element strides of `new_shape` over the same elements, in the same order, as an array of `shape` with
    element `strides` (a reshape without a copy), or None when the reshape needs a copy (numpy's rule: each
    group of new dims spans a group of old dims whose elements are evenly spaced). Dims of size 1 take
    stride 0."""
    old = [(d, s) for d, s in zip(shape, strides) if not same(d, 1)]
    new = [j for j, d in enumerate(new_shape) if not same(d, 1)]
    out: list = [0] * len(new_shape)
    oi = ni = 0
    while ni < len(new) and oi < len(old):
        nj, oj = ni + 1, oi + 1
        size_new, size_old = new_shape[new[ni]], old[oi][0]
        while not same(size_new, size_old):
            smaller = _less(size_new, size_old)
            if smaller is None or (nj if smaller else oj) >= (len(new) if smaller else len(old)):
                return None
            if smaller:
                size_new = mul(size_new, new_shape[new[nj]])
                nj += 1
            else:
                size_old = mul(size_old, old[oj][0])
                oj += 1
        if any(not same(old[k][1], mul(old[k + 1][0], old[k + 1][1])) for k in range(oi, oj - 1)):
            return None
        out[new[nj - 1]] = old[oj - 1][1]
        for k in range(nj - 1, ni, -1):
            out[new[k - 1]] = mul(out[new[k]], new_shape[new[k]])
        ni, oi = nj, oj
    return out if ni == len(new) and oi == len(old) else None


def _less(a: Dim, b: Dim) -> bool | None:
    """a < b for dims that differ: by value, or by one dividing the other; None when unknown."""
    if isinstance(a, int) and isinstance(b, int):
        return a < b
    if divide_exact(b, a) != UNKNOWN:
        return True
    return False if divide_exact(a, b) != UNKNOWN else None
