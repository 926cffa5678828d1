"""Running a graph whose sizes or axes arrive at run time: specialized on their values, guarded, cached.

The cpu and triton targets plan every buffer before run time, so a dynamic op
(reshape_dynamic, reduce_dynamic, range_dynamic, ...) whose shape-like operands
(ir/ops/dynamic.py's SHAPE_OPERANDS) are not constants cannot be compiled as it
is. As XLA and torch.compile do, the model keeps the graph and, on each call,
reads those operands: graph inputs directly, or computed from the inputs'
values and sizes by a small subgraph of small tensors (`ShapeProbe`), evaluated
with the ops' reference implementations under a size bound. Their values (and
the input sizes, when the probe reads sizes) are the guard: the key of a
program built for exactly those values, the values substituted as constants so
that fold turns each dynamic op into its static twin. Programs are kept in a
bounded LRU cache (`SpecializationCache`).

Building a program is code generation, which the runtime does not import: a
model is given its `build` function (leptonc/specialize.py's), called as
build(graph, values by operand name, bindings or None) and returning the
compiled model of one specialization.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable

import numpy as np

from ..ir import dims as D
from ..ir.size_checks import size_checks
from ..ir.errors import LeptoncError, ShapeError
from ..ir.graph import Graph, Node, Value
from ..ir.ops.dynamic import SHAPE_OPERANDS
from ..ir.registry import get_op
from .artifact import Artifact
from .compiled import ArtifactModel
from .signature import bind_inputs

MAX_ELEMENTS = 4096  # the most elements of any value the probe computes: sizes and axes, never data
CAPACITY = 8         # specializations kept per model (on cpu they share the laid-out weights)
MAX_SIZES_KEPT = 256  # readings kept of a probe that reads sizes only
# the dynamic ops a probe may run: no larger than their data operand, or (range_dynamic) checked before it runs
BOUNDED = {"reshape_dynamic", "squeeze_dynamic", "unsqueeze_dynamic", "slice_dynamic", "split_dynamic",
           "reduce_dynamic", "cumulative_dynamic", "topk_dynamic", "range_dynamic"}


def dynamic_nodes(graph: Graph) -> list[Node]:
    """The graph's dynamic ops (those with shape-like tensor operands)."""
    return [n for n in graph.nodes if n.op in SHAPE_OPERANDS]


