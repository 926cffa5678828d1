"""Pattern rewriting: patterns rooted at an op or a trait, applied by a worklist driver; and the editing
helpers the rewriting passes share (replace a result, refine types after a rewrite).

A pattern is a function `rewrite(graph, node)` that returns the value(s) replacing the node's result(s)
(a list, one per result, for a multi-result op; new nodes it needs placed before the node; a result
itself where it stays, or for all of them when the pattern changed the node in place), or None when it
does not apply. A PatternSet holds the patterns of one pass, each rooted at ops by name, by trait or
by fusion kind:

    CANONICAL = pattern_set("canonicalize")

    @CANONICAL.pattern("neg", "not")
    def involution(graph, node): ...

    @CANONICAL.pattern(trait="elementwise")
    def ...

`PatternSet.apply(graph)` visits every node once, then again each node a rewrite may have given a new
match (the users of a replaced value, the nodes a rewrite added, the producers of erased nodes' operands),
until no pattern applies: the fixed point, reached without rescanning the graph. Graph edits cost constant
time (ir/graph.py), so a pass costs one visit per node plus one per rewrite and what it queues. A plugin adds patterns to a built-in
pass by name: `pattern_set("canonicalize").pattern("my_op")(fn)`, at import (see passes/plugins.py).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable

from ..ir import dims as D
from ..ir.errors import LeptoncError
from ..ir.graph import Graph, Node, Value
from ..ir.registry import get_op

Rewrite = Callable[[Graph, Node], "Value | list[Value] | None"]


@dataclass(frozen=True)
class Pattern:
    """A rewrite rooted at the ops named, or at every op with the trait or fusion kind given."""

    name: str
    rewrite: Rewrite
    ops: tuple = ()
    trait: str | None = None
    fusion: str | None = None

    def roots_at(self, op: str) -> bool:
        if op in self.ops:
            return True
        opdef = get_op(op)
        return (self.trait is not None and opdef.has(self.trait)) or \
            (self.fusion is not None and opdef.fusion == self.fusion)


class PatternSet:
    """The patterns of one pass, tried in the order they were added."""

    def __init__(self, name: str):
        self.name = name
        self.patterns: list[Pattern] = []
        self._by_op: dict[str, list[Pattern]] = {}

    def pattern(self, *ops: str, trait: str | None = None, fusion: str | None = None,
                name: str | None = None) -> Callable[[Rewrite], Rewrite]:
        """Add the decorated rewrite, rooted at `ops`, or at every op with `trait` or `fusion` kind."""
        if not ops and trait is None and fusion is None:
            raise ValueError(f"pattern set '{self.name}': a pattern needs ops, a trait or a fusion kind")

        def register(fn: Rewrite) -> Rewrite:
            self.add(Pattern(name or fn.__name__.strip("_"), fn, tuple(ops), trait, fusion))
            return fn
        return register

    def add(self, pattern: Pattern) -> None:
        self.patterns.append(pattern)
        self._by_op.clear()

    def remove(self, name: str) -> None:
        """Drop the patterns of that name (a plugin unloading, a test cleaning up)."""
        self.patterns = [p for p in self.patterns if p.name != name]
        self._by_op.clear()

    def include(self, other: "PatternSet", *names: str) -> None:
        """Add the named patterns of another set (all of them if none is named)."""
        missing = set(names) - {p.name for p in other.patterns}
        if missing:
            raise ValueError(f"pattern set '{other.name}' has no pattern {sorted(missing)}")
        for p in other.patterns:
            if not names or p.name in names:
                self.add(p)

    def for_op(self, op: str) -> list[Pattern]:
        found = self._by_op.get(op)
        if found is None:
            found = self._by_op[op] = [p for p in self.patterns if p.roots_at(op)]
        return found

    def apply(self, graph: Graph, *, max_rewrites: int | None = None) -> bool:
        """Rewrite the graph until no pattern applies; whether anything changed. More than `max_rewrites`
        rewrites (by default 10 per node, at least 1000) means two patterns undo each other: an error."""
        limit = max_rewrites if max_rewrites is not None else max(1000, 10 * len(graph.nodes))
        work = _Worklist(graph.nodes)
        rewrites = 0
        while work:
            node = work.pop()
            if node.graph is not graph:
                continue
            for p in self.for_op(node.op):
                mark = graph.previous(node)
                new = p.rewrite(graph, node)
                if new is None:
                    continue
                rewrites += 1
                if rewrites > limit:
                    raise LeptoncError(f"{self.name}: no fixed point after {limit} rewrites (the last by "
                                       f"pattern '{p.name}' on {node.label}): patterns undo each other")
                _replace_node(graph, node, new if isinstance(new, list) else [new], mark, work)
                break
        return rewrites > 0


class _Worklist:
    """Nodes to visit, first in, first out, each at most once at a time."""

    def __init__(self, nodes):
        self.queue = deque(nodes)
        self.queued = {id(n) for n in self.queue}

    def push(self, node: Node | None) -> None:
        if node is not None and id(node) not in self.queued:
            self.queued.add(id(node))
            self.queue.append(node)

    def pop(self) -> Node:
        node = self.queue.popleft()
        self.queued.discard(id(node))
        return node

    def __bool__(self) -> bool:
        return bool(self.queue)


def _replace_node(graph: Graph, node: Node, new: list[Value], mark: Node | None, work: _Worklist) -> None:
    """Replace node's results by `new`, erase what is left dead, and queue the nodes that may match now."""
    added = graph.nodes_between(mark, node)  # the nodes the rewrite placed before `node`
    operands = [v.producer for v in node.inputs]
    pairs = list(zip(node.outputs, new))
    if all(value is old for old, value in pairs):  # changed in place (types refined): it and its users
        work.push(node)                                # may match now
        for old, _ in pairs:
            for user, _ in old.uses:
                work.push(user)
        return
    for old, value in pairs:
        for user, _ in old.uses:
            work.push(user)
        graph.replace_all_uses(old, value)
        work.push(value.producer)
    if node.graph is graph and not any(v.uses or any(v is o for o in graph.outputs) for v in node.outputs):
        graph.erase(node)  # an op that is not pure (dropout) goes too: its results are replaced
        for old, value in pairs:
            adopt_name(old, value)
    for p in operands:
        if p is not None and p.graph is graph:
            erase_dead(graph, p)
    for n in added:
        work.push(n)
    for p in operands:
        if p is not None and p.graph is graph:
            work.push(p)  # it lost a user: a pattern that needs a single use may apply now


