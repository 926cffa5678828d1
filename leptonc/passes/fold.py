"""fold: constant folding through the ops' reference implementations, and shape arithmetic.

A pure node whose operands are all constants is evaluated with its numpy
reference implementation and replaced by a constant. Shape computations
(shape_of, and gather/slice/concat/arithmetic on its result, see
shape_values.py) fold as soon as the dims they read are known ints, even
when the tensor they measure is not constant.

A dynamic op (reshape_dynamic, expand_dynamic, slice_dynamic, ...) whose
shape-like operands become known turns into its static form (static_forms.py).

The rewrite is a pattern rooted at every pure op, applied by the worklist
driver of rewrite.py: a fold revisits just the users of what it replaced.

The size cap: a result bigger than `max_elements` elements is materialized
only when it is no bigger than its operands together (a transposed weight
folds; a broadcast_to or full of a scalar into a big tensor does not).
"""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node, Value
from ..ir.registry import get_op
from . import shape_values
from .registry import Option, register_pass
from .rewrite import Pattern, PatternSet, pattern_set, refine_node_types
from .static_forms import refine_dynamic_type, static_form


FOLD = pattern_set("fold")  # patterns plugins add; the pass puts its own first


@register_pass("fold", "evaluate nodes with constant operands and shape arithmetic on known dims; "
                       "make dynamic ops static",
               options={"max_elements": Option(int, 1 << 16, "largest result that may grow beyond its operands")})
def fold(graph: Graph, max_elements: int) -> bool:
    memo: dict = {}
    rules = PatternSet("fold")
    rules.add(Pattern("evaluate", lambda g, node: _fold_node(g, node, max_elements, memo), trait="pure"))
    rules.include(FOLD)
    return rules.apply(graph)


def _fold_node(graph: Graph, node: Node, max_elements: int, memo: dict) -> list[Value] | None:
    """The node's results as constants, or the node's static form; its own results when only their types
    were refined (operands learned their sizes from an earlier fold); None when nothing changes."""
    if node.op == "const":
        return None
    refined = refine_node_types(node)
    arrays = _evaluate(graph, node, max_elements) or _shape_arithmetic(graph, node, memo)
    if arrays is not None:
        outputs = {id(v) for v in graph.outputs}
        new = [graph.add_constant(arr, _folded_name(graph, node, v, outputs), before=node)
               if arr is not None and (v.uses or id(v) in outputs) else v for v, arr in zip(node.outputs, arrays)]
        if any(n is not v for n, v in zip(new, node.outputs)):
            return new
    else:
        static = static_form(graph, node, memo)
        if static is not None:
            return static
        refined |= refine_dynamic_type(graph, node, memo)
    return node.outputs if refined else None


def _folded_name(graph: Graph, node: Node, v: Value, outputs: set) -> str:
    """The name of a folded result: a weight laid out anew (transposed, cast, reshaped) keeps the weight's
    name with the op's (`fc1.weight_transpose`), so that reports and pass options can still name it."""
    weights = [x.producer.attrs["name"] for x in node.inputs
               if x.producer is not None and x.producer.op == "const" and x.type.numel != 1]
    if len(weights) == 1 and len(node.outputs) == 1 and id(v) not in outputs:
        return f"{weights[0]}_{node.op}"
    return v.name


def _numel(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _evaluate(graph: Graph, node: Node, max_elements: int) -> list | None:
    """The node's results computed from constant operands, or None (not constant, too big, or failing)."""
    operands = [graph.constant_of(v) for v in node.inputs]
    if any(a is None for a in operands) or not all(v.type.is_static for v in node.outputs):
        return None
    opdef = get_op(node.op)
    if not all(all(isinstance(d, int) for d in node.attrs[k]) for k in opdef.shape_attrs):
        return None  # a shape attribute with symbols: the size is known only at run time
    produced = sum(_numel(v.shape) for v in node.outputs)
    if produced > max(max_elements, sum(a.size for a in operands)):
        return None
    try:
        with np.errstate(all="ignore"):
            out = opdef.reference(*operands, **node.attrs)
    except Exception:  # noqa: BLE001  an op that fails on these operands fails at run time, as it would unfolded
        return None
    results = [np.asarray(r) for r in (out if isinstance(out, tuple) else (out,))]
    if len(results) != len(node.outputs) or any(
            r.dtype != v.dtype.numpy or r.shape != v.shape for r, v in zip(results, node.outputs)):
        return None
    return results


def _shape_arithmetic(graph: Graph, node: Node, memo: dict) -> list | None:
    """Constant arrays for the node's integer shape-like results whose dims are all known."""
    out = []
    for v in node.outputs:
        dims = shape_values.elements(graph, v, memo)
        out.append(np.array(dims, dtype=v.dtype.numpy).reshape(v.shape) if shape_values.all_int(dims) else None)
    return out if any(a is not None for a in out) else None

