"""The stablehlo target: the whole graph as one StableHLO module (MLIR text), compiled and
run by XLA through jaxlib. XLA fuses on its own, so ops map one to one.

    text = emit_module(graph, bindings={"B": 8})        # weights are arguments of @main
    text = emit_module(graph, inline_weights=True)      # a static graph needs no bindings
    exe = XlaExecutable(text); outputs = exe(x, *weights)   # then one index record per gather/scatter (emit.py)

leptonc.runtime.xla runs a whole graph or artifact (a module per size, weights kept on the device);
`xla_model(graph)` is such a runner that emits its modules with this package.
"""
from .emit import EmittedModule, emit, emit_module
from .rules import lowered_ops
from .specialize import DATA_DEPENDENT
from ...runtime.xla_client import XlaExecutable
from .model import compile_stablehlo, compiled_model, xla_model

__all__ = ["DATA_DEPENDENT", "EmittedModule", "XlaExecutable", "compile_stablehlo", "compiled_model", "emit",
           "emit_module", "lowered_ops", "xla_model"]
