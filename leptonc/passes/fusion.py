"""Fusion: group the ops of a graph into kernels, the units that code generation emits.

A kernel is one of
  - a loop kernel: elementwise ops over one iteration domain, possibly with
    reductions over the domain's trailing axes (softmax, layer norm, RMS norm
    are one loop kernel each: a row at a time, reductions and all);
  - a matmul or conv kernel (quantized and sparse matmuls too), with an epilogue of
    elementwise ops over its output (bias, activation, residual add); a
    matmul also absorbs transposes of its operands that BLAS can read as
    strides (and any anchor those a target reads in place: `reads_through`);
  - an attention kernel: a scores matmul (with its epilogue: scale, mask), the
    softmax over its rows and the matmul of the probabilities with the values,
    as one kernel that keeps scores and probabilities out of memory (the
    targets compute it as flash attention: online softmax over key blocks);
    it reads its operands through the transposes that split the heads (and
    the split of a fused QKV projection) as strides, and writes its result
    through the transpose that merges the heads back;
  - a single op that is neither (pooling, gather, concat, a layout copy...).
Reshapes are views: no kernel, the result shares its operand's memory.

The registered pass `fuse` rewrites the graph into the form the planner
groups best (reductions over trailing axes, composed transposes, no identity
reshapes, softmax as exp(x - max) / sum, a scale on q or k moved onto the
scores), as the patterns of `pattern_set("fuse")` (rewrite.py), so that
attention and softmax are recognised whichever equivalent form a model writes
them in; `plan_fusion(graph)` then gives the kernels, in an order that
respects every dependency, and for every producer/consumer pair left in
different kernels the reason why.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import reduce
from typing import Callable

import numpy as np

from ..ir import dims as D
from ..ir.dtypes import DType
from ..ir.graph import Graph, Node, Value
from ..ir.registry import all_ops, get_op
from .canonicalize import CANONICAL
from .registry import register_pass
from .rewrite import erase_dead, pattern_set



def is_reduction(op: str) -> bool:
    """A reduction over static axes that a loop kernel computes (fusion kind "reduce")."""
    return get_op(op).fusion == "reduce"


def is_anchor(op: str) -> bool:
    """An op that starts a kernel taking an epilogue of elementwise ops (fusion kind "anchor")."""
    return get_op(op).fusion == "anchor"


# The ops of each kind among those registered when this module loads, for code generators that test
# membership in a loop.
REDUCTIONS = frozenset(name for name, op in all_ops().items() if op.fusion == "reduce")
SOFTMAX_OPS = ["reduce_max", "sub", "exp", "reduce_sum", "div"]
ATTENTION_DTYPES = (DType.f32, DType.f16, DType.bf16)  # of scores and probabilities in a fused attention


@dataclass(eq=False)
class Kernel:
    """A group of IR nodes that runs as one generated function."""

    kind: str                      # "loop", "op", "attention", or the anchor's op: "matmul", "conv", ...
    nodes: list[Node]              # the anchor (matmul/conv/op) first, then the fused ops, in graph order
    domain: tuple = ()             # iteration shape of the loop part (the anchor's output for an epilogue)
    reduce_rank: int = 0           # trailing axes of the domain that the loop part reduces
    absorbed: list[Node] = field(default_factory=list)  # transposes (and splits) read as strides
    sealed: bool = False           # a later kernel reads this one: it takes no more ops
    name: str = ""
    parts: list[Kernel] = field(default_factory=list)  # attention: scores matmul, softmax, output matmul
    out_transpose: Node | None = None  # attention: the transpose of its result it writes (last of nodes)

    @property
    def anchor(self) -> Node | None:
        return self.nodes[0] if self.kind != "loop" else None

    @property
    def loop_nodes(self) -> list[Node]:
        """The elementwise and reduction ops computed on tiles (an attention's: its two matmul epilogues)."""
        if self.kind == "attention":
            return self.parts[0].loop_nodes + self.parts[-1].loop_nodes
        return self.nodes if self.kind == "loop" else self.nodes[1:]

    def describe_ops(self) -> list[str]:
        return [n.statement for n in self.absorbed + self.nodes]


@dataclass
class UnfusedPair:
    producer: Node
    consumer: Node
    reason: str


@dataclass
class FusionPlan:
    kernels: list[Kernel]
    unfused: list[UnfusedPair]
    views: list[Node]

    def report(self) -> str:
        """Every kernel with the IR ops it holds, then each unfused producer/consumer pair and why."""
        lines = [f"{len(self.kernels)} kernels"]
        for k in self.kernels:
            lines.append(f"  {k.name} [{k.kind}]: " + "; ".join(k.describe_ops()))
        if self.views:
            lines.append(f"views (no code, shared memory): {', '.join(n.label for n in self.views)}")
        lines.append(f"{len(self.unfused)} producer/consumer pairs left unfused")
        for p in self.unfused:
            lines.append(f"  {p.producer.label} -> {p.consumer.label}: {p.reason}")
        return "\n".join(lines)


# ---------------------------------------------------------------- the rewrites of the `fuse` pass

FUSE = pattern_set("fuse")
FUSE.include(CANONICAL, "no_op", "chain", "transpose_of_transpose", "as_reshape")


@register_pass("fuse", "prepare kernels: reductions over trailing axes, reshapes sunk below elementwise ops, "
                       "composed transposes/reshapes, squeeze/unsqueeze as reshapes, softmax in its stable "
                       "form, attention's scale in the scores' epilogue")
def fuse(graph: Graph) -> bool:
    changed = FUSE.apply(graph)
    return _drop_dead(graph) or changed


@FUSE.pattern(fusion="reduce")
def _reduce_trailing(graph: Graph, node: Node) -> Value | None:
    return _move_reduced_axes_last(graph, node)


@FUSE.pattern("matmul")
def _matmul_of_vector(graph: Graph, node: Node) -> Value | None:
    return _matmul_as_2d(graph, node) if min(v.type.rank for v in node.inputs) == 1 else None


@FUSE.pattern(fusion="elemwise")
@FUSE.pattern(fusion="reduce")
def _reshape_later(graph: Graph, node: Node) -> Value | None:
    return _sink_reshape(graph, node)


@FUSE.pattern("div")
def _stable_softmax(graph: Graph, node: Node) -> Value | None:
    """exp(x) / sum(exp(x)) -> exp(x - max x) / sum(exp(x - max x)), over the same axes: the form the
    planner fuses (and that attention is recognised in), and one that cannot overflow (where the first form
    gives inf / inf = NaN, this one gives the softmax)."""
    e, total = node.inputs
    ex, red = e.producer, total.producer
    if ex is None or red is None or ex.op != "exp" or red.op != "reduce_sum" or red.inputs[0] is not e \
            or not red.attrs["keepdims"] or not e.dtype.is_float or not _only_read_by(graph, e, [node, red]):
        return None
    x = ex.inputs[0]
    sub = x.producer
    if sub is not None and sub.op == "sub" and sub.inputs[1].producer is not None \
            and sub.inputs[1].producer.op == "reduce_max":
        return None  # stable already
    axes = red.attrs["axes"]
    shifted = graph.add("sub", x, graph.add("reduce_max", x, axes=axes, keepdims=True, before=node), before=node)
    e2 = graph.add("exp", shifted, name=e.name, before=node)
    return graph.add("div", e2, graph.add("reduce_sum", e2, axes=axes, keepdims=True, name=total.name,
                                          before=node), name=node.output.name, before=node)


@FUSE.pattern("mul")
def _times_reciprocal(graph: Graph, node: Node) -> Value | None:
    """x * reciprocal(y) -> x / y (a softmax's normalisation written as a product)."""
    for i in (0, 1):
        r = node.inputs[1 - i].producer
        if r is not None and r.op == "reciprocal" and len(r.output.uses) == 1:
            out = graph.add("div", node.inputs[i], r.inputs[0], name=node.output.name, before=node)
            if out.type == node.output.type:
                return out
            erase_dead(graph, out.producer)
    return None


@FUSE.pattern("matmul")
def _scale_after_matmul(graph: Graph, node: Node) -> Value | None:
    """matmul(a * c, b) -> matmul(a, b) * c for a scalar constant c (also c times b, through b's transpose,
    and / c): attention scaled on q or k computes as one scaled on the scores, in the scores' epilogue.
    Floats only: between integers, (a / c) @ b is not (a @ b) / c."""
    if not node.output.dtype.is_float:
        return None
    for i in (0, 1):
        v, through = node.inputs[i], None
        if v.producer is not None and v.producer.op == "transpose" and len(v.uses) == 1:
            through, v = v.producer, v.producer.inputs[0]
        scale = v.producer
        if scale is None or scale.op not in ("mul", "div") or len(v.uses) != 1:
            continue
        t, c = scale.inputs
        if scale.op == "mul" and _scalar_constant(graph, t):
            t, c = c, t
        if not _scalar_constant(graph, c) or c.dtype is not node.output.dtype or c.type.rank > node.output.type.rank:
            continue
        if c.dtype in (DType.f16, DType.bf16) and not _power_of_two(graph.constant_of(c)):
            continue  # f16/bf16 round a * c where it stands: moved, it rounds differently (beyond their tolerance)
        if through is not None:
            t = graph.add("transpose", t, perm=through.attrs["perm"], name=through.output.name, before=node)
        operands = [t, node.inputs[1]] if i == 0 else [node.inputs[0], t]
        mm = graph.add("matmul", *operands, name=node.output.name, before=node)
        return graph.add(scale.op, mm, c, name=node.output.name, before=node)
    return None


def _scalar_constant(graph: Graph, v: Value) -> bool:
    return graph.constant_of(v) is not None and v.type.numel == 1


def _power_of_two(c) -> bool:
    """Whether a one-element constant is +-2^k: scaling by it is exact, before a matmul or after."""
    m, _ = np.frexp(np.abs(np.asarray(c, dtype=np.float64)).reshape(-1)[0])
    return m == 0.5


def _sink_reshape(graph: Graph, node: Node) -> Value | None:
    """op(reshape(x), c...) -> reshape(op(x, c'...)) when x has fewer dims: the op runs in x's shape, so
    that it can join the kernel that produced x (a matmul over flattened rows, say). Operands c map to
    x's shape by views; a reduction moves only when its axes lie in the dims both shapes share at the
    end. Moving only toward fewer dims makes the rewrite terminate."""
    if len(node.outputs) != 1:
        return None
    for v in node.inputs:
        r = v.producer
        if r is None or r.op != "reshape" or r.inputs[0].type.rank >= v.type.rank:
            continue
        x = r.inputs[0]
        X, Y = tuple(x.shape), tuple(v.shape)
        s = 0
        while s < min(len(X), len(Y)) and D.same(X[-1 - s], Y[-1 - s]):
            s += 1
        if is_reduction(node.op):
            k = len(_reduced_axes(node))
            if not _trailing(node) or k > s:
                continue
            attrs = dict(node.attrs)
            if node.op in ("argmax", "argmin"):
                attrs["axis"] = len(X) - 1
            else:
                attrs["axes"] = tuple(range(len(X) - k, len(X)))
            inputs = [x]
        else:
            if not _same_shape(node.output.shape, Y):
                continue
            inputs = [x if c is v else _in_shape_of(graph, c, X, Y, s, node) for c in node.inputs]
            if any(c is None for c in inputs):
                continue
            attrs = node.attrs
        new = graph.add_node(node.op, inputs, attrs, names=[node.output.name], before=node).output
        return graph.add("reshape", new, shape=node.output.shape, name=node.output.name, before=node)
    return None


def _in_shape_of(graph: Graph, c: Value, X: tuple, Y: tuple, s: int, before: Node) -> Value | None:
    """Operand c of an op over shape Y, as an operand of the same op over X (same elements; the last s
    dims of X and Y agree): unchanged when it only broadcasts over those dims, or a view of it in X's
    dims when it has all of Y's leading dims. None when neither holds."""
    C = (1,) * (len(Y) - len(c.shape)) + tuple(c.shape)
    lead, tail = C[:len(Y) - s], C[len(Y) - s:]
    if all(d == 1 for d in lead):
        target = tail
    elif _same_shape(lead, Y[:len(Y) - s]):
        target = X[:len(X) - s] + tail
    else:
        return None
    if len(c.shape) <= len(target) and _same_shape((1,) * (len(target) - len(c.shape)) + tuple(c.shape), target):
        return c
    src = c.producer.inputs[0] if c.producer is not None and c.producer.op == "reshape" else c
    return graph.add("reshape", src, shape=target, name=c.name, before=before)


def _reduced_axes(node: Node) -> tuple:
    rank = node.inputs[0].type.rank
    if node.op in ("argmax", "argmin"):
        return (node.attrs["axis"] % rank,)
    return tuple(sorted(a % rank for a in node.attrs["axes"]))


def _move_reduced_axes_last(graph: Graph, node: Node) -> Value | None:
    """Reduce over trailing axes only: transpose the reduced axes to the end, reshape the result back."""
    x = node.inputs[0]
    rank = x.type.rank
    axes = _reduced_axes(node)
    if not axes:
        return None if node.op in ("argmax", "argmin") else x  # reducing over no axis is the identity
    if axes == tuple(range(rank - len(axes), rank)):
        return None
    kept = tuple(i for i in range(rank) if i not in axes)
    moved = graph.add("transpose", x, perm=kept + axes, name=x.name + "_t", before=node)
    if node.op in ("argmax", "argmin"):
        attrs = dict(node.attrs, axis=rank - 1, keepdims=False)
    else:
        attrs = dict(node.attrs, axes=tuple(range(len(kept), rank)), keepdims=False)
    red = graph.add_node(node.op, [moved], attrs, names=[node.output.name + "_r"], before=node).output
    return graph.add("reshape", red, shape=node.output.shape, name=node.output.name, before=node)


def _matmul_as_2d(graph: Graph, node: Node) -> Value:
    """A matmul with a 1-D operand as one of matrices (numpy's promotion), reshaped back."""
    a, b = node.inputs
    if a.type.rank == 1:
        a = graph.add("reshape", a, shape=(1,) + a.shape, name=a.name + "_row", before=node)
    if b.type.rank == 1:
        b = graph.add("reshape", b, shape=b.shape + (1,), name=b.name + "_col", before=node)
    mm = graph.add("matmul", a, b, name=node.output.name + "_2d", before=node)
    return graph.add("reshape", mm, shape=node.output.shape, name=node.output.name, before=node)


def _drop_dead(graph: Graph) -> bool:
    outputs = {id(v) for v in graph.outputs}
    changed = False
    for node in reversed(list(graph.nodes)):
        if not any(v.uses or id(v) in outputs for v in node.outputs):
            graph.erase(node)
            changed = True
    return changed


# ---------------------------------------------------------------- planning

def view_root(v: Value) -> Value:
    """The value whose memory `v` shares (through reshapes)."""
    while v.producer is not None and v.producer.op == "reshape":
        v = v.producer.inputs[0]
    return v


def operand_layout(v: Value, absorbed: list[Node]) -> tuple[Value, object, list, list] | None:
    """(value in memory, element offset, shape, element strides) of an operand that a kernel reads through its
    absorbed transpose and split (and the reshapes between them); None when no strides do."""
    t = v.producer if v.producer in absorbed and v.producer.op == "transpose" else None
    u = t.inputs[0] if t is not None else v
    root = view_root(u)
    s = root.producer
    if s is not None and s.op == "split" and s in absorbed:
        x, axis = s.inputs[0], s.attrs["axis"] % s.inputs[0].type.rank
        before = [o.shape[axis] for o in s.outputs[:next(i for i, o in enumerate(s.outputs) if o is root)]]
        strides = D.contiguous_strides(x.shape)
        mem, offset = x, D.mul(reduce(D.add, before, 0), strides[axis])
    else:
        mem, offset, strides = u, 0, D.contiguous_strides(root.shape)
    strides = D.view_strides(root.shape, strides, u.shape)
    if strides is None:
        return None
    if t is not None:
        strides = [strides[p] for p in t.attrs["perm"]]
    return mem, offset, list(v.shape), strides


def memory_operands(k: Kernel) -> list[Value]:
    """The values a kernel reads from memory, in order of first use: the operands of its absorbed nodes and
    the inputs of its nodes, less what it computes and what it reads through an absorbed node."""
    inside = {id(v) for n in k.absorbed + k.nodes for v in n.outputs}
    through = {id(v) for n in k.absorbed for v in n.outputs}
    out: list[Value] = []
    for n in k.absorbed + k.nodes:
        for v in (n.inputs[:1] if n in k.absorbed else n.inputs):
            if id(v) not in inside and id(view_root(v)) not in through and all(x is not v for x in out):
                out.append(v)
    return out


def absorbable_transpose(node: Node) -> bool:
    """A transpose that every user (a matmul) can read in place: one of its last two dims has unit stride."""
    if node.op != "transpose" or node.output.type.rank < 2 or not node.output.uses:
        return False
    if node.graph is not None and any(o is node.output for o in node.graph.outputs):
        return False
    perm = node.attrs["perm"]
    last = len(perm) - 1
    if last not in (perm[-1], perm[-2]):
        return False
    return all(u.op == "matmul" and i in (0, 1) and u.inputs[0] is not u.inputs[1] for u, i in node.output.uses)


def plan_fusion(graph: Graph, reads_through: Callable[[Node], bool] | None = None) -> FusionPlan:
    """Group the graph's nodes into kernels (see the module docstring). `reads_through`, when given, names
    more transposes that their anchors read in place, as a target's code can (a cpu conv reads an image
    channels-first, conv.reads_channels_first)."""
    planner = _Planner(graph, reads_through)
    return planner.run()


class _Planner:
    def __init__(self, graph: Graph, reads_through: Callable[[Node], bool] | None = None):
        self.graph = graph
        self.reads_through = reads_through
        self.kernel_of: dict[int, Kernel] = {}   # id(node) -> kernel
        self.kernels: list[Kernel] = []
        self.unfused: list[UnfusedPair] = []
        self.views: list[Node] = []
        self.reasons: dict[tuple, str] = {}      # (id(producer), id(consumer)) -> why they are apart

    def run(self) -> FusionPlan:
        absorbed = {id(n) for n in self.graph.nodes
                    if absorbable_transpose(n) or (self.reads_through is not None and self.reads_through(n))}
        for node in self.graph.nodes:
            if node.op == "const":
                continue
            if node.op == "reshape":
                self.views.append(node)
                continue
            if id(node) in absorbed:
                continue
            if is_anchor(node.op):
                k = self._new(node.op, node, domain=node.output.shape)
                for v in node.inputs:
                    p = v.producer
                    if p is not None and id(p) in absorbed:
                        if p not in k.absorbed:
                            k.absorbed.append(p)
                        self.kernel_of[id(p)] = k
            elif self._loop_op(node):
                self._place_loop_op(node)
            else:
                self._new("op", node)
            self._seal_producers(node)
        self._merge_attention()
        kernels = self._schedule()
        for i, k in enumerate(kernels):
            k.name = f"k{i}_{kernel_title(k)}"
        return FusionPlan(kernels, self._pairs(), self.views)

    @staticmethod
    def _loop_op(node: Node) -> bool:
        opdef = get_op(node.op)
        if opdef.has("elementwise"):
            return True
        return is_reduction(node.op) and _trailing(node)

    def _new(self, kind: str, node: Node, domain=(), reduce_rank=0) -> Kernel:
        k = Kernel(kind, [node], tuple(domain), reduce_rank)
        self.kernels.append(k)
        self.kernel_of[id(node)] = k
        return k

    def _producer_kernel(self, v: Value) -> Kernel | None:
        p = view_root(v).producer
        return None if p is None or p.op == "const" else self.kernel_of.get(id(p))

    def _source_kernel(self, v: Value, k: Kernel) -> Kernel | None:
        """The kernel that kernel k waits on to read v: none for a transpose k reads in place (several
        kernels may read one transpose in place; `kernel_of` names only the last of them)."""
        p = view_root(v).producer
        return None if any(p is a for a in k.absorbed) else self._producer_kernel(v)

    def _seal_producers(self, node: Node) -> None:
        mine = self.kernel_of.get(id(node))
        for v in node.inputs:
            k = self._producer_kernel(v)
            if k is not None and k is not mine:
                k.sealed = True
        for p in (mine.absorbed if mine is not None else []):
            k = self._producer_kernel(p.inputs[0])
            if k is not None and k is not mine:
                k.sealed = True

    def _place_loop_op(self, node: Node) -> None:
        for v in node.inputs:
            p = v.producer
            if p is None or p.op == "const" or id(p) not in self.kernel_of:
                continue
            k = self.kernel_of[id(p)]
            if id(node) in self.kernel_of:
                self.reasons[(id(p), id(node))] = "the consumer already joined another operand's kernel"
                continue
            reason = self._fits(k, node)
            if reason is None:
                k.nodes.append(node)
                self.kernel_of[id(node)] = k
                if is_reduction(node.op):
                    k.reduce_rank = len(_reduced_axes(node))
            else:
                self.reasons[(id(p), id(node))] = reason
        if id(node) in self.kernel_of:
            return
        if is_reduction(node.op):
            x = node.inputs[0]
            self._new("loop", node, domain=x.shape, reduce_rank=len(_reduced_axes(node)))
        else:
            self._new("loop", node, domain=node.output.shape)

    def _fits(self, k: Kernel, node: Node) -> str | None:
        """None if `node` can join kernel k, else the reason it cannot."""
        if k.kind == "op":
            return f"{k.nodes[0].op} kernels take no fused ops"
        if k.sealed:
            return "the producer's kernel is already read by an earlier-scheduled kernel"
        inside = [v for v in node.inputs if self._in_kernel(v, k)]
        dom = k.domain
        if k.anchor is not None and k.kind == k.anchor.op and is_anchor(k.kind):
            if is_reduction(node.op):
                return f"a reduction does not fuse into a {k.kind} epilogue"
            if not _same_shape(node.output.shape, dom):
                return f"result shape {_fmt(node.output.shape)} differs from the {k.kind} output {_fmt(dom)}"
            return None
        if is_reduction(node.op):
            x = node.inputs[0]
            if not _same_shape(x.shape, dom) or not self._in_kernel(x, k):
                return f"reduces {_fmt(x.shape)}, not the kernel domain {_fmt(dom)}"
            rank = len(_reduced_axes(node))
            if k.reduce_rank and k.reduce_rank != rank:
                return "reduces other axes than the kernel's reductions"
            if not k.reduce_rank and not self._inputs_split(k, rank):
                return "an operand broadcasts partially across the reduced axes"
            return None
        out = node.output.shape
        if _same_shape(out, dom):
            for v in inside:
                if not (_same_shape(v.shape, dom) or _row_keepdims(v.shape, dom, k.reduce_rank)):
                    return f"operand %{v.name} {_fmt(v.shape)} does not broadcast over the domain {_fmt(dom)}"
            if k.reduce_rank and not all(_splits(v.shape, dom, k.reduce_rank) for v in node.inputs):
                return "an operand broadcasts partially across the reduced axes"
            return None
        if k.reduce_rank and _is_row(out, dom, k.reduce_rank):
            if all(_same_shape(v.shape, out) for v in inside):
                return None
        return f"result shape {_fmt(out)} differs from the kernel domain {_fmt(dom)}"

    def _in_kernel(self, v: Value, k: Kernel) -> bool:
        p = v.producer
        return p is not None and self.kernel_of.get(id(p)) is k

    def _inputs_split(self, k: Kernel, rank: int) -> bool:
        return all(_splits(v.shape, k.domain, rank) for n in k.loop_nodes for v in n.inputs
                   if not self._in_kernel(v, k))

    def _merge_attention(self) -> None:
        """Each scores matmul -> softmax -> output matmul chain becomes one attention kernel."""
        for sm in [k for k in self.kernels if k.kind == "loop"]:
            p = sm.nodes[-1].outputs[0]
            scores = self._producer_kernel(sm.nodes[0].inputs[0])
            output = self.kernel_of.get(id(p.uses[0][0])) if len(p.uses) == 1 else None
            if scores is None or output is None or not is_attention(self.graph, scores, sm, output):
                continue
            merged = Kernel("attention", scores.nodes + sm.nodes + output.nodes, output.domain,
                            absorbed=scores.absorbed + output.absorbed, parts=[scores, sm, output])
            self.kernels[self.kernels.index(scores)] = merged
            self.kernels.remove(sm)
            self.kernels.remove(output)
            t = self._transpose_of(output.nodes[-1].outputs[0])
            if t is not None:  # written in its layout: the copy kernel goes
                self.kernels.remove(self.kernel_of[id(t)])
                merged.nodes.append(t)
                merged.out_transpose = t
            for n in merged.nodes + merged.absorbed:
                self.kernel_of[id(n)] = merged
            self._absorb_splits(merged)

    def _absorb_splits(self, k: Kernel) -> None:
        """A split whose results only the attention kernel reads, as its Q, K or V through views and absorbed
        transposes, is read in place (strides and an offset into the split's operand): its copy kernel goes."""
        qk, pv = k.parts[0].nodes[0], k.parts[-1].nodes[0]
        slots = [(qk, 0), (qk, 1), (pv, 1)]
        for node, i in slots:
            v = node.inputs[i]
            t = v.producer if v.producer in k.absorbed else None
            s = view_root(t.inputs[0] if t is not None else v).producer
            if s is None or s.op != "split" or s in k.absorbed or self.kernel_of[id(s)].kind != "op":
                continue
            if all(self._read_as_slot(k, o, slots, s) for o in s.outputs):
                self.kernels.remove(self.kernel_of[id(s)])
                k.absorbed.append(s)
                self.kernel_of[id(s)] = k

    def _read_as_slot(self, k: Kernel, v: Value, slots: list, split: Node) -> bool:
        """Every read of v (through views and k's absorbed transposes) is a Q, K or V operand of k, at strides
        that a view of the split's operand has."""
        if any(o is v for o in self.graph.outputs):
            return False
        for u, i in v.uses:
            if u.op == "reshape" or (u.op == "transpose" and u in k.absorbed):
                if not self._read_as_slot(k, u.outputs[0], slots, split):
                    return False
            elif (u, i) not in slots or operand_layout(u.inputs[i], k.absorbed + [split]) is None:
                return False
        return True

    def _transpose_of(self, v: Value) -> Node | None:
        """The transpose, a kernel of its own, that is all that reads v."""
        if len(v.uses) != 1 or any(o is v for o in self.graph.outputs):
            return None
        t = v.uses[0][0]
        k = self.kernel_of.get(id(t))
        return t if t.op == "transpose" and k is not None and k.kind == "op" else None

    def _schedule(self) -> list[Kernel]:
        """Kernels in dependency order (creation order where free)."""
        order = {id(k): i for i, k in enumerate(self.kernels)}
        deps: dict[int, set] = {id(k): set() for k in self.kernels}
        for k in self.kernels:
            for n in k.absorbed + k.nodes:
                for v in n.inputs:
                    src = self._source_kernel(v, k)
                    if src is not None and src is not k:
                        deps[id(k)].add(id(src))
        done: set = set()
        out: list[Kernel] = []
        pending = list(self.kernels)
        while pending:
            for k in pending:
                if deps[id(k)] <= done:
                    out.append(k)
                    done.add(id(k))
                    pending.remove(k)
                    break
            else:
                raise RuntimeError("fusion produced a cycle between kernels")  # excluded by sealing
        assert len(out) == len(order)
        return out

    def _pairs(self) -> list[UnfusedPair]:
        pairs = []
        for node in self.graph.nodes:
            k = self.kernel_of.get(id(node))
            if k is None:
                continue
            for v in node.inputs:
                p = v.producer
                if p is None or p.op == "const":
                    continue
                if p.op == "reshape":
                    root = view_root(v).producer
                    if root is not None and root.op != "const":
                        pairs.append(UnfusedPair(p, node, "reshape is a view: the consumer reads the "
                                                          "producer's memory"))
                    continue
                src = self._source_kernel(v, k)
                if src is None or src is k:
                    continue
                reason = self.reasons.get((id(p), id(node))) or self._why(src, node, k)
                pairs.append(UnfusedPair(p, node, reason))
        return pairs

    def _why(self, src: Kernel, node: Node, k: Kernel) -> str:
        if is_anchor(node.op):
            return f"{node.op} starts its own kernel (its operands come from memory)"
        if not self._loop_op(node):
            return f"{node.op} is not an elementwise op or a reduction over trailing axes"
        for p in src.nodes:
            if (id(p), id(node)) in self.reasons:
                return self.reasons[(id(p), id(node))]
        return f"{src.kind} kernels take no fused ops" if src.kind == "op" else "kept apart"


def is_attention(graph: Graph, scores: Kernel, softmax: Kernel, output: Kernel) -> bool:
    """Whether three kernels are S = Q @ K^T (+ elementwise epilogue), P = softmax(S) over the last axis and
    O = P @ V (+ epilogue), with S, P and everything computed on the way read by nothing else."""
    if scores.kind != "matmul" or softmax.kind != "loop" or output.kind != "matmul" or softmax.reduce_rank != 1:
        return False
    if [n.op for n in softmax.nodes] != SOFTMAX_OPS:
        return False
    mx, sub, exp, total, div = softmax.nodes
    s = scores.nodes[-1].outputs[0]
    if not (mx.inputs[0] is s and sub.inputs[0] is s and sub.inputs[1] is mx.outputs[0] and exp.inputs[0] is
            sub.outputs[0] and total.inputs[0] is exp.outputs[0] and div.inputs[0] is exp.outputs[0]
            and div.inputs[1] is total.outputs[0]):
        return False
    if not all(n.attrs.get("keepdims") for n in (mx, total)) or s.type.rank < 2:
        return False
    p, pv = div.outputs[0], output.nodes[0]
    if pv.inputs[0] is not p or pv.inputs[1] is p or s.dtype not in ATTENTION_DTYPES or p.dtype is not s.dtype:
        return False
    if not _same_shape(s.shape[:-2], pv.outputs[0].shape[:-2]):
        return False  # a block of query rows shares its batch index with the output
    inside = scores.nodes + softmax.nodes
    if not _only_read_by(graph, s, [mx, sub]) or not _only_read_by(graph, p, [pv]):
        return False
    # nothing else the scores kernel or the softmax computes may be needed outside
    return all(_only_read_by(graph, v, inside) for n in scores.nodes + softmax.nodes[:-1] for v in n.outputs)


def _only_read_by(graph: Graph, v: Value, readers: list[Node]) -> bool:
    return all(o is not v for o in graph.outputs) and all(any(u is r for r in readers) for u, _ in v.uses)


def _trailing(node: Node) -> bool:
    rank = node.inputs[0].type.rank
    axes = _reduced_axes(node)
    return bool(axes) and axes == tuple(range(rank - len(axes), rank))


def _same_shape(a, b) -> bool:
    return len(a) == len(b) and all(D.same(x, y) for x, y in zip(a, b))


def _is_row(shape, dom, k: int) -> bool:
    outer = dom[:len(dom) - k]
    return _same_shape(shape, outer) or _row_keepdims(shape, dom, k)


def _row_keepdims(shape, dom, k: int) -> bool:
    return k > 0 and _same_shape(shape, tuple(dom[:len(dom) - k]) + (1,) * k)


def _splits(shape, dom, k: int) -> bool:
    """An operand of `shape` (broadcast to dom) is either whole or constant over dom's last k axes."""
    if k == 0:
        return True
    inner = tuple(shape[max(len(shape) - k, 0):]) if len(shape) >= k else tuple(shape)
    inner = (1,) * (k - len(inner)) + inner
    return all(d == 1 for d in inner) or _same_shape(inner, dom[len(dom) - k:])


def _fmt(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


_PATTERNS = (
    ({"reduce_max", "exp", "reduce_sum", "div"}, "softmax"),
    ({"reduce_mean", "sub", "sqrt"}, "layernorm"),
    ({"reduce_mean", "sub", "rsqrt"}, "layernorm"),
    ({"reduce_mean", "rsqrt", "mul"}, "rmsnorm"),
    ({"erf", "mul", "add"}, "gelu"),
    ({"tanh", "mul", "pow"}, "gelu_tanh"),
)


def kernel_title(k: Kernel) -> str:
    """A short name saying what the kernel computes: matmul_bias_gelu, softmax, layernorm, add_relu..."""
    if k.kind == "attention":
        return "attention"
    ops = [n.op for n in k.nodes]
    loop_ops = set(n.op for n in k.loop_nodes)
    parts = [k.nodes[0].op] if k.kind != "loop" else []
    for pattern, title in _PATTERNS:
        if pattern <= loop_ops:
            parts.append(title)
            loop_ops -= pattern
    rest = [op for op in dict.fromkeys(ops[1:] if k.kind != "loop" else ops) if op in loop_ops]
    parts.extend(rest[:3])
    if len(rest) > 3:
        parts.append("etc")
    return "_".join(parts)[:60] or "kernel"
