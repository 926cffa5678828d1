"""mixed-precision: run matmuls and convolutions in bf16 or f16, keep the numerically sensitive ops in f32.

    mixed-precision{dtype=bf16}   or   mixed-precision{dtype=f16}

The policy (that of torch.autocast and of XLA's bf16 normalization), read from each op's `precision` in
the registry:
  - "low" (matmul, conv and einsum) over f32 operands run in the low type; their
    constant operands (the weights) are stored in it, other operands are cast
    down. Their reference and kernels accumulate in f32 and round the result.
  - "follow": data movement and the cheap exact-enough elementwise ops (add, sub, mul,
    neg, relu, max, min, abs, where, reshape, transpose, slice, concat,
    gather, ...) stay in the low type when every float operand already is
    (or is a constant): a bias add right after a matmul, a head split.
  - "f32", everything else, stays f32: softmax, layer and RMS norms, every reduction,
    exp/log/pow/sqrt/erf/tanh/div, and every op with an f32 operand; a
    low-precision value that reaches one is cast back to f32 there.
Graph inputs and outputs keep their types. Casts are inserted only at the
borders of low-precision regions, and redundant ones are removed: a cast to
the type a value already has, and a round trip low -> f32 -> low.
"""
from __future__ import annotations

from ..ir.dtypes import DType
from ..ir.graph import Graph, Node, Value
from ..ir.registry import get_op
from .registry import Option, register_pass
from .tolerance import Tolerance, declare_tolerance



class _Lowering:
    def __init__(self, graph: Graph, low: DType):
        self.graph, self.low = graph, low
        self.low_of: dict[int, Value] = {}   # id(f32 value) -> the same value in the low type
        self.const_cache: dict[str, Value] = {}

    def _is_f32(self, v: Value) -> bool:
        return v.dtype is DType.f32

    def eligible(self, node: Node) -> bool:
        floats = [v for v in node.inputs if v.dtype.is_float]
        if not floats or not all(self._is_f32(v) for v in floats):
            return False
        precision = get_op(node.op).precision
        if precision == "low":
            return True
        if precision != "follow":
            return False
        lowered = [v for v in floats if id(v) in self.low_of]
        return bool(lowered) and all(id(v) in self.low_of or self.graph.constant_of(v) is not None for v in floats)

    def to_low(self, v: Value, before: Node) -> Value:
        if not self._is_f32(v):
            return v
        if id(v) in self.low_of:
            return self.low_of[id(v)]
        arr = self.graph.constant_of(v)
        if arr is not None:
            cname = v.producer.attrs["name"]
            if cname not in self.const_cache:
                self.const_cache[cname] = self.graph.add_constant(arr.astype(self.low.numpy), f"{cname}.{self.low}",
                                                                  before=before)
            return self.const_cache[cname]
        down = self.graph.add("cast", v, dtype=self.low, name=f"{v.name}.{self.low}", before=before)
        self.low_of[id(v)] = down
        return down

    def lower(self, node: Node) -> None:
        g = self.graph
        inputs = [self.to_low(v, node) for v in node.inputs]
        new = g.add_node(node.op, inputs, node.attrs, names=[v.name for v in node.outputs], before=node)
        for old, nv in zip(node.outputs, new.outputs):
            if nv.dtype is self.low:
                up = g.add("cast", nv, dtype=DType.f32, name=old.name, after=new)
                g.replace_all_uses(old, up)
                self.low_of[id(up)] = nv
            else:
                g.replace_all_uses(old, nv)
        g.erase(node)


def drop_redundant_casts(graph: Graph) -> bool:
    """Remove casts to the type a value has, and round trips through f32 (low -> f32 -> low)."""
    changed = False
    for node in list(graph.nodes):
        if node.graph is not graph or node.op != "cast":
            continue
        x, target = node.inputs[0], node.attrs["dtype"]
        source = x.producer
        if x.dtype is target:
            graph.replace_all_uses(node.output, x)
            changed = True
        elif source is not None and source.op == "cast" and source.inputs[0].dtype is target \
                and x.dtype is DType.f32 and target in (DType.bf16, DType.f16):
            graph.replace_all_uses(node.output, source.inputs[0])
            changed = True
    for node in reversed(list(graph.nodes)):
        if node.op in ("cast", "const") and not any(v.uses for v in node.outputs) \
                and not any(o is v for v in node.outputs for o in graph.outputs):
            graph.erase(node)
            changed = True
    return changed


@register_pass("mixed-precision", "run matmuls and convs in bf16/f16; softmax, norms and reductions stay f32",
               options={"dtype": Option(str, "bf16", "the low-precision type", choices=("bf16", "f16"))})
def mixed_precision(graph: Graph, dtype: str) -> bool:
    lowering = _Lowering(graph, DType.parse(dtype))
    changed = False
    for node in list(graph.nodes):
        if node.graph is graph and node.op != "const" and lowering.eligible(node):
            lowering.lower(node)
            changed = True
    return drop_redundant_casts(graph) or changed


def _tolerance(dtype: str) -> Tolerance:
    if dtype == "bf16":
        return Tolerance(max_rel_error=0.1, min_sqnr_db=25.0, min_top1=0.9)
    return Tolerance(max_rel_error=0.02, min_sqnr_db=40.0, min_top1=0.95)


declare_tolerance("mixed-precision", _tolerance)
