"""Code generation: one subpackage per target (cpu: C source built into a shared library;
triton: Triton kernels; stablehlo: one StableHLO module), and what the targets share."""
from __future__ import annotations

import re
from typing import Callable

from ..ir import dims as D
from ..ir.graph import Graph


def graph_symbols(graph: Graph) -> list[str]:
    """The symbols of a graph's input dims, sorted: the run-time size arguments of generated code."""
    syms: set[str] = set()
    for v in graph.inputs:
        for d in v.shape:
            if isinstance(d, str) and d != D.UNKNOWN:
                syms |= D.symbols(d)
    return sorted(syms)


def symbol_var(name: str) -> str:
    """The variable that holds a symbol's size in generated code."""
    return "s_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


def dim_expression(d, constant: Callable[[int], str], mul: str = "*") -> str:
    """A symbolic dim as an integer expression over the symbol variables."""
    terms = []
    for c, mono in D.terms(d):
        factors = [symbol_var(s) for s in mono]
        if c != 1 or not factors:
            factors.insert(0, constant(c))
        terms.append(mul.join(factors))
    return "(" + " + ".join(terms) + ")"
