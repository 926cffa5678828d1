"""The stablehlo target: the whole graph as one StableHLO module (MLIR text), compiled and
run by XLA through jaxlib. XLA fuses on its own, so ops map one to one.

    text = emit_module(graph)                  # weights are arguments of @main
    text = emit_module(graph, inline_weights=True)
    model = XlaModel(graph); outputs = model(x)
"""
from .emit import EmittedModule, emit, emit_module
from .rules import lowered_ops
from .runner import XlaExecutable, XlaModel

__all__ = ["EmittedModule", "XlaExecutable", "XlaModel", "emit", "emit_module", "lowered_ops"]
