"""Checking run-time inputs against a graph signature and binding its symbolic dims.

Every check happens before any kernel runs: dtypes, ranks, each dim against its declared size or
symbol (a symbol shared by several inputs, or appearing in an expression such as "S + 1", must agree
everywhere), and, when the caller passes them, the dims of the graph's values that some sizes make
negative or that an op takes for granted (`ir/size_checks.py`: a conv or slice over "H - 2" is refused for
H = 1, a slice to 8 of an axis of size S for S = 5, not run).
"""
from __future__ import annotations

import numpy as np

from ..ir import dims as D
from ..ir.errors import ShapeError
from ..ir.types import TensorType


def bind_inputs(names: list[str], types: list[TensorType], arrays,
                signed: list[tuple[str, int, D.Dim]] = (), symbols: list[str] = ()
                ) -> tuple[list[np.ndarray], dict[str, int]]:
    """Check each array's dtype and shape against its declared type; return the arrays and symbol sizes.

    `signed` lists (value name, dim index, dim[, what needs it]) of the dims that must not be negative
    (ir/size_checks.py); sizes that make one negative are refused. `symbols` are those a program needs: each must be bound."""
    if len(arrays) != len(types):
        sig = ", ".join(f"{n}: {t}" for n, t in zip(names, types))
        raise ShapeError(f"expected {len(types)} inputs ({sig}), got {len(arrays)}")
    out = []
    for name, t, a in zip(names, types, arrays):
        a = np.asarray(a)
        if a.dtype != t.dtype.numpy:
            raise ShapeError(f"input '{name}' expects {t}, got a {a.dtype} array of shape {list(a.shape)}")
        if a.ndim != t.rank:
            raise ShapeError(f"input '{name}' expects {t} (rank {t.rank}), got shape {list(a.shape)}")
        out.append(np.asarray(a, order="C"))  # (ascontiguousarray would make a 0-d array 1-d)
    bindings, source = _bind(names, types, out)
    for name, t, a in zip(names, types, out):
        for i, (d, n) in enumerate(zip(t.shape, a.shape)):
            if d == D.UNKNOWN:
                continue
            try:
                want = D.evaluate(d, bindings)
            except KeyError as e:
                raise ShapeError(f"input '{name}' dim {i} is {d}, whose symbol {e} no input binds") from None
            if want != n:
                syms = sorted(D.symbols(d))
                extra = "" if isinstance(d, int) else \
                    f" ({', '.join(f'{s} = {bindings[s]}' for s in syms)}), as " \
                    f"{' and '.join(f'{source[s]} binds {s}' for s in syms)}"
                raise ShapeError(f"input '{name}' expects {t}, got shape {list(a.shape)}: "
                                 f"dim {i} must be {want}{extra}")
    missing = [s for s in symbols if s not in bindings]
    if missing:
        raise ShapeError(f"symbols {missing} are not sizes of any input; cannot run")
    for value, i, d, *what in signed:
        try:
            size = D.evaluate(d, bindings)
        except KeyError:
            continue
        if size < 0:
            sizes = ", ".join(f"{s} = {bindings[s]}" for s in sorted(D.symbols(d)))
            broken = f"dim {i} of %{value} too short for {what[0]} ({d} = {size})" if what and what[0] else \
                f"dim {i} of %{value} ({d}) negative ({size})"
            raise ShapeError(f"inputs with {sizes} make {broken}; the model needs larger inputs")
    return out, bindings


def _bind(names, types, arrays) -> tuple[dict[str, int], dict[str, str]]:
    """Symbol sizes from the dims that are a symbol alone, then from those of the form c*S + k; and
    for each symbol the input dim that bound it (for messages)."""
    bindings: dict[str, int] = {}
    source: dict[str, str] = {}
    for linear in (False, True):
        for name, t, a in zip(names, types, arrays):
            for i, (d, n) in enumerate(zip(t.shape, a.shape)):
                if isinstance(d, int) or d == D.UNKNOWN:
                    continue
                free = D.symbols(d) - set(bindings)
                if len(free) != 1:
                    continue
                (s,) = free
                if d == s:
                    bindings[s] = n
                elif linear:
                    solved = _solve(d, s, n, bindings)
                    if solved is None:
                        continue
                    bindings[s] = solved
                else:
                    continue
                source[s] = f"input '{name}' dim {i}"
    return bindings, source


def _solve(d, s: str, n: int, bindings) -> int | None:
    """The size of s that makes dim d (c*s + k once the other symbols are bound) equal n, if one."""
    at0, at1 = D.evaluate(d, {**bindings, s: 0}), D.evaluate(d, {**bindings, s: 1})
    c, k = at1 - at0, at0
    if c <= 0 or (n - k) % c or D.evaluate(d, {**bindings, s: 2}) != k + 2 * c:
        return None
    return (n - k) // c if n >= k else None


def example_bindings(graph_inputs, example_inputs) -> dict[str, int] | None:
    """Symbol sizes of the example inputs (for reports), when there are examples."""
    if example_inputs is None:
        return None
    inputs = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    bindings: dict[str, int] = {}
    for v, a in zip(graph_inputs, inputs):
        shape = tuple(getattr(a, "shape", np.shape(a)))
        for d, n in zip(v.shape, shape):
            if isinstance(d, str) and d.isidentifier():
                bindings[d] = int(n)
    return bindings
