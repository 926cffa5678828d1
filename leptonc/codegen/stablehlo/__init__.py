"""The stablehlo target: the whole graph as one StableHLO module (MLIR text), compiled and
run by XLA through jaxlib. XLA fuses on its own, so ops map one to one.

    text = emit_module(graph, bindings={"B": 8})        # weights are arguments of @main
    text = emit_module(graph, inline_weights=True)      # a static graph needs no bindings
    exe = XlaExecutable(text); outputs = exe(x, *weights)   # then one index record per gather/scatter (emit.py)

leptonc.runtime.xla runs a whole graph or artifact (a module per size, weights kept on the device).
"""
from .emit import EmittedModule, emit, emit_module
from .rules import lowered_ops
from .specialize import DATA_DEPENDENT
from .xla import XlaExecutable

__all__ = ["DATA_DEPENDENT", "EmittedModule", "XlaExecutable", "emit", "emit_module", "lowered_ops"]
