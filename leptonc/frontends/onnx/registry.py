"""The table of ONNX op types the importer maps, and the per-node context a mapping receives."""
from __future__ import annotations

from typing import Callable

HANDLERS: dict[tuple[str, str], Callable] = {}


def onnx_op(*op_types: str, domain: str = ""):
    """Register the decorated function as the mapping of op_types (in domain) to IR ops.

    It gets a NodeContext and returns the node's outputs: a Value, or a list of Values (None for an
    output it does not produce).
    """
    def register(fn: Callable) -> Callable:
        for t in op_types:
            HANDLERS[(domain, t)] = fn
        return fn

    return register


class NodeContext:
    """One ONNX node being imported: its operands as IR Values, attributes as Python data, and the
    importer (`b`) whose helpers build IR."""

    __slots__ = ("b", "node", "op_type", "version", "inputs", "attrs", "n_out")

    def __init__(self, b, node, version: int, inputs: list, attrs: dict):
        self.b = b
        self.node = node
        self.op_type = node.op_type
        self.version = version
        self.inputs = inputs
        self.attrs = attrs
        self.n_out = len(node.output)

    def x(self, i: int):
        """Operand i, or None when it is absent (past the end or an empty name)."""
        return self.inputs[i] if i < len(self.inputs) else None

    def a(self, name: str, default=None):
        return self.attrs.get(name, default)

    def wants(self, i: int) -> bool:
        """Whether output i is used (present with a non-empty name)."""
        return i < len(self.node.output) and bool(self.node.output[i])
