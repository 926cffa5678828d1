"""Placing buffers in memory: intermediates in one arena, where buffers whose lifetimes (kernel index ranges) do
not overlap share bytes; weights in one buffer on huge pages."""
from __future__ import annotations

import mmap
import os
import threading
from concurrent.futures import ThreadPoolExecutor

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
    taken: list[tuple[int, int, int, int]] = []  # (offset, end, first, last)
    offsets = [0] * len(buffers)
    total = 0
    for i in order:
        size, first, last = buffers[i]
        size = _aligned(max(size, 1))
        live = sorted((o, e) for o, e, f, l in taken if not (l < first or last < f))
        offset = 0
        for o, e in live:
            if offset + size <= o:
                break
            offset = max(offset, e)
        offsets[i] = offset
        taken.append((offset, offset + size, first, last))
        total = max(total, offset + size)
    return offsets, total


def plan_buffers(buffers_meta: list[dict], bindings: dict[str, int]) -> tuple[list[int], int]:
    """plan_arena of a program's buffers (meta["buffers"]: sizes as dim expressions) at these symbol sizes:
    (offset of each, arena bytes)."""
    return plan_arena([(D.evaluate(b["bytes"], bindings), b["first"], b["last"]) for b in buffers_meta])


class _HugePageBuffer(mmap.mmap):
    """An anonymous mapping that weights are placed in (see HugePageArena)."""


class HugePageArena:
    """Weights placed one by one, from any thread, in one buffer that starts on a huge page and asks the OS to
    back it with huge pages before anything is written (Linux's madvise(MADV_HUGEPAGE); elsewhere a plain
    buffer), each on an ALIGN-byte boundary (kernels stream weights in whole cache lines). Weights streamed
    from memory then cross no 4 KiB page: fewer TLB misses, and the hardware prefetchers follow each stream.

    `reserve` bytes of address space are set aside; only what is written takes memory. An array that does
    not fit what is left gets a buffer of its own."""

    def __init__(self, reserve: int):
        reserve = _aligned(reserve)
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_NORESERVE", 0)
        self._buffer = _HugePageBuffer(-1, reserve + HUGE_PAGE, flags=flags)
        if hasattr(mmap, "MADV_HUGEPAGE"):  # private memory: shared memory gets no transparent huge pages
            self._buffer.madvise(mmap.MADV_HUGEPAGE)
        raw = np.frombuffer(self._buffer, np.uint8)
        start = (-raw.ctypes.data) % HUGE_PAGE
        self._raw = raw[start:start + reserve]
        self._used = 0
        self._lock = threading.Lock()

    def place(self, a: np.ndarray) -> np.ndarray:
        """A copy of `a` in the arena (`a` itself if an arena placed it already)."""
        if placed(a):
            return a
        out = self.slot(a)
        out[...] = a
        return out

    def slot(self, a: np.ndarray) -> np.ndarray:
        """Room in the arena for an array of `a`'s dtype and shape, not yet written."""
        with self._lock:
            offset = self._used
            self._used = end = offset + _aligned(a.nbytes)
        if end > len(self._raw):
            return HugePageArena(a.nbytes).slot(a)
        return self._raw[offset:offset + a.nbytes].view(a.dtype).reshape(a.shape)


def on_huge_pages(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """`arrays` in one HugePageArena, in their order, copied on every core (most of a copy's time is the
    first touch of new memory); arrays that an arena placed already stay where they are."""
    todo = [i for i, a in enumerate(arrays) if not placed(a)]
    arena = HugePageArena(sum(_aligned(arrays[i].nbytes) for i in todo))
    out = list(arrays)
    for i in todo:
        out[i] = arena.slot(arrays[i])
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(np.copyto, [out[i] for i in todo], [arrays[i] for i in todo]))
    return out


def _aligned(nbytes: int) -> int:
    return (nbytes + ALIGN - 1) // ALIGN * ALIGN


def placed(a: np.ndarray) -> bool:
    """Whether the array lies in a HugePageArena (its base chain ends there) on an ALIGN-byte boundary."""
    base = a
    while isinstance(base, np.ndarray):
        base = base.base
    return isinstance(base, memoryview) and isinstance(base.obj, _HugePageBuffer) and a.ctypes.data % ALIGN == 0
