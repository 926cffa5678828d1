"""The table of ATen op mappings and the helpers the mappings share.

A mapping is a function (importer, fx node, arguments by schema name) -> Value or tuple of results,
registered for one or more ATen op overloads with @handles("add.Tensor", ...).
"""
from __future__ import annotations

from typing import Callable

HANDLERS: dict[str, Callable] = {}


def handles(*names: str):
    """Register the decorated mapping for these ATen overloads ("aten." may be left out)."""
    def register(fn):
        for n in names:
            HANDLERS[n if n.startswith("aten.") else "aten." + n] = fn
        return fn
    return register


def norm_axis(dim, rank: int) -> int:
    """A torch dim index (maybe negative) as an axis in 0..rank-1."""
    return dim % rank if rank else 0


def norm_axes(dims, rank: int) -> tuple:
    """Sorted axes for a torch dim list; None or [] means all axes, as torch reductions read it."""
    if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
        return tuple(range(rank))
    if isinstance(dims, int):
        dims = [dims]
    return tuple(sorted(norm_axis(d, rank) for d in dims))


class Missing:
    """A result of a multi-result ATen op that the mapping does not produce; using it is an error."""

    def __init__(self, what: str):
        self.what = what

    def __repr__(self) -> str:
        return f"<{self.what}, which the torch frontend does not compute>"


def supported_ops() -> tuple:
    """The ATen overloads that have a mapping, sorted."""
    return tuple(sorted(HANDLERS))
