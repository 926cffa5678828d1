"""Value, Node and Graph: the SSA graph that every stage reads and edits.

A Graph owns its nodes (in topological order), its constants and the
use-lists of its values. Passes edit it only through the helpers here
(add, insert, replace_all_uses, set_input, erase), which keep the use-lists
right, so no pass maintains them by hand.

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


class Value:
    """One SSA value: its type, the node that produces it (None for graph inputs) and its uses."""

    __slots__ = ("name", "type", "producer", "uses")

    def __init__(self, name: str, type: TensorType, producer: "Node | None" = None):
        self.name = name
        self.type = type
        self.producer = producer
        self.uses: list[tuple[Node, int]] = []  # (user node, operand index)

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

    __slots__ = ("op", "inputs", "outputs", "attrs", "graph", "_loc")

    def __init__(self, op: str, attrs: dict | None = None, loc: str | None = None):
        self.op = op
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.attrs: dict = dict(attrs or {})
        self.graph: Graph | None = None
        self.loc = loc

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


class Graph:
    """Inputs, outputs, nodes in topological order, and named constants (the weights)."""

    def __init__(self, name: str = "main"):
        self.name = name
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.nodes: list[Node] = []
        self.constants: dict[str, np.ndarray] = {}
        self._names: set[str] = set()

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
        node.graph = self
        if before is not None:
            self.nodes.insert(self.index(before), node)
        elif after is not None:
            self.nodes.insert(self.index(after) + 1, node)
        else:
            self.nodes.append(node)

    def index(self, node: Node) -> int:
        for i, n in enumerate(self.nodes):
            if n is node:
                return i
        raise IRError(f"{node.label} is not in graph @{self.name}")

    # -- editing ---------------------------------------------------------
    def set_input(self, node: Node, index: int, value: Value) -> None:
        """Make operand `index` of `node` be `value`."""
        old = node.inputs[index]
        old.uses = [(n, i) for n, i in old.uses if not (n is node and i == index)]
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
        old.uses = []
        self.outputs = [new if o is old else o for o in self.outputs]

    def erase(self, node: Node) -> None:
        """Remove a node whose results are unused; drop its constant if nothing else names it."""
        for v in node.outputs:
            if v.uses or any(o is v for o in self.outputs):
                raise IRError(f"cannot erase {node.label}: %{v.name} is still used")
        for i, v in enumerate(node.inputs):
            v.uses = [(n, j) for n, j in v.uses if not (n is node and j == i)]
        self.nodes.pop(self.index(node))
        node.graph = None
        if node.op == "const":
            cname = node.attrs["name"]
            if not any(n.op == "const" and n.attrs["name"] == cname for n in self.nodes):
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
        for v in self.inputs:
            nv = Value(v.name, v.type)
            g.inputs.append(nv)
            vmap[id(v)] = nv
        for n in self.nodes:
            nn = Node(n.op, n.attrs, n.loc)
            nn.graph = g
            for i, v in enumerate(n.inputs):
                nv = vmap[id(v)]
                nv.uses.append((nn, i))
                nn.inputs.append(nv)
            nn.outputs = [Value(v.name, v.type, nn) for v in n.outputs]
            for v, nv in zip(n.outputs, nn.outputs):
                vmap[id(v)] = nv
            g.nodes.append(nn)
        g.outputs = [vmap[id(v)] for v in self.outputs]
        return g

    def __str__(self) -> str:
        from .printer import print_ir

        return print_ir(self)
