"""The text form of a graph. parse_ir(print_ir(g), g.constants) gives back an equal graph.

    graph @mlp(%x: f32[B, 768]) -> (f32[B, 3072]) {
      %h = matmul(%x, %w1) : f32[B, 3072] loc("encoder.fc1")
      %y = mul(%h, %c) : f32[B, 3072] loc("encoder.fc1")
      return %y
    }
    constants {  # 2 constants, 9.0 MiB
      %w1 = const @fc1.weight : f32[768, 3072]
      %c = const @scale [0.5] : f32[]
    }

The ops come first; the constants that they read follow in their own block,
each as a summary (value name, constant name, dtype and shape). Attributes
equal to their defaults are left out. A node's source (the torch module or
ONNX node it was imported from) is its trailing loc("..."). With
constants="summary" a constant of at most `inline_limit` elements prints its
values, a bigger one only its name (parse_ir takes its array in
`constants`); with constants="inline" every constant prints its values, so
the text is complete on its own.
"""
from __future__ import annotations

import json
import math

import numpy as np

from .dtypes import DType
from .errors import LeptoncError
from .graph import Graph, Node


def format_scalar(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating, np.generic)):
        f = float(v)
        if math.isnan(f):
            return "nan"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        # the shortest text that reads back to the same value in the value's own precision
        return str(v) if isinstance(v, (np.float32, np.float16)) else \
            repr(f) if isinstance(v, (float, np.float64)) else str(np.float32(f))
    raise TypeError(f"not a scalar: {v!r}")


def format_attr(v) -> str:
    if v is None:
        return "none"
    if isinstance(v, DType):
        return v.value
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(format_attr(x) for x in v) + "]"
    return format_scalar(v)


def _plain(arr: np.ndarray) -> np.ndarray:
    """The values of an ml_dtypes narrow type in the numpy type that prints them: the narrow floats
    (exact in f32) as f32, the sub-byte integers as i64."""
    dtype = DType.from_numpy(arr.dtype)
    if dtype.bits >= 16 or dtype in (DType.i8, DType.u8, DType.bool):
        return arr
    return arr.astype(np.float32 if dtype.is_float else np.int64)


def _format_loc(loc: str | None) -> str:
    """A node's source as the text form writes it after the result types: ' loc("...")', or nothing."""
    return f" loc({json.dumps(loc)})" if loc else ""


def _format_node(node: Node, graph: Graph, inline_limit: int) -> str:
    from .registry import REQUIRED, get_op

    lhs = ", ".join(f"%{v.name}" for v in node.outputs)
    types = ", ".join(str(v.type) for v in node.outputs)
    if node.op == "const":
        cname = node.attrs["name"]
        arr = graph.constants.get(cname)
        literal = ""
        if arr is not None and arr.size <= inline_limit:
            literal = " [" + ", ".join(format_scalar(x) for x in _plain(arr).reshape(-1)) + "]"
        return f"{lhs} = const @{cname}{literal} : {types}"
    opdef = get_op(node.op)
    shown = {k: v for k, v in node.attrs.items()
             if k not in opdef.attrs or opdef.attrs[k].default is REQUIRED
             or format_attr(v) != format_attr(opdef.attrs[k].default)}
    attrs = ""
    if shown:
        attrs = " {" + ", ".join(f"{k} = {format_attr(v)}" for k, v in shown.items()) + "}"
    operands = ", ".join(f"%{v.name}" for v in node.inputs)
    return f"{lhs} = {node.op}({operands}){attrs} : {types}{_format_loc(node.loc)}"


def format_node(node: Node, graph: Graph, inline_limit: int = 8) -> str:
    """One node's statement as print_ir writes it (without indent)."""
    return _format_node(node, graph, inline_limit)


def _size(nbytes: int) -> str:
    if nbytes < 1024:
        return f"{nbytes} bytes"
    return f"{nbytes / 1024:.1f} KiB" if nbytes < 2**20 else f"{nbytes / 2**20:.1f} MiB"


def print_ir(graph: Graph, inline_limit: int = 8, constants: str = "summary") -> str:
    """The graph as IR text (see the module docstring for the form). constants: "summary" (values of those
    with at most `inline_limit` elements) or "inline" (every constant's values)."""
    if constants not in ("summary", "inline"):
        raise LeptoncError(f"print_ir: constants must be 'summary' or 'inline', got {constants!r}")
    limit = math.inf if constants == "inline" else inline_limit
    args = ", ".join(f"%{v.name}: {v.type}" for v in graph.inputs)
    results = ", ".join(str(v.type) for v in graph.outputs)
    lines = [f"graph @{graph.name}({args}) -> ({results}) {{"]
    lines += ["  " + _format_node(n, graph, limit) for n in graph.nodes if n.op != "const"]
    lines.append("  return " + ", ".join(f"%{v.name}" for v in graph.outputs))
    lines.append("}")
    consts = [n for n in graph.nodes if n.op == "const"]
    if consts:
        names = {n.attrs["name"] for n in consts}
        nbytes = sum(graph.constants[c].nbytes for c in names if c in graph.constants)
        lines.append(f"constants {{  # {len(consts)} constant{'s' if len(consts) != 1 else ''}, {_size(nbytes)}")
        lines += ["  " + _format_node(n, graph, limit) for n in consts]
        lines.append("}")
    return "\n".join(lines) + "\n"
