"""Running the stablehlo target: a graph (or an artifact) as StableHLO modules compiled by XLA.

XLA compiles static shapes, so a graph with symbolic dims is specialized: one
module per binding of its symbols ("B" = 8), emitted and compiled on the first
call at that size and cached. The artifact holds the module for the example
sizes (what a TPU deployment hands to XLA, see docs/stablehlo.md), the
optimized IR and the weights; other sizes are emitted from the IR when first run.

Emitting is code generation, which the runtime does not import: a model is
given its `emit` function (codegen/stablehlo's, see its `xla_model` and
`compiled_model`), called as emit(graph, bindings, inline_weights) and
returning a module with `text` and `weights` (the constants @main takes after
the inputs).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..ir import dims as D
from ..ir.size_checks import size_checks
from ..ir.errors import IndexRangeError
from ..ir.graph import Graph
from ..ir.indices import NO_INDEX_ERROR, checked_sites
from ..ir.parser import parse_ir
from . import safetensors
from .artifact import Artifact
from .compiled import ArtifactModel
from .signature import bind_inputs
from .xla_client import XlaExecutable


@dataclass(frozen=True)
class XlaModule:
    """A StableHLO module and its calling convention: @main takes the graph inputs, then these constants."""

    text: str
    weights: tuple[str, ...]


class XlaModel:
    """A Graph run by XLA: a module per size binding, compiled on first use; weights stay on the device. Any
    number of threads may run it: modules and device weights are made under a lock, runs share nothing else."""

    def __init__(self, graph: Graph, emit: Callable, inline_weights: bool = False, platform: str = "cpu"):
        self.graph = graph
        self.emit = emit
        self.inline_weights = inline_weights
        self.platform = platform
        self._symbols = {s for v in graph.inputs for d in v.shape for s in D.symbols(d)}
        self._signed_dims = size_checks(graph)
        self._index_checks = checked_sites(graph)
        self._compiled: dict[tuple, tuple[XlaModule, XlaExecutable]] = {}
        self._weights_on_device: dict[str, object] = {}
        self._lock = threading.RLock()

    def _key(self, bindings: dict[str, int]) -> tuple:
        return tuple(sorted((k, int(v)) for k, v in bindings.items() if k in self._symbols))

    def module_for(self, bindings: dict[str, int]) -> XlaModule:
        """The module for these sizes (emitted and compiled if not yet)."""
        return self._compile(bindings)[0]

    def add_module(self, bindings: dict[str, int], module: XlaModule) -> None:
        """Use an already emitted module (an artifact's) for these sizes."""
        with self._lock:
            self._compiled[self._key(bindings)] = (module, XlaExecutable(module.text, self.platform))

    def _compile(self, bindings: dict[str, int]):
        key = self._key(bindings)
        with self._lock:
            if key not in self._compiled:
                self.add_module(dict(key), self.emit(self.graph, dict(key), self.inline_weights))
            return self._compiled[key]

    @property
    def compiled_sizes(self) -> list[dict[str, int]]:
        """The bindings compiled so far (one XLA executable each)."""
        return [dict(k) for k in self._compiled]

    def run(self, *inputs) -> list[np.ndarray]:
        arrays, bindings = bind_inputs([v.name for v in self.graph.inputs], [v.type for v in self.graph.inputs],
                                       inputs, self._signed_dims)
        module, exe = self._compile(bindings)
        buffers = [exe.to_device(a) for a in arrays] + [self._weight(exe, n) for n in module.weights]
        results = exe.run_on_device(buffers)
        outputs = len(self.graph.outputs)
        raise_index_error(self._index_checks, results[outputs:])
        return [np.asarray(r) for r in results[:outputs]]

    __call__ = run

    def _weight(self, exe: XlaExecutable, name: str):
        with self._lock:
            if name not in self._weights_on_device:
                self._weights_on_device[name] = exe.to_device(self.graph.constants[name])
            return self._weights_on_device[name]


def raise_index_error(checks: tuple[str, ...], records: list) -> None:
    """Raise IndexRangeError for the first of the module's index records (codegen/stablehlo/index.py's
    first_bad_index: position, index, dim, dim size) that found an index out of range."""
    for where, record in zip(checks, records):
        pos, index, dim, size = (int(x) for x in np.asarray(record))
        if pos != NO_INDEX_ERROR:
            raise IndexRangeError(where, index, dim, size)


class XlaCompiledModel(ArtifactModel):
    """A compiled model of the stablehlo target; `cm.source` is the artifact's module (specialized to
    manifest['stablehlo']['bindings']), other sizes are emitted by `emit`."""

    def __init__(self, artifact: Artifact, emit: Callable, platform: str = "cpu"):
        super().__init__(artifact)
        weights = safetensors.loads(artifact.weights_blob)
        self.graph = parse_ir(artifact.ir_text, weights)
        self.model = XlaModel(self.graph, emit, platform=platform)
        meta = self.manifest["stablehlo"]
        self.model.add_module(meta["bindings"], XlaModule(artifact.source, tuple(meta["weights"])))

    def run(self, *inputs) -> list[np.ndarray]:
        return self.model.run(*inputs)

    def profile(self, *inputs, repeat: int = 10) -> list[tuple[str, float]]:
        """[(what ran, seconds per run)]: XLA runs the whole module as one executable."""
        self.model.run(*inputs)  # compiles this size if it is new
        start = time.perf_counter()
        for _ in range(repeat):
            self.model.run(*inputs)
        return [("XLA executable (the whole module, fused by XLA)", (time.perf_counter() - start) / repeat)]

    def __repr__(self) -> str:
        ins = ", ".join(f"{v.name}: {v.type}" for v in self.graph.inputs)
        return f"<XlaCompiledModel target=stablehlo ({ins}) sizes compiled={self.model.compiled_sizes}>"
