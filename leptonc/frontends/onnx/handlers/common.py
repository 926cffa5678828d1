"""Helpers shared by the mappings."""
from __future__ import annotations

from ....ir.errors import LeptoncError, UnsupportedOpError


def norm_axis(axis: int, rank: int) -> int:
    """An ONNX axis (negative counts from the end) as an index into a rank-`rank` shape."""
    if not -rank <= axis < max(rank, 1):
        raise LeptoncError(f"axis {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


def unsupported(cx, why: str):
    """Raise the error for a case of cx's op that the importer does not map."""
    raise UnsupportedOpError(f"{cx.op_type}: {why}")