class ShapeProbe:
    """The non-constant shape-like operands of a graph's dynamic ops, and the nodes that compute them from the
    graph inputs' values and sizes. Building it refuses, naming the dynamic node and its operand, any operand
    computed from data (through a value larger than MAX_ELEMENTS, or an impure op)."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.values: list[Value] = []  # the probed operands, by first use
        self.reads_sizes = False       # whether the key holds the input sizes
        self.reads_values = False      # whether an operand depends on the values of graph inputs
        self.inputs_read: list[Value] = []  # the graph inputs whose values it reads
        needed: set[int] = set()
        for node in dynamic_nodes(graph):
            if any(self._has_symbolic_type(v) for v in [node.inputs[0], *node.outputs]):
                self.reads_sizes = True  # its static form may need the sizes bound (a reshape of [B, S])
            for i in SHAPE_OPERANDS[node.op]:
                if i < len(node.inputs) and graph.constant_of(node.inputs[i]) is None:
                    self._add(node.inputs[i], node, i, needed)
        self.nodes = [n for n in graph.nodes if id(n) in needed]
        self._by_sizes: dict[tuple, tuple] = {}  # when only sizes are read: their reading, by sizes
        self.reads_sizes = self.reads_sizes and any(
            not isinstance(d, int) for v in graph.inputs for d in v.shape)

    @staticmethod
    def _has_symbolic_type(v: Value) -> bool:
        return any(not isinstance(d, int) and d != D.UNKNOWN for d in v.shape)

    def _add(self, value: Value, user: Node, index: int, needed: set) -> None:
        """Probe `value` (operand `index` of `user`): read it, marking the nodes computing it. When it reads the
        size of a value that only the dynamic ops' specializations size (a "?" dim), the graph inputs it reads are
        probed instead: with those and the input sizes fixed, fold computes it once the graph is specialized."""
        nodes, inputs, later = self._trace(value, user, index)
        self.inputs_read += [v for v in inputs if all(v is not w for w in self.inputs_read)]
        if later:
            self.reads_sizes = True
            for v in inputs:
                self._probe(v)
        else:
            needed |= nodes
            self._probe(value)

    def _probe(self, v: Value) -> None:
        if all(v is not w for w in self.values):
            self.values.append(v)

    def _trace(self, value: Value, user: Node, index: int) -> tuple[set[int], list[Value], bool]:
        """(the nodes computing `value`, the graph inputs it reads, whether it reads a size known only once the
        graph is specialized), refusing data on the way."""
        def refuse(why: str):
            return LeptoncError(f"{user.label}: operand {index} (%{value.name}) {why}; a target that plans sizes "
                                f"before run time specializes only on sizes and axes computed from small tensors")

        nodes: set[int] = set()
        inputs: list[Value] = []
        later = False
        stack = [value]
        while stack:
            v = stack.pop()
            node = v.producer
            if node is not None and id(node) in nodes or any(v is w for w in inputs):
                continue
            too_big = v.type.is_static and v.type.numel > MAX_ELEMENTS
            if node is None:
                if too_big or not (v.type.is_static or v.dtype.is_int):
                    raise refuse(f"reads graph input %{v.name} ({v.type}), which is data, not a size")
                self.reads_values = True
                inputs.append(v)
                continue
            nodes.add(id(node))
            if node.op == "const":
                continue
            if node.op == "shape_of":
                dims = node.inputs[0].shape[slice(node.attrs["start"], node.attrs["end"])]
                later |= D.UNKNOWN in dims
                self.reads_sizes |= any(not isinstance(d, int) for d in dims)
                continue
            if not get_op(node.op).has("pure") or too_big:
                raise refuse(f"is computed by {node.label} from data, not from sizes")
            if node.op in SHAPE_OPERANDS and node.op not in BOUNDED:
                raise refuse(f"is computed by {node.label}, whose size is known only once it runs")
            stack.extend(node.inputs)
        return nodes, inputs, later

    def read(self, inputs: list[np.ndarray], bindings: dict[str, int]) -> tuple[tuple, dict[str, np.ndarray]]:
        """(the key of the specialization these inputs need, the probed operands' values by name)."""
        if self.reads_values:
            return self._read(inputs, bindings)
        sizes = tuple(sorted(bindings.items()))  # the values are a function of the sizes: read once per size
        reading = self._by_sizes.get(sizes)
        if reading is None:
            if len(self._by_sizes) >= MAX_SIZES_KEPT:
                self._by_sizes.clear()
            reading = self._by_sizes[sizes] = self._read(inputs, bindings)
        return reading

    def _read(self, inputs: list[np.ndarray], bindings: dict[str, int]) -> tuple[tuple, dict[str, np.ndarray]]:
        env: dict[int, np.ndarray] = {id(v): a for v, a in zip(self.graph.inputs, inputs)}
        for v in self.inputs_read:
            if env[id(v)].size > MAX_ELEMENTS:
                raise ShapeError(f"input '{v.name}' has {env[id(v)].size} elements, more than the {MAX_ELEMENTS} "
                                 f"that sizes and axes computed from it may hold")
        for node in self.nodes:
            env.update(zip((id(v) for v in node.outputs), self._evaluate(node, env, bindings)))
        values = {v.name: env[id(v)] for v in self.values}
        sizes = tuple(sorted(bindings.items())) if self.reads_sizes else ()
        key = sizes + tuple((a.dtype.str, a.shape, a.tobytes()) for a in values.values())
        return key, values

    def _evaluate(self, node: Node, env: dict, bindings: dict[str, int]) -> tuple:
        if node.op == "const":
            return (self.graph.constants[node.attrs["name"]],)
        if node.op == "shape_of":
            x = node.inputs[0]
            shape = env[id(x)].shape if id(x) in env else x.type.concrete(bindings)
            return (np.array(shape[slice(node.attrs["start"], node.attrs["end"])], np.int64),)
        opdef = get_op(node.op)
        args = [env[id(v)] for v in node.inputs]
        if node.op == "range_dynamic":
            _check_range(node, *args)
        try:
            with np.errstate(all="ignore"):
                out = opdef.reference(*args, **opdef.resolve_shape_attrs(node.attrs, bindings, node.label))
        except LeptoncError:
            raise
        except Exception as e:  # noqa: BLE001  what the reference refuses, named
            raise ShapeError(f"{node.label} failed on the sizes it computes: {type(e).__name__}: {e}") from None
        results = tuple(np.asarray(r) for r in (out if isinstance(out, tuple) else (out,)))
        for v, r in zip(node.outputs, results):
            if r.size > MAX_ELEMENTS:
                raise ShapeError(f"{node.label}: %{v.name} has {r.size} elements, more than the {MAX_ELEMENTS} "
                                 f"a size or axis computation may hold")
        return results


def _check_range(node: Node, start, limit, delta) -> None:
    """A ShapeError when range_dynamic would make more than MAX_ELEMENTS values (before it makes them)."""
    s, n, d = (float(np.asarray(a).reshape(-1)[0]) for a in (start, limit, delta))
    count = (n - s) / d if d else float("inf")
    if not count <= MAX_ELEMENTS:
        raise ShapeError(f"{node.label}: range({s:g}, {n:g}, {d:g}) would make more than the {MAX_ELEMENTS} "
                         f"values a size or axis computation may hold")


class SpecializationCache:
    """Models by key, the least recently used dropped beyond `capacity`. A key missing is built once, by the
    first caller (the others asking for it wait for that build); callers of cached keys never wait on a build."""

    def __init__(self, capacity: int = CAPACITY):
        self.capacity = capacity
        self._models: OrderedDict[tuple, ArtifactModel] = OrderedDict()
        self._building: dict[tuple, _Build] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple, build: Callable[[], ArtifactModel]) -> ArtifactModel:
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
                return model
            pending = self._building.get(key)
            owner = pending is None
            if owner:
                pending = self._building[key] = _Build()
        if not owner:
            return pending.wait()
        try:
            model = build()
        except BaseException as e:
            with self._lock:
                del self._building[key]
            pending.finish(None, e)
            raise
        with self._lock:
            del self._building[key]
            self._models[key] = model
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)
        pending.finish(model, None)
        return model

    def __len__(self) -> int:
        return len(self._models)

    def models(self) -> list[ArtifactModel]:
        with self._lock:
            return list(self._models.values())


