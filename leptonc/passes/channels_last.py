"""channels-last: run convolution and pooling in the N, spatial..., C layout (NHWC), with transposes
only at the edges of conv regions.

Each channels-first conv, max_pool and avg_pool becomes its `channels_last`
form between two transposes (into NHWC, back to NCHW); a constant conv weight
is stored transposed (kernel..., C/group, O), at compile time. Then every
transpose sinks toward the graph outputs through the ops that do not care
about layout: elementwise ops (their constant operands transposed along),
reductions (when the axes they reduce stay the trailing ones, which is how
code generation reduces; a mean or max over the spatial dims, as a
squeeze-excitation block takes, becomes a global pool channels-last), pads,
slices, concat and split. Two transposes in a
row compose, so the transpose back to NCHW after one conv meets the transpose
into NHWC before the next and both vanish; what remains sits where a region
meets an op that needs NCHW (a graph output, a matmul, a reshape that mixes
dims). A transpose left that only moves dims of size 1 becomes a reshape.

The result computes the same values (the channels-last ops' reference is
the channels-first one between transposes). A target that computes
convolution channels-last runs this pass in its lowering pipeline.
"""
from __future__ import annotations

import numpy as np

from ..ir import dims as D
from ..ir.graph import Graph, Node, Value
from ..ir.ops.nn import channels_first_perm, channels_last_perm, weight_channels_last_perm
from ..ir.registry import get_op
from .registry import register_pass
from .rewrite import adopt_name, erase_dead


@register_pass("channels-last", "run conv and pooling channels-last (NHWC) with transposes only at the edges "
                                "of conv regions (sunk through elementwise ops, reductions, pads, concat)")
def channels_last(graph: Graph) -> bool:
    converted = [n for n in list(graph.nodes) if get_op(n.op).layout == "channels_last"
                 and not n.attrs["channels_last"]
                 and n.inputs[0].type.rank >= 3]
    if not converted:
        return False
    output_names = [v.name for v in graph.outputs]
    for node in converted:
        _to_channels_last(graph, node)
    for node in list(graph.nodes):
        if node.graph is graph:
            _sink(graph, node)
    for node in reversed(list(graph.nodes)):
        if node.graph is graph and (node.op == "transpose" or node.op == "const"):
            erase_dead(graph, node)
    _unit_transposes_as_reshapes(graph)
    _restore_names(graph, output_names)
    return True


# ---------------------------------------------------------------- conv and pooling

def _to_channels_last(graph: Graph, node: Node) -> None:
    x = node.inputs[0]
    rank = x.type.rank
    operands = [transpose(graph, x, channels_last_perm(rank), node)]
    if node.op == "conv":
        operands.append(_weight_channels_last(graph, node.inputs[1], node))
        operands += node.inputs[2:]
    else:  # the other operands of an op that keeps its weight's layout (qlinear_conv) stay as they are
        operands += node.inputs[1:]
    new = graph.add_node(node.op, operands, {**node.attrs, "channels_last": True}, names=[node.output.name],
                         before=node)
    _replace(graph, node, new, channels_first_perm(rank))


def _weight_channels_last(graph: Graph, w: Value, before: Node) -> Value:
    perm = weight_channels_last_perm(w.type.rank)
    arr = graph.constant_of(w)
    if arr is None:
        return transpose(graph, w, perm, before)
    return graph.add_constant(np.ascontiguousarray(np.transpose(arr, perm)),
                              w.producer.attrs["name"] + ".channels_last", before=before)


# ---------------------------------------------------------------- transposes

def transpose(graph: Graph, v: Value, perm, before: Node) -> Value:
    """transpose(v, perm), composed with a transpose that produced v (nothing at all when they cancel)."""
    perm = tuple(perm)
    p = v.producer
    if p is not None and p.op == "transpose":
        v, perm = p.inputs[0], tuple(p.attrs["perm"][i] for i in perm)
    if perm == tuple(range(len(perm))):
        return v
    for user, _ in v.uses:  # one transpose of a value serves all its users
        if user.op == "transpose" and tuple(user.attrs["perm"]) == perm and user.graph is graph \
                and graph.precedes(user, before):
            return user.output
    return graph.add("transpose", v, perm=perm, name=v.name + "_t", before=before)


