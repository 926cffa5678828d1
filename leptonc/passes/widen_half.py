"""widen-half: compute the narrow floats in f32, for a target whose kernels have no arithmetic in them.

The narrow floats are f16, bf16, the 8-bit floats f8e4m3fn, f8e4m3fnuz, f8e5m2
and f8e5m2fnuz, and f4e2m1fn ("half" below). Every such value inside the graph
becomes f32; the graph's inputs and outputs keep their types:
  - a half graph input is cast to f32 once, where the graph starts;
  - a half graph output is cast from f32 where the graph ends;
  - a half constant is stored in f32 (exact: every half value is an f32);
  - an op that made a half result computes in f32 on the widened operands (a
    `dtype` attribute naming the half type names f32), and its result is rounded
    to the half type and back (two casts), so that each value is the one the
    op's own type gives, as the reference computes it; data movement (the
    injective and broadcast fusion kinds, without a float attribute such as
    pad's value) copies values that are already exact and is not rounded;
  - a `cast` to a half type stays, followed by a cast back to f32: the rounding
    it asks for is kept.
Afterwards the only ops that see a half value are casts between it and f32 (and
`bitcast`, which reinterprets the bits of its half operand or result: it keeps
them, between casts).

f8e8m0fnu is cast to and from and moved, never computed in (an op that does is
an error); the sub-byte integers are also computed in elementwise (a reduction
over one is an error). A constant of a sub-byte integer type (i4, u4, i2, u2) that an elementwise op
reads is stored one per byte, as i8 or u8, and cast to its type where it is
read: such a weight would be stored packed (ir/packing.py), and only the
quantized kernels read packed weights. The cpu target runs this pass in its lowering pipeline,
so that its matmul, conv and pooling kernels never meet 16-bit (or narrower) storage.
"""
from __future__ import annotations

from ..ir.dtypes import DType
from ..ir.graph import Graph, Node, Value
from ..ir.registry import get_op
from .registry import PassError, register_pass
from .rewrite import adopt_name

HALF = (DType.f16, DType.bf16, DType.f8e4m3fn, DType.f8e4m3fnuz, DType.f8e5m2, DType.f8e5m2fnuz, DType.f4e2m1fn)
_EXACT_KINDS = ("injective", "broadcast")  # each result element is an operand element: nothing to round
# (unless a float attribute supplies some, as pad's value)


def _redirect(graph: Graph, old: Value, new: Value, skip: Node | None = None) -> None:
    """Every use of `old` by a node (not graph outputs, and not `skip`) becomes a use of `new`."""
    for node, i in list(old.uses):
        if node is not skip:
            graph.set_input(node, i, new)


def _widen(graph: Graph, v: Value, after: Node | None, was: dict) -> Value:
    """An f32 copy of half value v, placed after its producer (or first in the graph, for an input)."""
    first = graph.nodes[0] if after is None else None
    up = graph.add("cast", v, dtype=DType.f32, name=f"{v.name}.f32", before=first, after=after)
    _redirect(graph, v, up, skip=up.producer)
    was[id(up)] = v.dtype
    return up


def _round_trip(graph: Graph, v: Value, old: Value, was: dict) -> Value:
    """f32 value v, computed in place of half value `old`, rounded to old's type and widened back: the uses
    of v move to the widened value (named as `old` was), and a graph output v to the rounded one."""
    down = graph.add("cast", v, dtype=old.dtype, name=f"{old.name}.{old.dtype}", after=v.producer)
    graph.outputs = [down if o is v else o for o in graph.outputs]
    if len(v.uses) == 1:
        return down
    up = graph.add("cast", down, dtype=DType.f32, name=old.name, after=down.producer)
    _redirect(graph, v, up, skip=down.producer)
    was[id(up)] = old.dtype
    return up


def _recompute(graph: Graph, node: Node, was: dict) -> None:
    """Rebuild a node that made a half result so that it computes in f32, rounding each half result."""
    opdef = get_op(node.op)
    attrs = {k: (DType.f32 if opdef.attrs[k].kind == "dtype" and v in HALF else v) for k, v in node.attrs.items()}
    new = graph.add_node(node.op, node.inputs, attrs, names=[v.name for v in node.outputs], before=node)
    exact = opdef.fusion in _EXACT_KINDS and not any(opdef.attrs[k].kind in ("float", "floats", "any")
                                                     for k in node.attrs)   # a pad value is rounded too
    renamed = []
    for old, nv in zip(node.outputs, new.outputs):
        if old.dtype in HALF and nv.dtype is not DType.f32:
            raise PassError(f"widen-half: {node.label} still makes {nv.dtype} from widened operands")
        _redirect(graph, old, nv)
        graph.outputs = [nv if o is old else o for o in graph.outputs]
        if old.dtype in HALF:
            was[id(nv)] = old.dtype
        renamed.append((old, _round_trip(graph, nv, old, was) if old.dtype in HALF and not exact else nv))
    graph.erase(node)
    for old, nv in renamed:
        adopt_name(old, nv)


