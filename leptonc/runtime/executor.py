"""Running a compiled cpu library: one C call per inference, no Python between kernels.

The executor checks inputs against the signature (dtype, rank, symbol sizes),
binds the symbols, places the intermediates in one arena (planned once per
set of sizes and kept), allocates the outputs and calls `lep_run`. It needs
numpy, the standard library and the BLAS wheel only.

Any number of threads may run one executor at once: the weights are shared
and only read, and each call takes an arena of its plan's size from a pool
(a free list per plan) and gives it back after, so concurrent calls never
share scratch memory and never wait for each other (ctypes lets go of the
GIL during `lep_run`).

A run's kernels take at most `threads` OpenMP threads (runtime/threads.py: the cores this process may use, or
LEPTONC_NUM_THREADS; `set_threads` changes it), each kernel fewer when its work is small.
"""
from __future__ import annotations

import ctypes
import os
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from ..ir.dtypes import DType
from ..ir.errors import IndexRangeError, LeptoncError
from ..ir.packing import stored
from ..ir.types import TensorType
from .memory import ALIGN, on_huge_pages, plan_buffers
from .signature import bind_inputs
from .threads import openmp_environment, pool_size

_BLAS = None
_BLAS_LOCK = threading.Lock()
MAX_PLANS = 8  # sets of sizes whose plans (and pooled arenas) an executor keeps at once


class RunError(LeptoncError):
    """A run that cannot go ahead or that the model library refused (e.g. memory for its sizes)."""


def load_blas() -> None:
    """Load OpenBLAS from the scipy-openblas32 wheel, globally, so that model libraries link to it."""
    global _BLAS
    with _BLAS_LOCK:
        if _BLAS is not None:
            return
        import scipy_openblas32 as ob

        path = os.path.join(ob.get_lib_dir(), f"lib{ob.get_library()}.so")
        _BLAS = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        # model libraries run GEMMs on their own OpenMP threads; two thread pools would fight for the cores
        _BLAS.scipy_openblas_set_num_threads(1)


