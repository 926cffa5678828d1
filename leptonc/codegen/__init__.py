"""Code generation: one subpackage per target (cpu: C source built into a shared library;
triton: Triton kernels; stablehlo: one StableHLO module), and what the targets share (here, kernel_body.py;
the targets import nothing of each other). listing.py prints a target's fusion plan and code; derive.py
generates an artifact's program again from its IR, for loading."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from ..ir import dims as D
from ..ir.dtypes import DType
from ..ir.graph import Graph


@dataclass
class Program:
    """What a target's code generator makes of a graph: the source, the JSON metadata its runtime needs, and
    the fusion plan (passes/fusion.py) that the source follows."""
    source: str
    meta: dict
    plan: object


def graph_symbols(graph: Graph) -> list[str]:
    """The symbols of a graph's input dims, sorted: the run-time size arguments of generated code."""
    syms: set[str] = set()
    for v in graph.inputs:
        for d in v.shape:
            if isinstance(d, str) and d != D.UNKNOWN:
                syms |= D.symbols(d)
    return sorted(syms)


def transposed_strides(node) -> list:
    """Element strides, in a transpose's contiguous result, of its operand's dims."""
    perm = node.attrs["perm"]
    out = D.contiguous_strides(node.outputs[0].shape)
    strides = [0] * len(perm)
    for i, p in enumerate(perm):
        strides[p] = out[i]
    return strides


def check_dtypes(graph: Graph, target: str, supported, error: type[Exception]) -> None:
    """Raise `error` (the target's UnsupportedError) for the first value whose dtype the target does not
    compute with: a graph input, an operand or result of a node (named by its label, which shows the op),
    or a graph output.
    Targets call it before generating anything, so no lowering meets a dtype it has no mapping for."""
    def check(v, what: str):
        if v.dtype not in supported:
            others = [t for t in targets_computing(v.dtype) if t != target]
            elsewhere = f"; {v.dtype} runs on the {' and '.join(others)} target{'s' if len(others) > 1 else ''}" \
                if others else ""
            raise error(f"{what}: dtype {v.dtype} is not supported by the {target} target "
                        f"(supported: {', '.join(d.value for d in DType if d in supported)}{elsewhere})")

    for v in graph.inputs:
        check(v, f"graph input %{v.name}")
    for node in graph.nodes:
        if node.op != "const":  # a constant is named where an op reads it
            for v in node.inputs + node.outputs:
                check(v, node.label)
    for v in graph.outputs:
        check(v, f"graph output %{v.name}")


def targets_computing(dtype: DType) -> list[str]:
    """The targets whose generated code computes with `dtype` (each target's table of element types)."""
    from .cpu.cexpr import C_TYPES
    from .stablehlo.builder import ELEMENT_TYPE
    from .triton.texpr import TL_TYPES

    tables = {"cpu": C_TYPES, "triton": TL_TYPES, "stablehlo": ELEMENT_TYPE}
    return [target for target, table in tables.items() if dtype in table]


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


def window_2d(node, nsp: int, where: str, target: str, error: type[Exception], channels_last: bool = False):
    """(strides, dilations, pads) of a 1-d or 2-d conv/pool, 1-d written as 2-d with a unit height.

    Other spatial ranks raise `error` (the target's UnsupportedError), and so does a channels-last op
    unless the caller computes that layout (`channels_last`)."""
    if node.attrs.get("channels_last") and not channels_last:
        raise error(f"{where}: channels-last {node.op} is not supported by the {target} target (run the "
                    "channels-last pass for the cpu target only)")
    if nsp not in (1, 2):
        raise error(f"{where}: {node.op} over {nsp} spatial dims is not supported by the {target} target "
                    "(1 or 2 are)")
    st = tuple(node.attrs["strides"]) or (1,) * nsp
    dl = tuple(node.attrs["dilations"]) or (1,) * nsp
    pd = tuple(node.attrs["pads"]) or (0,) * (2 * nsp)
    if nsp == 1:
        return (1, st[0]), (1, dl[0]), (0, pd[0], 0, pd[1])
    return st, dl, pd


def spatial_hw(shape, nsp: int) -> tuple:
    """The (height, width) of an N, C, spatial... shape, 1-d with a unit height."""
    return (1, shape[2]) if nsp == 1 else (shape[2], shape[3])
