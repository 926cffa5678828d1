"""Parsing and verifying module text with the MLIR bindings that jaxlib ships
(the stablehlo and chlo dialects registered, as jax registers them)."""
from __future__ import annotations

from ...ir.errors import LeptoncError


def verify_module(text: str):
    """Parse `text` and run MLIR's verifier on it; return the parsed module, or raise with MLIR's diagnostics."""
    from jax._src.interpreters.mlir import make_ir_context
    from jax._src.lib.mlir import ir

    context = make_ir_context()
    with context:
        try:
            module = ir.Module.parse(text)
        except Exception as e:  # MLIRError, with the parser's diagnostics
            raise LeptoncError(f"StableHLO module does not parse: {e}") from None
        if not module.operation.verify():
            raise LeptoncError("StableHLO module fails verification")
    return module