def _check_computable(node: Node) -> None:
    """f8e8m0fnu (powers of two, the scales of the MX formats) is cast to and from, and moved; an op that computes
    in it is refused: numpy rounds its results by rules of its own, which no cast reproduces. The sub-byte
    integers are also computed in by elementwise ops (kernel_body.py reads their codes) and by the kernels that
    take packed weights (anchors); a reduction or another op over them is refused rather than read codes as
    numbers."""
    opdef = get_op(node.op)
    if node.op in ("cast", "bitcast", "const", "where") or opdef.fusion in _EXACT_KINDS:
        return
    values = node.inputs + node.outputs
    if any(v.dtype is DType.f8e8m0fnu for v in values):
        raise PassError(f"widen-half: {node.label} computes in f8e8m0fnu, which the target only casts to and from "
                        "and moves")
    sub_byte = next((v.dtype for v in values if v.dtype.is_packed and v.dtype.is_int), None)
    if sub_byte is not None and opdef.fusion not in ("elemwise", "anchor"):
        raise PassError(f"widen-half: {node.label} computes in {sub_byte}, which the target casts, moves and "
                        f"computes elementwise only (cast it to {'i8' if sub_byte.is_signed else 'u8'} first)")


def _unpack_constant(graph: Graph, node: Node) -> bool:
    """A sub-byte integer constant that elementwise ops or the graph's outputs read, as a one-per-byte constant
    cast to its type for them."""
    v = node.output
    readers = [(u, i) for u, i in v.uses if get_op(u.op).has("elementwise")]
    outputs = [i for i, o in enumerate(graph.outputs) if o is v]
    if not (v.dtype.is_packed and v.dtype.is_int and (readers or outputs)):
        return False
    byte = DType.i8 if v.dtype.is_signed else DType.u8
    wide = graph.add_constant(graph.constant_of(v).astype(byte.numpy), f"{node.attrs['name']}.{byte}", before=node)
    narrow = graph.add("cast", wide, dtype=v.dtype, name=v.name, before=node)
    for u, i in readers:
        graph.set_input(u, i, narrow)
    for i in outputs:
        graph.outputs[i] = narrow
    if not v.uses:
        graph.erase(node)
        adopt_name(v, narrow)
    return True


@register_pass("widen-half", "compute f16, bf16, 8- and 4-bit float values in f32 (rounded to their type after "
                             "each op); graph inputs and outputs keep their types")
def widen_half(graph: Graph) -> bool:
    out_types = [v.dtype for v in graph.outputs]
    for node in graph.nodes:
        _check_computable(node)
    unpacked = [_unpack_constant(graph, n) for n in list(graph.nodes) if n.op == "const"]
    if not any(v.dtype in HALF for v in graph.values()):
        return any(unpacked)
    was: dict[int, DType] = {}   # id of an f32 value -> the half type of the value it stands for
    for v in graph.inputs:
        if v.dtype in HALF and v.uses:
            _widen(graph, v, None, was)
    for node in list(graph.nodes):
        if node.op == "const":
            if node.output.dtype in HALF:
                array = graph.constant_of(node.output)
                wide = graph.add_constant(array.astype("float32"), f"{node.attrs['name']}.f32", before=node)
                was[id(wide)] = node.output.dtype
                graph.replace_all_uses(node.output, wide)
                graph.erase(node)
        elif node.op == "bitcast":   # its bits are those of the half values: narrow (exactly) what was half
            for i, v in enumerate(node.inputs):
                if id(v) in was:
                    graph.set_input(node, i, graph.add("cast", v, dtype=was[id(v)], before=node))
            if node.output.dtype in HALF:
                _widen(graph, node.output, node, was)
        elif node.op == "cast":
            if node.output.dtype in HALF:
                _widen(graph, node.output, node, was)
        elif any(v.dtype in HALF for v in node.outputs):
            _recompute(graph, node, was)
    for i, (v, dtype) in enumerate(zip(graph.outputs, out_types)):
        if v.dtype is not dtype:
            source = v.producer
            if source is not None and source.op == "cast" and source.inputs[0].dtype is dtype:
                graph.outputs[i] = source.inputs[0]   # the rounding already made it
            else:
                graph.outputs[i] = graph.add("cast", v, dtype=dtype, name=f"{v.name}.{dtype}", after=source)
    return True
