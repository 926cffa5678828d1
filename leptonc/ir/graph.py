"""Value, Node and Graph: the SSA graph that every stage reads and edits.

A Graph owns its nodes (in topological order), its constants and the
use-lists of its values. Passes edit it only through the helpers here
(add, insert, replace_all_uses, set_input, erase), which keep the use-lists
right, so no pass maintains them by hand.

The nodes are a doubly linked list with order keys: placing a node before or after another, erasing one,
and asking which of two nodes comes first (`precedes`) take constant time (amortised), whatever the size
of the graph. `graph.nodes` is the list of them in order, rebuilt after an edit when next read. A value's
use-list (Uses) adds and drops a use in constant time too.

A node's `loc` names its source: the torch module path (encoder.layer.0.attention.query) or ONNX node name
it was imported from, or None. It is provenance, not semantics: no pass compares it. A node that a rewrite
adds in place of another (placed before or after it, or taking over its results' uses) takes its loc.
Messages and generated code quote it, so it holds only letters, digits and _.:/@<>[]- and spaces (others
become '_'), at most MAX_LOC characters.
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from .dtypes import DType
from .errors import IRError
from .types import TensorType

_NAME_OK = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*$")
_LOC_BAD = re.compile(r"[^A-Za-z0-9_.:/@<>\[\] -]")
MAX_LOC = 200


def _sanitize(hint: str, fallback: str) -> str:
    """hint made into a name the text form accepts: [A-Za-z_][A-Za-z0-9_.]*."""
    base = re.sub(r"[^A-Za-z0-9_.]", "_", hint).strip("._") or fallback
    return base if _NAME_OK.match(base) else f"{fallback}{base}"


def _fresh(base: str, taken) -> str:
    name, i = base, 1
    while name in taken:
        name = f"{base}_{i}"
        i += 1
    return name


class Uses:
    """The uses of a value: (user node, operand index) pairs, in the order they were made. Adding or removing
    one takes constant time however many there are (a weight or a scalar constant may have thousands);
    iterating, indexing and len read it like a list."""

    __slots__ = ("_by_key",)

    def __init__(self, uses=()):
        self._by_key: dict[tuple[int, int], tuple] = {}
        for use in uses:
            self.append(use)

    def append(self, use: tuple) -> None:
        self._by_key[(id(use[0]), use[1])] = use

    def discard(self, node: "Node", index: int) -> None:
        self._by_key.pop((id(node), index), None)

    def __iter__(self):
        return iter(tuple(self._by_key.values()))  # a snapshot: the loop body may edit the uses

    def __len__(self) -> int:
        return len(self._by_key)

    def __getitem__(self, i):
        return tuple(self._by_key.values())[i]

    def __repr__(self) -> str:
        return f"Uses({list(self._by_key.values())!r})"


class Value:
    """One SSA value: its type, the node that produces it (None for graph inputs) and its uses."""

    __slots__ = ("name", "type", "producer", "uses")

    def __init__(self, name: str, type: TensorType, producer: "Node | None" = None):
        self.name = name
        self.type = type
        self.producer = producer
        self.uses = Uses()  # (user node, operand index) pairs

    @property
    def dtype(self) -> DType:
        return self.type.dtype

    @property
    def shape(self) -> tuple:
        return self.type.shape

    @property
    def users(self) -> list["Node"]:
        seen: list[Node] = []
        for n, _ in self.uses:
            if not any(n is s for s in seen):
                seen.append(n)
        return seen

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type}"


class Node:
    """One op application: op name, operand Values, result Values, attributes (plain data), and its source
    location (see the module docstring)."""

    __slots__ = ("op", "inputs", "outputs", "attrs", "graph", "_loc", "_prev", "_next", "_key")

    def __init__(self, op: str, attrs: dict | None = None, loc: str | None = None):
        self.op = op
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.attrs: dict = dict(attrs or {})
        self.graph: Graph | None = None
        self.loc = loc
        self._prev: Node | None = None
        self._next: Node | None = None
        self._key = 0  # increases along the graph's order

    @property
    def loc(self) -> str | None:
        return self._loc

    @loc.setter
    def loc(self, source: str | None) -> None:
        self._loc = _LOC_BAD.sub("_", source[:MAX_LOC]) if source else None

    @property
    def output(self) -> Value:
        if len(self.outputs) != 1:
            raise IRError(f"{self.label} has {len(self.outputs)} results, not one")
        return self.outputs[0]

    @property
    def statement(self) -> str:
        """Its results and op: %h = matmul."""
        return f"{', '.join(f'%{v.name}' for v in self.outputs) or '(no results)'} = {self.op}"

    @property
    def label(self) -> str:
        """How messages name this node: its results and op, and its source when known, e.g.
        '%h = matmul' (from encoder.fc1)."""
        return f"'{self.statement}'" + (f" (from {self.loc})" if self.loc else "")

    def __repr__(self) -> str:
        return f"<Node {self.label}>"


_GAP = 1 << 20  # between the order keys of neighbours when they are (re)numbered


class Graph:
    """Inputs, outputs, nodes in topological order, and named constants (the weights)."""

    def __init__(self, name: str = "main"):
        self.name = name
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.constants: dict[str, np.ndarray] = {}
        self._names: set[str] = set()
        self._first: Node | None = None
        self._last: Node | None = None
        self._list: list[Node] | None = []  # the nodes in order; None after an edit, until next read
        self._const_refs: dict[str, int] = {}  # constant name -> how many const nodes name it

    # -- the node order --------------------------------------------------
    @property
    def nodes(self) -> list[Node]:
        """The nodes in topological order (a list to read; edit the graph through its methods)."""
        if self._list is None:
            out, n = [], self._first
            while n is not None:
                out.append(n)
                n = n._next
            self._list = out
        return self._list

    @nodes.setter
    def nodes(self, order: Sequence[Node]) -> None:
        """Reorder the graph's nodes (the same nodes, or a subset whose dropped nodes are already unused)."""
        for n in self.nodes:
            n._prev = n._next = None
            n.graph = None
        self._first = self._last = None
        self._const_refs = {}
        for n in list(order):
            self._link(n, None, None)

    def previous(self, node: Node) -> Node | None:
        """The node just before `node` (None for the first)."""
        return node._prev

    def nodes_between(self, start: Node | None, end: Node) -> list[Node]:
        """The nodes after `start` (from the first node if None) and before `end`, in order."""
        out, n = [], (start._next if start is not None else self._first)
        while n is not None and n is not end:
            out.append(n)
            n = n._next
        return out

    def precedes(self, a: Node, b: Node) -> bool:
        """Whether node a comes before node b (both in this graph)."""
        return a._key < b._key

    def _link(self, node: Node, before: Node | None, after: Node | None) -> None:
        if before is not None:
            after = before._prev
        elif after is not None:
            before = after._next
        else:
            after = self._last
        node.graph = self
        node._prev, node._next = after, before
        if after is None:
            self._first = node
        else:
            after._next = node
        if before is None:
            self._last = node
        else:
            before._prev = node
        lo = after._key if after is not None else None
        hi = before._key if before is not None else None
        if lo is None:
            node._key = (hi - _GAP) if hi is not None else 0
        elif hi is None:
            node._key = lo + _GAP
        elif hi - lo > 1:
            node._key = (lo + hi) // 2
        else:
            self._renumber()
        self._list = None
        if node.op == "const":
            cname = node.attrs["name"]
            self._const_refs[cname] = self._const_refs.get(cname, 0) + 1

    def _renumber(self) -> None:
        key, n = 0, self._first
        while n is not None:
            n._key = key
            key += _GAP
            n = n._next

    def _unlink(self, node: Node) -> None:
        if node._prev is None:
            self._first = node._next
        else:
            node._prev._next = node._next
        if node._next is None:
            self._last = node._prev
        else:
            node._next._prev = node._prev
        node._prev = node._next = None
        node.graph = None
        self._list = None

    # -- names -----------------------------------------------------------
    def unique_name(self, hint: str = "v") -> str:
        """A value name not yet used in this graph, made from hint (sanitized)."""
        name = _fresh(_sanitize(hint, "v"), self._names)
        self._names.add(name)
        return name

    # -- building --------------------------------------------------------
    def add_input(self, name: str, type: TensorType) -> Value:
        v = Value(self.unique_name(name), type)
        self.inputs.append(v)
        return v

    def set_outputs(self, values: Sequence[Value]) -> None:
        self.outputs = list(values)

    def add_node(self, op: str, inputs: Sequence[Value], attrs: dict | None = None, *,
                 names: Sequence[str] | None = None, types: Sequence[TensorType] | None = None,
                 before: Node | None = None, after: Node | None = None, loc: str | None = None) -> Node:
        """Create a node and place it (at the end, or before/after an anchor).

        Result types are inferred from the op registry unless `types` is given. The node's source is `loc`,
        else the anchor's (a constant has none).
        """
        from .registry import get_op

        opdef = get_op(op)
        anchor = before if before is not None else after
        if loc is None and anchor is not None and op != "const":
            loc = anchor.loc
        node = Node(op, opdef.normalize_attrs(attrs or {}, op), loc)
        if types is None:
            types = opdef.infer([v.type for v in inputs], node.attrs, where=f"op '{op}'")
        names = list(names) if names is not None else [op] * len(types)
        if len(names) != len(types):
            raise IRError(f"op '{op}' makes {len(types)} results but {len(names)} names were given")
        for i, v in enumerate(inputs):
            self._attach(node, i, v)
            node.inputs.append(v)
        node.outputs = [Value(self.unique_name(n), t, node) for n, t in zip(names, types)]
        self._place(node, before, after)
        return node

    def add(self, op: str, *inputs: Value, name: str | None = None, before: Node | None = None,
            after: Node | None = None, loc: str | None = None, **attrs) -> Value:
        """Add a one-result node and return its result: g.add("matmul", x, w)."""
        return self.add_node(op, inputs, attrs, names=[name or op], before=before, after=after, loc=loc).output

    def add_constant(self, array, name: str | None = None, *, before: Node | None = None,
                     after: Node | None = None) -> Value:
        """Store an array as a named constant and return the value of its `const` node."""
        arr = np.asarray(array)
        DType.from_numpy(arr.dtype)  # rejects dtypes the IR has no name for
        cname = _fresh(_sanitize(name or "c", "c"), self.constants)
        self.constants[cname] = arr
        node = self.add_node("const", [], {"name": cname},
                             types=[TensorType(DType.from_numpy(arr.dtype), arr.shape)],
                             names=[cname], before=before, after=after)
        return node.output

    def _attach(self, node: Node, index: int, v: Value) -> None:
        if not isinstance(v, Value):
            raise IRError(f"operand {index} of op '{node.op}' is {type(v).__name__}, not a Value")
        v.uses.append((node, index))

    def _place(self, node: Node, before: Node | None, after: Node | None) -> None:
        for anchor in (before, after):
            if anchor is not None and anchor.graph is not self:
                raise IRError(f"{anchor.label} is not in graph @{self.name}")
        self._link(node, before, after)

    def index(self, node: Node) -> int:
        """The position of node in `nodes` (linear time after an edit; `precedes` compares in constant time)."""
        if node.graph is not self:
            raise IRError(f"{node.label} is not in graph @{self.name}")
        return self.nodes.index(node)

    def move_before(self, node: Node, anchor: Node) -> None:
        """Move a node of this graph to just before another (its operands must still come first)."""
        if node is anchor:
            return
        self._unlink(node)
        if node.op == "const":
            self._const_refs[node.attrs["name"]] -= 1
        self._link(node, anchor, None)

    # -- editing ---------------------------------------------------------
    def set_input(self, node: Node, index: int, value: Value) -> None:
        """Make operand `index` of `node` be `value`."""
        node.inputs[index].uses.discard(node, index)
        self._attach(node, index, value)
        node.inputs[index] = value

    def replace_all_uses(self, old: Value, new: Value) -> None:
        """Every use of `old` (graph outputs included) becomes a use of `new`; new's producer takes old's
        source if it has none."""
        if old is new:
            return
        src, dst = old.producer, new.producer
        if src is not None and dst is not None and dst.loc is None and dst.op != "const":
            dst.loc = src.loc
        for node, i in list(old.uses):
            node.inputs[i] = new
            new.uses.append((node, i))
        old.uses = Uses()
        self.outputs = [new if o is old else o for o in self.outputs]

    def erase(self, node: Node) -> None:
        """Remove a node whose results are unused; drop its constant if nothing else names it."""
        for v in node.outputs:
            if v.uses or any(o is v for o in self.outputs):
                raise IRError(f"cannot erase {node.label}: %{v.name} is still used")
        if node.graph is not self:
            raise IRError(f"{node.label} is not in graph @{self.name}")
        for i, v in enumerate(node.inputs):
            v.uses.discard(node, i)
        self._unlink(node)
        if node.op == "const":
            cname = node.attrs["name"]
            self._const_refs[cname] -= 1
            if not self._const_refs[cname]:
                del self._const_refs[cname]
                self.constants.pop(cname, None)

    # -- queries ---------------------------------------------------------
    def constant_of(self, v: Value) -> np.ndarray | None:
        """The array behind a value produced by a `const` node, else None."""
        p = v.producer
        if p is not None and p.op == "const":
            return self.constants[p.attrs["name"]]
        return None

    def values(self) -> list[Value]:
        out = list(self.inputs)
        for n in self.nodes:
            out.extend(n.outputs)
        return out

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for n in self.nodes:
            counts[n.op] = counts.get(n.op, 0) + 1
        return counts

    def copy(self) -> "Graph":
        """A deep copy of the structure; constant arrays are shared (treat them as immutable)."""
        g = Graph(self.name)
        g.constants = dict(self.constants)
        g._names = set(self._names)
        vmap: dict[int, Value] = {}
        order = []
        for v in self.inputs:
            nv = Value(v.name, v.type)
            g.inputs.append(nv)
            vmap[id(v)] = nv
        for n in self.nodes:
            nn = Node(n.op, n.attrs, n.loc)
            for i, v in enumerate(n.inputs):
                nv = vmap[id(v)]
                nv.uses.append((nn, i))
                nn.inputs.append(nv)
            nn.outputs = [Value(v.name, v.type, nn) for v in n.outputs]
            for v, nv in zip(n.outputs, nn.outputs):
                vmap[id(v)] = nv
            order.append(nn)
        g.nodes = order
        g.outputs = [vmap[id(v)] for v in self.outputs]
        return g

    def __str__(self) -> str:
        from .printer import print_ir

        return print_ir(self)
