"""Running a compiled cpu library: one C call per inference, no Python between kernels.

The executor checks inputs against the signature (dtype, rank, symbol sizes),
binds the symbols, places the intermediates in one arena (planned once per
set of sizes and kept), allocates the outputs and calls `lep_run`. It needs
numpy, the standard library and the BLAS wheel only.
"""
from __future__ import annotations

import ctypes
import os

import numpy as np

from ..ir.dtypes import DType
from ..ir.errors import ShapeError
from ..ir.packing import stored
from ..ir.types import TensorType
from .memory import ALIGN, on_huge_pages, plan_buffers
from .signature import bind_inputs

_BLAS = None


def load_blas() -> None:
    """Load OpenBLAS from the scipy-openblas32 wheel, globally, so that model libraries link to it."""
    global _BLAS
    if _BLAS is None:
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
        self.lib = ctypes.CDLL(str(library_path))
        self.lib.lep_run.restype = ctypes.c_int
        self.lib.lep_run.argtypes = [ctypes.c_void_p] * 7
        self.input_names = [x["name"] for x in meta["inputs"]]
        self.input_types = [_tensor_type(x) for x in meta["inputs"]]
        self.output_types = [_tensor_type(x) for x in meta["outputs"]]
        self.symbols = list(meta["symbols"])
        # i4 packed two per byte, in one buffer on huge pages
        self.weights = dict(zip(meta["weights"], on_huge_pages([stored(weights[name]) for name in meta["weights"]])))
        self._wptrs = _pointer_array(list(self.weights.values()))
        self._plans: dict[tuple, tuple] = {}
        self.kernel_names = [k["name"] for k in meta["kernels"]]

    def bind(self, inputs) -> tuple[list[np.ndarray], dict[str, int]]:
        arrays, bindings = bind_inputs(self.input_names, self.input_types, inputs)
        missing = [s for s in self.symbols if s not in bindings]
        if missing:
            raise ShapeError(f"symbols {missing} are not sizes of any input; cannot run")
        return arrays, bindings

    def _plan(self, bindings: dict[str, int]):
        key = tuple(bindings[s] for s in self.symbols)
        plan = self._plans.get(key)
        if plan is None:
            offsets, total = plan_buffers(self.meta["buffers"], bindings)
            raw = np.empty(total + ALIGN, dtype=np.uint8)
            shift = (-raw.ctypes.data) % ALIGN
            arena = raw[shift:shift + total]
            off = np.array(offsets or [0], dtype=np.int64)
            sym = np.array(key or (0,), dtype=np.int64)
            out_shapes = [t.concrete(bindings) for t in self.output_types]
            plan = (raw, arena, off, sym, out_shapes, total)
            if len(self._plans) > 8:
                self._plans.clear()
            self._plans[key] = plan
        return plan

    def run(self, inputs, profile: np.ndarray | None = None) -> list[np.ndarray]:
        arrays, bindings = self.bind(inputs)
        _, arena, off, sym, out_shapes, _ = self._plan(bindings)
        outs = [np.empty(s, dtype=t.dtype.numpy) for s, t in zip(out_shapes, self.output_types)]
        in_ptrs = _pointer_array(arrays)
        out_ptrs = _pointer_array(outs)
        rc = self.lib.lep_run(in_ptrs, out_ptrs, self._wptrs, arena.ctypes.data, off.ctypes.data,
                              sym.ctypes.data, None if profile is None else profile.ctypes.data)
        if rc != 0:
            raise RuntimeError(f"the model library returned error code {rc}")
        return outs

    def profile(self, inputs, repeat: int = 10) -> list[tuple[str, float]]:
        """(kernel name, seconds per run) for every kernel: its median over `repeat` runs, so that a hiccup
        of a shared machine during one run does not count."""
        self.run(inputs)
        runs = np.zeros((max(repeat, 1), len(self.kernel_names)), dtype=np.float64)
        for times in runs:
            self.run(inputs, profile=times)
        return [(name, float(t)) for name, t in zip(self.kernel_names, np.median(runs, axis=0))]


def _tensor_type(entry: dict) -> TensorType:
    return TensorType(DType(entry["dtype"]), tuple(entry["shape"]))


def _pointer_array(arrays) -> ctypes.Array:
    ptrs = (ctypes.c_void_p * max(len(arrays), 1))()
    for i, a in enumerate(arrays):
        ptrs[i] = a.ctypes.data
    return ptrs
