"""Placing buffers in one arena: buffers whose lifetimes (kernel index ranges) do not overlap share bytes."""
from __future__ import annotations

import numpy as np

from ..ir import dims as D

ALIGN = 64


def plan_arena(buffers: list[tuple[int, int, int]]) -> tuple[list[int], int]:
    """Offsets for (nbytes, first, last) buffers, and the arena size.

    Greedy by size (largest first): each buffer goes at the lowest aligned
    offset that overlaps no placed buffer alive at the same time.
    """
    order = sorted(range(len(buffers)), key=lambda i: (-buffers[i][0], buffers[i][1]))
    placed: list[tuple[int, int, int, int]] = []  # (offset, end, first, last)
    offsets = [0] * len(buffers)
    total = 0
    for i in order:
        size, first, last = buffers[i]
        size = (max(size, 1) + ALIGN - 1) // ALIGN * ALIGN
        live = sorted((o, e) for o, e, f, l in placed if not (l < first or last < f))
        offset = 0
        for o, e in live:
            if offset + size <= o:
                break
            offset = max(offset, e)
        offsets[i] = offset
        placed.append((offset, offset + size, first, last))
        total = max(total, offset + size)
    return offsets, total


def plan_buffers(buffers_meta: list[dict], bindings: dict[str, int]) -> tuple[list[int], int]:
    """plan_arena of a program's buffers (meta["buffers"]: sizes as dim expressions) at these symbol sizes:
    (offset of each, arena bytes)."""
    return plan_arena([(D.evaluate(b["bytes"], bindings), b["first"], b["last"]) for b in buffers_meta])


def aligned(array: np.ndarray) -> np.ndarray:
    """A contiguous copy of `array` that starts on an ALIGN-byte boundary (the array itself when it does):
    kernels stream weights in whole cache lines."""
    if array.flags.c_contiguous and array.ctypes.data % ALIGN == 0:
        return array
    raw = np.empty(array.nbytes + ALIGN, np.uint8)
    shift = (-raw.ctypes.data) % ALIGN
    out = raw[shift:shift + array.nbytes].view(array.dtype).reshape(array.shape)
    out[...] = array
    return out