def _replace(graph: Graph, node: Node, new: Node, perm) -> None:
    """node's results become new's results transposed by perm; node leaves the graph."""
    for old, v in zip(node.outputs, new.outputs):
        graph.replace_all_uses(old, transpose(graph, v, perm, node))
    erase_dead(graph, node)
    for old, v in zip(node.outputs, new.outputs):
        adopt_name(old, v)


def _inverse(perm) -> tuple:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


def _perm_of(v: Value) -> tuple | None:
    p = v.producer
    return tuple(p.attrs["perm"]) if p is not None and p.op == "transpose" else None


def _sink(graph: Graph, node: Node) -> None:
    """Move transposes on node's operands to its result(s) when node does not care about layout."""
    if node.op == "transpose":
        p = node.inputs[0].producer
        if p is not None and p.op == "transpose":
            graph.replace_all_uses(node.output, transpose(graph, node.inputs[0], node.attrs["perm"], node))
        return
    if len(node.outputs) == 1 and get_op(node.op).has("elementwise"):
        _sink_elementwise(graph, node)
    elif get_op(node.op).fusion == "reduce" and "axes" in node.attrs:
        _sink_reduction(graph, node)
    elif node.op == "pad":
        _sink_axis_attrs(graph, node, lambda perm, a: {"pads": _permute_pairs(a["pads"], perm)})
    elif node.op == "slice":
        _sink_axis_attrs(graph, node, lambda perm, a: {
            "axes": tuple(perm[ax % len(perm)] for ax in a["axes"])})
    elif node.op in ("concat", "split"):
        _sink_along_axis(graph, node)


def _sink_elementwise(graph: Graph, node: Node) -> None:
    out = node.output
    rank = out.type.rank
    perms = {_perm_of(v) for v in node.inputs if v.type.rank == rank and _perm_of(v) is not None}
    if len(perms) != 1:
        return
    perm = perms.pop()
    inv = _inverse(perm)
    operands = []
    for v in node.inputs:
        if v.type.rank == rank and _perm_of(v) == perm:
            operands.append(v.producer.inputs[0])
        elif _cheap_to_transpose(graph, v, rank):
            operands.append(_aligned_transposed(graph, v, rank, inv, node))
        else:
            return
    _replace(graph, node, graph.add_node(node.op, operands, node.attrs, names=[out.name], before=node), perm)


def _cheap_to_transpose(graph: Graph, v: Value, rank: int) -> bool:
    """A constant, or a value with at most one dim above 1 (its transpose is a reshape)."""
    if v.type.rank > rank:
        return False
    return graph.constant_of(v) is not None or sum(1 for d in v.shape if d != 1) <= 1


def _aligned_transposed(graph: Graph, v: Value, rank: int, perm, before: Node) -> Value:
    """v broadcast-aligned to `rank` dims, then transposed by perm (a new constant when v is one)."""
    shape = (1,) * (rank - v.type.rank) + tuple(v.shape)
    arr = graph.constant_of(v)
    if arr is not None:
        if arr.ndim == 0:
            return v
        name = v.producer.attrs["name"]
        return graph.add_constant(np.ascontiguousarray(np.transpose(arr.reshape(shape), perm)), name,
                                  before=before)
    if v.type.rank < rank:
        v = graph.add("reshape", v, shape=shape, name=v.name, before=before)
    return transpose(graph, v, perm, before)


def _sink_reduction(graph: Graph, node: Node) -> None:
    x = node.inputs[0]
    perm = _perm_of(x)
    if perm is None or len(node.outputs) != 1:
        return
    rank = len(perm)
    axes = sorted(perm[a % rank] for a in node.attrs["axes"])
    if axes == list(range(1, rank - 1)) and node.op in GLOBAL_POOLS:
        new = _global_pool(graph, node, x.producer.inputs[0])
        if new is None:
            return
    elif axes and axes != list(range(rank - len(axes), rank)):
        return  # a reduction runs over trailing axes: it would need a transpose of its own
    else:
        new = graph.add_node(node.op, [x.producer.inputs[0]], {**node.attrs, "axes": axes},
                             names=[node.output.name], before=node)
    if node.attrs["keepdims"]:
        result_perm = perm
    else:  # the kept dims, in the order the node had them, numbered among the source's kept dims
        kept = [perm[i] for i in range(rank) if perm[i] not in axes]
        order = sorted(kept)
        result_perm = tuple(order.index(k) for k in kept)
    _replace(graph, node, new, result_perm)


