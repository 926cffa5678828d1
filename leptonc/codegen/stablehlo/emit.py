"""A Graph as one StableHLO module (MLIR text) whose @main takes the graph inputs,
then the weights, and returns the graph outputs, then one tensor<4xi64> per node
that reads positions from a tensor (ir/indices.py, in graph order): its first index
out of range, which the runtime raises (index.first_bad_index).

Symbolic dims are specialized (specialize.py): the module is written for one
binding of the symbols ("B" = 8), with every shape static, because XLA compiles
static shapes. `XlaModel` in leptonc/runtime/xla.py keeps one compiled module per binding.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from ...ir.errors import IRError, LeptoncError
from ...ir.graph import Graph, Node
from ...ir.indices import checked_sites, checks_indices
from ...ir.registry import get_op
from ...ir.types import TensorType
from .. import check_dtypes
from .builder import ELEMENT_TYPE, STORAGE_ONLY, Builder, Val, tensor_type
from .index import index_record
from .rules import rule_for
from .specialize import Specialization, resolved_attrs, specialize


@dataclass(frozen=True)
class EmittedModule:
    """The module text and its calling convention."""

    text: str
    inputs: tuple[str, ...]     # graph input names: the first arguments of @main
    weights: tuple[str, ...]    # constant names: the arguments after the inputs (empty when inlined)
    input_types: tuple[TensorType, ...]
    output_types: tuple[TensorType, ...]
    index_checks: tuple[str, ...] = ()  # the nodes whose index records follow the outputs (ir/indices.site)


def emit(graph: Graph, bindings: dict[str, int] | None = None, inline_weights: bool = False) -> EmittedModule:
    """Write `graph` as a StableHLO module for the sizes in `bindings` (symbol -> int)."""
    check_dtypes(graph, "stablehlo", ELEMENT_TYPE, LeptoncError)
    spec = specialize(graph, bindings or {})
    types = spec.types
    b = Builder()
    env: dict[int, Val] = {}
    args: list[str] = []
    for v in graph.inputs:
        env[id(v)] = Val(f"%in_{v.name}", types[id(v)])
        args.append(f"{env[id(v)].name}: {tensor_type(types[id(v)])}")
    weights: dict[str, Val] = {}
    checks: list[Val] = []
    for node in graph.nodes:
        if node.op == "const":
            w = _weight(b, graph, node, spec, weights, inline_weights, args)
            env[id(node.output)] = dataclasses.replace(w, known=spec.known.get(id(node.output)))
            continue
        _check_storage_only(node)
        outs = [types[id(v)] for v in node.outputs]
        attrs = resolved_attrs(node, spec.bindings)
        try:
            result = rule_for(node.op)(b, node, [env[id(v)] for v in node.inputs], outs, attrs)
        except LeptoncError:
            raise
        except Exception as e:
            raise IRError(f"stablehlo: lowering {node.label} failed ({type(e).__name__}: {e})") from e
        results = result if isinstance(result, list) else [result]
        for v, r, t in zip(node.outputs, results, outs):
            if tuple(r.shape) != tuple(t.shape) or r.dtype is not t.dtype:
                raise IRError(f"stablehlo: the lowering of {node.label} made {r.type}, the node's type is {t}")
            env[id(v)] = dataclasses.replace(r, known=spec.known.get(id(v)))
        if checks_indices(node):
            checks.append(index_record(b, node, [env[id(v)] for v in node.inputs], attrs))
    rets = [env[id(v)] for v in graph.outputs] + checks
    out_types = ", ".join(tensor_type(v.type) for v in rets)
    sizes = ", ".join(f"{k}={v}" for k, v in sorted((bindings or {}).items()))
    header = [f"// leptonc graph @{graph.name}" + (f", specialized to {sizes}" if sizes else "")]
    text = "\n".join(header + [
        f"module @{_symbol(graph.name)} attributes {{mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32}} {{",
        f"  func.func public @main({', '.join(args)}) -> ({out_types}) {{",
        *b.lines,
        f"    \"func.return\"({', '.join(v.name for v in rets)}) : ({out_types}) -> ()",
        "  }",
        "}",
        ""])
    return EmittedModule(text, tuple(v.name for v in graph.inputs), () if inline_weights else tuple(weights),
                         tuple(types[id(v)] for v in graph.inputs), tuple(v.type for v in rets[:len(graph.outputs)]),
                         index_checks(graph))


def index_checks(graph: Graph) -> tuple[str, ...]:
    """The nodes (as index errors name them) whose index records the module returns after the outputs."""
    return checked_sites(graph)


def _check_storage_only(node: Node) -> None:
    """The narrow types (builder.STORAGE_ONLY) reach only cast and the view ops."""
    if node.op == "cast" or get_op(node.op).has("view"):
        return
    for v in node.inputs + node.outputs:
        if v.dtype in STORAGE_ONLY:
            raise LeptoncError(f"{node.label}: dtype {v.dtype} is not supported by the stablehlo target in op "
                               f"'{node.op}' (it converts and moves {v.dtype} values: cast and the view ops)")


def emit_module(graph: Graph, inline_weights: bool = False, bindings: dict[str, int] | None = None) -> str:
    """The StableHLO module text of `graph` (weights as arguments unless inline_weights)."""
    return emit(graph, bindings, inline_weights).text


def _weight(b: Builder, graph: Graph, node: Node, spec: Specialization, weights: dict, inline: bool,
            args: list) -> Val:
    name = node.attrs["name"]
    if name not in weights:
        if inline:
            weights[name] = b.constant(graph.constants[name])
        else:
            weights[name] = Val(f"%w_{name}", spec.types[id(node.output)])
            args.append(f"{weights[name].name}: {tensor_type(weights[name].type)}")
    return weights[name]


def _symbol(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name) or "main"