class Executor:
    """Runs one model library with its weights. `meta` is the program metadata codegen produced."""

    def __init__(self, meta: dict, library_path: str, weights: dict[str, np.ndarray]):
        load_blas()
        self.meta = meta
        try:
            with openmp_environment():  # libgomp reads its wait policy when the first library loads it
                self.lib = ctypes.CDLL(str(library_path))
        except OSError as e:  # a damaged or foreign library (a trusted author's broken build, say)
            raise RunError(f"cannot load the model library {library_path}: {e}") from None
        if hasattr(self.lib, "lep_set_threads"):  # (libraries built before threads per kernel have no pool)
            self.set_threads(pool_size())
        self.lib.lep_run.restype = ctypes.c_int
        self.lib.lep_run.argtypes = [ctypes.c_void_p] * 7
        self.input_names = [x["name"] for x in meta["inputs"]]
        self.input_types = [_tensor_type(x) for x in meta["inputs"]]
        self.output_types = [_tensor_type(x) for x in meta["outputs"]]
        self.symbols = list(meta["symbols"])
        self.signed_dims = [tuple(x) for x in meta["signed_dims"]]
        # inputs of fixed shapes (no symbols): a call with arrays of exactly those types skips bind_inputs
        self._fixed = None if any(isinstance(d, str) for t in self.input_types for d in t.shape) else \
            [(t.dtype.numpy, tuple(t.shape)) for t in self.input_types]
        # i4 packed two per byte, in one buffer on huge pages
        self.weights = dict(zip(meta["weights"], on_huge_pages([stored(weights[name]) for name in meta["weights"]])))
        self._wptrs = _pointer_array(list(self.weights.values()))
        self._plans: dict[tuple, Plan] = {}
        self._lock = threading.Lock()  # guards _plans and the plans' pools, never a run
        self.kernel_names = [k["name"] for k in meta["kernels"]]

    def set_threads(self, n: int | None) -> None:
        """The most threads a run's kernels take (each takes fewer when its work is small); None: OpenMP's
        count (OMP_NUM_THREADS, else one per CPU)."""
        if n is not None and (not isinstance(n, int) or n < 1):
            raise LeptoncError(f"threads must be a positive integer or None, not {n!r}")
        self.lib.lep_set_threads(ctypes.c_int(n or 0))

    @property
    def threads(self) -> int:
        """The most threads a run's kernels take."""
        return int(self.lib.lep_threads())

    def bind(self, inputs) -> tuple[list[np.ndarray], dict[str, int]]:
        arrays, bindings = bind_inputs(self.input_names, self.input_types, inputs, self.signed_dims, self.symbols)
        return arrays, bindings

    def _plan(self, bindings: dict[str, int]) -> "Plan":
        key = tuple(bindings[s] for s in self.symbols)
        with self._lock:
            plan = self._plans.get(key)
        if plan is None:
            offsets, total = plan_buffers(self.meta["buffers"], bindings)
            plan = Plan(np.array(offsets or [0], dtype=np.int64), np.array(key or (0,), dtype=np.int64),
                        [t.concrete(bindings) for t in self.output_types], total, bindings)
            with self._lock:
                if len(self._plans) >= MAX_PLANS:
                    self._plans.clear()
                plan = self._plans.setdefault(key, plan)  # a thread that planned the same sizes first wins
        return plan

    def run(self, inputs, profile: np.ndarray | None = None) -> list[np.ndarray]:
        arrays = self._fixed_inputs(inputs)
        if arrays is None:
            arrays, bindings = self.bind(inputs)
        else:
            bindings = {}
        plan = self._plan(bindings)
        outs = [_allocate(s, t.dtype.numpy, f"output {i}", bindings)
                for i, (s, t) in enumerate(zip(plan.out_shapes, self.output_types))]
        in_ptrs = _pointer_array(arrays)
        out_ptrs = _pointer_array(outs)
        arena = self._take_arena(plan)
        try:
            rc = self.lib.lep_run(in_ptrs, out_ptrs, self._wptrs, arena[1], plan.offsets_at, plan.sym_at,
                                  None if profile is None else profile.ctypes.data)
        finally:
            with self._lock:
                plan.free.append(arena)
        if rc != 0:
            raise run_error(self.lib, self.meta, rc)
        return outs

    def _fixed_inputs(self, inputs) -> list[np.ndarray] | None:
        """The inputs as they are when the signature has no symbols and each is a C-contiguous array of exactly
        its declared dtype and shape (what bind_inputs would accept unchanged); else None."""
        if self._fixed is None or len(inputs) != len(self._fixed):
            return None
        for a, (dtype, shape) in zip(inputs, self._fixed):
            if type(a) is not np.ndarray or a.dtype != dtype or a.shape != shape or not a.flags.c_contiguous:
                return None
        return list(inputs)

    def _take_arena(self, plan: "Plan") -> tuple[np.ndarray, int]:
        """A free arena of the plan's size from its pool, or a new one, with its address."""
        with self._lock:
            if plan.free:
                return plan.free.pop()
        raw = _allocate((plan.total + ALIGN,), np.uint8, "the arena of intermediates", plan.bindings)
        shift = (-raw.ctypes.data) % ALIGN
        arena = raw[shift:shift + plan.total]  # (keeps raw alive as its base)
        return arena, raw.ctypes.data + shift

    def profile(self, inputs, repeat: int = 10, *, with_run: bool = False):
        """(kernel name, seconds) for every kernel, from the median of `repeat` runs by wall time, so that a
        hiccup of a shared machine during one run does not count. With `with_run`, (those rows, that run's wall
        time from Python): the kernels and the whole run timed in the same run, so the kernels never exceed it."""
        self.run(inputs)
        runs = np.zeros((max(repeat, 1), len(self.kernel_names)), dtype=np.float64)
        walls = np.zeros(len(runs))
        for i, times in enumerate(runs):
            start = time.perf_counter()
            self.run(inputs, profile=times)
            walls[i] = time.perf_counter() - start
        median = int(np.argsort(walls)[(len(walls) - 1) // 2])
        rows = [(name, float(t)) for name, t in zip(self.kernel_names, runs[median])]
        return (rows, float(walls[median])) if with_run else rows


@dataclass
class Plan:
    """What a run at one set of symbol sizes needs besides its inputs: buffer offsets in the arena, the symbol
    values, the output shapes, the arena size, and a pool of free arenas of that size."""

    offsets: np.ndarray
    sym: np.ndarray
    out_shapes: list[tuple[int, ...]]
    total: int
    bindings: dict[str, int]
    free: list[tuple[np.ndarray, int]] = field(default_factory=list)  # (arena, its address)

    def __post_init__(self):
        self.offsets_at = self.offsets.ctypes.data  # (addresses taken once: .ctypes costs microseconds a call)
        self.sym_at = self.sym.ctypes.data


def run_error(lib, meta: dict, rc: int) -> LeptoncError:
    """The error for a non-zero return code of `lep_run`, read in the thread that ran it: 1 is an index out of
    range, which `lep_last_error` describes (kernel, index, dim, dim size; codegen/cpu/program.py)."""
    kernels = meta["kernels"]
    if rc == 1 and hasattr(lib, "lep_last_error"):
        record = (ctypes.c_int64 * 4)()
        lib.lep_last_error(record)
        kernel, index, dim, size = record
        if 0 <= kernel < len(kernels):
            return IndexRangeError(kernels[kernel].get("index_check", kernels[kernel]["name"]), index, dim, size)
    return RunError(f"the model library returned error code {rc}")


def _allocate(shape: tuple[int, ...], dtype, what: str, bindings: dict[str, int]) -> np.ndarray:
    """np.empty, or a RunError naming the sizes when that memory cannot be had."""
    try:
        return np.empty(shape, dtype=dtype)
    except (MemoryError, ValueError) as e:
        nbytes = int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize
        sizes = ", ".join(f"{k}={v}" for k, v in bindings.items()) or "static sizes"
        raise RunError(f"cannot allocate {what} ({nbytes} bytes) at {sizes}: {type(e).__name__}") from None


def _tensor_type(entry: dict) -> TensorType:
    return TensorType(DType(entry["dtype"]), tuple(entry["shape"]))


def _pointer_array(arrays) -> ctypes.Array:
    return (ctypes.c_void_p * max(len(arrays), 1))(*map(_address, arrays))


def _address(a: np.ndarray) -> int:
    """The address of a C-contiguous array's data: through the buffer protocol (a third of `a.ctypes.data`'s
    cost), or `a.ctypes.data` for what it refuses (read-only or empty arrays)."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(a))
    except (TypeError, ValueError, BufferError):
        return a.ctypes.data