GLOBAL_POOLS = {"reduce_mean": "avg_pool", "reduce_max": "max_pool"}


def _global_pool(graph: Graph, node: Node, x: Value) -> Node | None:
    """A mean or max over the spatial dims of a channels-last x (N, spatial..., C), as the global pool that
    computes it channels-last, [N, 1..., C] ([N, C] without keepdims); None when x is not a float tensor of one
    or two known, non-empty spatial dims (what the pooling kernels take)."""
    spatial = x.shape[1:-1]
    if len(spatial) not in (1, 2) or not x.dtype.is_float or not all(isinstance(d, int) and d > 0 for d in spatial):
        return None
    attrs = {"kernel": tuple(spatial), "channels_last": True}
    if node.op == "reduce_mean":
        attrs["count_include_pad"] = False
    keep = node.attrs["keepdims"]
    pooled = graph.add_node(GLOBAL_POOLS[node.op], [x], attrs, names=[node.output.name if keep else x.name + "_pool"],
                            before=node)
    if keep:
        return pooled
    return graph.add_node("reshape", [pooled.output], {"shape": (x.shape[0], x.shape[-1])}, names=[node.output.name],
                          before=node)


def _permute_pairs(pads, perm) -> tuple:
    """pads (all begins, then all ends) of a transposed tensor, as pads of the tensor before the transpose."""
    rank = len(perm)
    out = [0] * (2 * rank)
    for i, p in enumerate(perm):
        out[p], out[p + rank] = pads[i], pads[i + rank]
    return tuple(out)


def _sink_axis_attrs(graph: Graph, node: Node, attrs_for) -> None:
    """A one-operand op whose attributes name axes: run it before the transpose, attributes mapped."""
    x = node.inputs[0]
    perm = _perm_of(x)
    if perm is None or any(v is not x for v in node.inputs):
        return
    attrs = {**node.attrs, **attrs_for(perm, node.attrs)}
    _replace(graph, node, graph.add_node(node.op, [x.producer.inputs[0]], attrs, names=[node.output.name],
                                         before=node), perm)


def _sink_along_axis(graph: Graph, node: Node) -> None:
    """concat of transposes with one perm (constants transposed along), or split of a transpose."""
    rank = node.outputs[0].type.rank
    perm = _perm_of(node.inputs[0]) if node.op == "split" else \
        next((_perm_of(v) for v in node.inputs if _perm_of(v) is not None), None)
    if perm is None:
        return
    operands = []
    for v in node.inputs:
        if _perm_of(v) == perm:
            operands.append(v.producer.inputs[0])
        elif graph.constant_of(v) is not None:
            operands.append(_aligned_transposed(graph, v, rank, _inverse(perm), node))
        else:
            return
    attrs = {**node.attrs, "axis": perm[node.attrs["axis"] % rank]}
    _replace(graph, node, graph.add_node(node.op, operands, attrs, names=[v.name for v in node.outputs],
                                         before=node), perm)


def _unit_transposes_as_reshapes(graph: Graph) -> None:
    """A transpose that keeps the order of the dims above 1 moves no data: a reshape."""
    for node in list(graph.nodes):
        if node.op != "transpose" or node.graph is not graph:
            continue
        x = node.inputs[0]
        moved = [p for p in node.attrs["perm"] if not D.same(x.shape[p], 1)]
        if moved == sorted(moved) and all(isinstance(d, int) or d != D.UNKNOWN for d in node.output.shape):
            new = graph.add("reshape", x, shape=node.output.shape, name=node.output.name, before=node)
            graph.replace_all_uses(node.output, new)
            graph.erase(node)


def _restore_names(graph: Graph, names: list[str]) -> None:
    """The graph's outputs keep their names (they are the model's signature); a value that took one of them
    on the way gets a fresh name."""
    holders = {v.name: v for v in graph.values()}
    for v, name in zip(graph.outputs, names):
        if v.name != name:
            holder = holders.get(name)
            if holder is not None and holder is not v:
                holder.name = graph.unique_name(name)
            v.name = name
