"""The table from IR op names to lowering rules.

A rule writes the StableHLO for one node:

    @lowers("add")
    def add(b: Builder, node: Node, args: list[Val], out: list[TensorType], attrs: dict) -> Val | list[Val]

`args` are the operands as module values, `out` the node's result types with
every dim concrete, `attrs` the node's attributes with symbolic shape
attributes resolved. Rules live in one module per op family, mirroring
leptonc/ir/ops/.
"""
from __future__ import annotations

from typing import Callable

from ...ir.errors import LeptoncError

LOWERINGS: dict[str, Callable] = {}


def lowers(*names: str) -> Callable:
    def register(fn: Callable) -> Callable:
        for name in names:
            if name in LOWERINGS:
                raise ValueError(f"op '{name}' has two StableHLO lowerings")
            LOWERINGS[name] = fn
        return fn
    return register


def rule_for(op: str) -> Callable:
    _load_rules()
    try:
        return LOWERINGS[op]
    except KeyError:
        raise LeptoncError(f"the stablehlo target has no lowering for op '{op}' "
                           f"(it maps: {', '.join(sorted(LOWERINGS))})") from None


def lowered_ops() -> set[str]:
    """Every op the target maps (const is written by the emitter: an argument or a literal)."""
    _load_rules()
    return set(LOWERINGS) | {"const"}


def _load_rules() -> None:
    from . import (dynamic, elementwise, image, index, layout, linalg, nn, quant, random,  # noqa: F401 (rules)
                   ml, reduction, signal, sparse, text)
