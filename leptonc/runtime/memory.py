"""Placing buffers in memory: intermediates in one arena, where buffers whose lifetimes (kernel index ranges) do
not overlap share bytes; weights in one buffer on huge pages."""
from __future__ import annotations

import mmap

import numpy as np

from ..ir import dims as D

ALIGN = 64
HUGE_PAGE = 2 << 20  # bytes of a huge page (x86-64, arm64 with 4 KiB pages)


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


def on_huge_pages(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Copies of `arrays`, each on an ALIGN-byte boundary (kernels stream weights in whole cache lines), in one
    buffer that starts on a huge page and asks the OS to back it with huge pages before anything is written
    (Linux's madvise(MADV_HUGEPAGE); elsewhere a plain buffer). Weights streamed from memory then cross no 4 KiB
    page: fewer TLB misses, and the hardware prefetchers follow each stream."""
    offsets, total = [], 0
    for a in arrays:
        offsets.append(total)
        total += (a.nbytes + ALIGN - 1) // ALIGN * ALIGN
    if hasattr(mmap, "MADV_HUGEPAGE"):  # private memory: shared memory gets no transparent huge pages
        buffer = mmap.mmap(-1, total + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        buffer.madvise(mmap.MADV_HUGEPAGE)
    else:
        buffer = mmap.mmap(-1, total + HUGE_PAGE)
    raw = np.frombuffer(buffer, np.uint8)
    start = (-raw.ctypes.data) % HUGE_PAGE
    out = []
    for a, offset in zip(arrays, offsets):
        copy = raw[start + offset:start + offset + a.nbytes].view(a.dtype).reshape(a.shape)
        copy[...] = a
        out.append(copy)
    return out
