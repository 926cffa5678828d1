"""Runners of the stablehlo target wired to this package's emitter (leptonc/runtime/xla.py runs them).

    model = xla_model(graph)                 # a graph run by XLA, one module per size
    cm = compile_stablehlo(graph, manifest, bindings)   # the target's compiled model (its artifact)
    cm = compiled_model(artifact)            # an artifact's model
"""
from __future__ import annotations

from ...ir import dims as D
from ...ir.size_checks import size_checks
from ...ir.graph import Graph
from ...ir.printer import print_ir
from ...runtime import safetensors
from ...runtime.artifact import Artifact
from ...runtime.xla import XlaCompiledModel, XlaModel
from .emit import emit
from .specialize import symbols_of


def xla_model(graph: Graph, inline_weights: bool = False, platform: str = "cpu") -> XlaModel:
    """`graph` run by XLA, its modules emitted and compiled on first use at each size."""
    return XlaModel(graph, emit, inline_weights=inline_weights, platform=platform)


def compiled_model(artifact: Artifact, platform: str = "cpu") -> XlaCompiledModel:
    """The compiled model of a stablehlo artifact (other sizes than its module's emitted from its IR)."""
    return XlaCompiledModel(artifact, emit, platform=platform)


def compile_stablehlo(graph: Graph, manifest: dict, bindings: dict[str, int] | None) -> XlaCompiledModel:
    """Emit the module for `bindings` (symbols they do not give: the smallest size that every dim allows) and
    pack the artifact."""
    bindings = _example_sizes(graph, bindings or {})
    module = emit(graph, bindings)

    def describe(values):
        return [{"name": v.name, "dtype": v.dtype.value, "shape": list(v.shape)} for v in values]

    manifest = dict(manifest, target="stablehlo",
                    signature={"inputs": describe(graph.inputs), "outputs": describe(graph.outputs),
                               "symbols": sorted(bindings)},
                    example_bindings=bindings,
                    stablehlo={"bindings": bindings, "weights": list(module.weights)})
    art = Artifact(manifest, print_ir(graph), safetensors.dumps(dict(graph.constants)), module.text, b"")
    return compiled_model(art)


def _example_sizes(graph: Graph, given: dict[str, int]) -> dict[str, int]:
    """A size for every symbol of `graph`: the given one, else the smallest power of two (1, 2, 4, ...) for
    which no dim of the graph is negative (a 3x3 conv over H needs H >= 2)."""
    signed = size_checks(graph)
    size = 1
    while True:
        sizes = {s: given.get(s, size) for s in symbols_of(graph)}
        if size >= 1 << 16 or all(D.evaluate(s[2], sizes) >= 0 for s in signed):
            return sizes
        size *= 2