_SETS: dict[str, PatternSet] = {}


def pattern_set(name: str) -> PatternSet:
    """The pattern set of the pass `name` (made on first use)."""
    if name not in _SETS:
        _SETS[name] = PatternSet(name)
    return _SETS[name]


def replace_result(graph: Graph, old: Value, new: Value) -> None:
    """Every use of `old` becomes a use of `new`; old's node is erased once none of its results is used,
    and so are the producers of its operands that it was the last user of.

    A replacement built for the purpose, named after the old value (`%y_1` for
    `%y`), takes the old name once the old value has left the graph, so that
    dumps keep the names a reader knows.
    """
    graph.replace_all_uses(old, new)
    node = old.producer
    if node is not None and node.graph is graph and is_dead(graph, node):
        erase_dead(graph, node)
        adopt_name(old, new)


def adopt_name(old: Value, new: Value) -> None:
    """Give `new` the name of `old` (gone from the graph) when new was named after it (`%y_1` for `%y`)."""
    if new.producer is not None and new.name.startswith(old.name + "_"):
        new.name = old.name


def erase_dead(graph: Graph, node: Node) -> None:
    """Erase a dead node, then each operand producer that is left dead by it."""
    work = [node]
    while work:
        n = work.pop()
        if n.graph is not graph or not is_dead(graph, n):
            continue
        producers = [v.producer for v in n.inputs if v.producer is not None]
        graph.erase(n)
        work.extend(producers)


def is_dead(graph: Graph, node: Node) -> bool:
    """A pure node none of whose results is used or a graph output."""
    outputs = {id(v) for v in graph.outputs}
    return get_op(node.op).has("pure") and not any(v.uses or id(v) in outputs for v in node.outputs)


def refine_node_types(node: Node) -> bool:
    """Re-infer the node's result types and fill in dims that were unknown ("?") but now are known.

    Needed after a rewrite makes an operand's shape more precise (a shape
    computation folded to a constant): the users' results learn their sizes.
    """
    if node.op == "const":
        return False
    try:
        inferred = get_op(node.op).infer([v.type for v in node.inputs], node.attrs, node.label)
    except LeptoncError:
        return False  # left for the verifier to report
    changed = False
    for v, t in zip(node.outputs, inferred):
        if v.type.rank != t.rank or v.dtype != t.dtype:
            continue
        shape = tuple(b if a == D.UNKNOWN else a for a, b in zip(v.shape, t.shape))
        if shape != v.shape:
            v.type = v.type.with_shape(shape)
            changed = True
    return changed
