"""Placing buffers in memory: intermediates in one arena, where buffers whose lifetimes (kernel index ranges) do
not overlap share bytes; weights in one buffer on huge pages."""
from __future__ import annotations

import mmap
import os
from concurrent.futures import Executor, ThreadPoolExecutor

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


class _HugePageBuffer(mmap.mmap):
    """An anonymous mapping that on_huge_pages placed weights in."""


def on_huge_pages(arrays: list[np.ndarray], pool: Executor | None = None) -> list[np.ndarray]:
    """`arrays`, each on an ALIGN-byte boundary (kernels stream weights in whole cache lines), in one buffer
    that starts on a huge page and asks the OS to back it with huge pages before anything is written
    (Linux's madvise(MADV_HUGEPAGE); elsewhere a plain buffer). Weights streamed from memory then cross no
    4 KiB page: fewer TLB misses, and the hardware prefetchers follow each stream.

    Arrays that an earlier call placed stay where they are; the others are copied on every core (threads of
    `pool`, or of its own), since most of a copy's time is the first touch of new memory."""
    todo = [i for i, a in enumerate(arrays) if not _placed(a)]
    if not todo:
        return list(arrays)
    offsets, total = [], 0
    for i in todo:
        offsets.append(total)
        total += (arrays[i].nbytes + ALIGN - 1) // ALIGN * ALIGN
    if hasattr(mmap, "MADV_HUGEPAGE"):  # private memory: shared memory gets no transparent huge pages
        buffer = _HugePageBuffer(-1, total + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        buffer.madvise(mmap.MADV_HUGEPAGE)
    else:
        buffer = _HugePageBuffer(-1, total + HUGE_PAGE)
    raw = np.frombuffer(buffer, np.uint8)
    start = (-raw.ctypes.data) % HUGE_PAGE
    out = list(arrays)
    for i, offset in zip(todo, offsets):
        out[i] = raw[start + offset:start + offset + arrays[i].nbytes].view(arrays[i].dtype).reshape(arrays[i].shape)
    copies = [(out[i], arrays[i]) for i in todo]
    if pool is None:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as own:
            list(own.map(_copy, copies))
    else:
        list(pool.map(_copy, copies))
    return out


def _copy(pair: tuple[np.ndarray, np.ndarray]) -> None:
    pair[0][...] = pair[1]


def _placed(a: np.ndarray) -> bool:
    """Whether the array lies in a buffer of on_huge_pages (its base chain ends there)."""
    base = a
    while isinstance(base, np.ndarray):
        base = base.base
    return isinstance(base, memoryview) and isinstance(base.obj, _HugePageBuffer) and a.ctypes.data % ALIGN == 0