class _Build:
    """One build in progress: those asking for the same key wait for its model (or its error)."""

    def __init__(self):
        self._done = threading.Event()
        self._model: ArtifactModel | None = None
        self._error: BaseException | None = None

    def finish(self, model, error) -> None:
        self._model, self._error = model, error
        self._done.set()

    def wait(self) -> ArtifactModel:
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._model


class SpecializingModel(ArtifactModel):
    """A compiled model of a graph with dynamic ops: on each call the shape-like operands are read and the
    program built for their values runs (built on first use of those values, see the module docstring).
    `specialize(*inputs)` builds ahead of time; any number of threads may call it."""

    def __init__(self, artifact: Artifact, graph: Graph, build: Callable, capacity: int = CAPACITY):
        super().__init__(artifact)
        self.graph = graph
        self.probe = ShapeProbe(graph)
        self._build = build
        self._names = [v.name for v in graph.inputs]
        self._types = [v.type for v in graph.inputs]
        self._signed = size_checks(graph)
        self.cache = SpecializationCache(capacity)

    def specialize(self, *inputs) -> ArtifactModel:
        """The compiled model of the specialization these inputs need (built now if it is new). Without
        inputs, that of a graph whose probe reads nothing (one program serves every call)."""
        if not inputs and not self.probe.values and not self.probe.reads_sizes:
            return self.cache.get((), lambda: self._build(self.graph, {}, None))
        return self._model_for(*self._bind(inputs))

    def _bind(self, inputs) -> tuple[list[np.ndarray], dict[str, int]]:
        return bind_inputs(self._names, self._types, inputs, self._signed)

    def _model_for(self, arrays, bindings) -> ArtifactModel:
        key, values = self.probe.read(arrays, bindings)
        sizes = bindings if self.probe.reads_sizes else None
        return self.cache.get(key, lambda: self._build(self.graph, values, sizes))

    def run(self, *inputs) -> list[np.ndarray]:
        arrays, bindings = self._bind(inputs)
        return self._model_for(arrays, bindings).run(*arrays)

    def profile(self, *inputs, repeat: int = 10) -> list[tuple[str, float]]:
        """The profile of the specialization these inputs run."""
        return self.specialize(*inputs).profile(*inputs, repeat=repeat)

    @property
    def kernel_names(self) -> list[str]:
        """The kernels of the most recently built specialization ([] before the first)."""
        models = self.cache.models()
        return list(getattr(models[-1], "kernel_names", [])) if models else []

    def __repr__(self) -> str:
        ins = ", ".join(f"{v.name}: {v.type}" for v in self.graph.inputs)
        return (f"<SpecializingModel target={self.manifest['target']} ({ins}) on "
                f"{', '.join('%' + v.name for v in self.probe.values) or 'the input sizes'}, "
                f"{len(self.cache)} specialization(s) built>")
