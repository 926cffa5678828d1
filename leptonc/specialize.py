"""Compiling a graph with dynamic ops for a target that plans sizes before run time: the specializing model
(runtime/specialized.py) wired to this package's passes and code generators.

    cm = specializing_model(graph, "cpu", pipeline, example_inputs)   # at compile time (api.py)
    cm = loaded_model(artifact, graph)                                 # at load time (loader.py)

Each specialization is the graph with the probed shape-like operands replaced by their values (and, when
the probe reads sizes, the input sizes bound), cleaned up by the default pipeline (fold turns each dynamic op
into its static twin, passes/static_forms.py), then lowered as any graph of the target. Values that no static
form accepts are a LeptoncError naming the node and the operand.

The artifact of a specializing model holds its graph and weights, no program: every specialization, also
after loading, is generated from that IR and built here (so the library that runs is always built locally).
"""
from __future__ import annotations

import threading

import numpy as np

from .ir import dims as D
from .ir.errors import LeptoncError
from .ir.graph import Graph
from .ir.ops.dynamic import SHAPE_OPERANDS, STATIC_OPS
from .ir.printer import print_ir
from .ir.registry import get_op
from .ir.target_support import LACKS
from .runtime.artifact import Artifact
from .runtime.specialized import ShapeProbe, SpecializingModel, dynamic_nodes


def needs_specializing(graph: Graph, target: str) -> bool:
    """Whether `graph` (after cleanup and the user's passes) compiles for `target` as a specializing model:
    it has dynamic ops left (the stablehlo target specializes to sizes on its own, so for it: dynamic ops
    whose operands read the values of graph inputs)."""
    if target != "stablehlo":
        return bool(dynamic_nodes(graph))
    try:
        return bool(dynamic_nodes(graph)) and ShapeProbe(graph).reads_values
    except LeptoncError:
        return False  # the emitter's own refusal says what it lacks


def specializing_model(graph: Graph, target: str, pipeline: list[str], example_inputs=None, *,
                       cache: bool = True, leptonc_version: str = "") -> SpecializingModel:
    """The specializing model of `graph` (after cleanup and the user's passes) for `target`; the example
    inputs' specialization is built now. Refuses, naming the node, a dynamic op the target cannot specialize
    (its static twin is an op the target lacks, or an operand is computed from data)."""
    _check_static_twins(graph, target)
    art = Artifact(_manifest(graph, target, pipeline, leptonc_version), print_ir(graph), b"", "", b"",
                   weights=dict(graph.constants))
    cm = SpecializingModel(art, graph, builder(target, pipeline, cache))
    if example_inputs is not None:
        cm.specialize(*_numpy_inputs(example_inputs))
    elif not cm.probe.values and not cm.probe.reads_sizes:
        cm.specialize()  # one program whatever the inputs: its errors are compile-time errors
    return cm


def loaded_model(artifact: Artifact, graph: Graph) -> SpecializingModel:
    """The specializing model of a loaded artifact (its specializations built here from its IR)."""
    m = artifact.manifest
    target = m["target"]
    _check_static_twins(graph, target)
    derived = _manifest(graph, target, [m["pipeline"]], m["leptonc_version"])  # what the IR says, not the file
    artifact.manifest = dict(m, signature=derived["signature"], specialized_on=derived["specialized_on"])
    return SpecializingModel(artifact, graph, builder(target, [m["pipeline"]], True))


def builder(target: str, pipeline: list[str], cache: bool = True):
    """build(graph, values, bindings) -> the compiled model of one specialization for `target` (always of
    the same graph: the specializations of one model share their weights, SharedWeights)."""
    weights: list[SharedWeights] = []

    def build(graph: Graph, values: dict[str, np.ndarray], bindings: dict[str, int] | None):
        if not weights:
            weights.append(SharedWeights(graph.constants))
        special = specialized_graph(graph, values, bindings)
        return _lower(special, target, pipeline, cache, bindings, weights[0])
    return build


class SharedWeights:
    """One placed copy of each laid-out weight of a model, read by the programs of all its specializations.

    A weight is shared when the specialized graph's constant that it lays out is the model's own (the same
    array: a specialization copies the graph, not its weights) and its layout is a function of that constant
    alone (codegen/cpu/layout.py). Constants a specialization computes (folded from its values) are not.
    `store(graph, name)` is compile_cpu's `shared_weights`: the placed weight, or None to lay it out itself.
    """

    def __init__(self, constants: dict[str, np.ndarray]):
        from .runtime.memory import HugePageArena

        self._model = dict(constants)
        self._arena = HugePageArena(4 * sum(a.nbytes for a in constants.values()) + (64 << 20))  # address space
        self._placed: dict[str, np.ndarray] = {}
        self._locks: dict[str, threading.Lock] = {}  # by weight: two builds at once lay it out once
        self._lock = threading.Lock()

    def __call__(self, graph: Graph, name: str) -> np.ndarray | None:
        from .codegen.cpu.layout import laid_out_weight, source_constant
        from .ir.packing import is_i4

        source = source_constant(name)
        if source not in self._model or graph.constants.get(source) is not self._model[source]:
            return None
        with self._lock:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            if name not in self._placed:
                w = laid_out_weight(graph, name)
                self._placed[name] = w if is_i4(w) else self._arena.place(w)
            return self._placed[name]


def specialized_graph(graph: Graph, values: dict[str, np.ndarray], bindings: dict[str, int] | None) -> Graph:
    """`graph` with the named values replaced by constants (and the input sizes bound, when given), cleaned
    up so that every dynamic op is static; a LeptoncError naming the node and operand it cannot make static."""
    from .api import CLEANUP_PIPELINE
    from .passes import run_pipeline

    g = graph.copy()
    named = {v.name: v for v in g.values()}
    if bindings:
        for v in g.inputs:
            v.type = v.type.with_shape(v.type.concrete(bindings))
    first = g.nodes[0] if g.nodes else None
    for name, array in values.items():
        g.replace_all_uses(named[name], g.add_constant(array, f"{name}_value", before=first))
    _retype(g, bindings or {})
    g = run_pipeline(g, CLEANUP_PIPELINE, inplace=True)
    left = dynamic_nodes(g)
    if left:
        from .passes.static_forms import refusal

        node = left[0]
        before = next((n for n in graph.nodes if n.outputs[0].name == node.outputs[0].name), None)
        raise LeptoncError(refusal(g, node, [v.name for v in before.inputs] if before is not None else None))
    return g


def _retype(graph: Graph, bindings: dict[str, int]) -> None:
    """Infer every node's result types again from its operands' (now more precise) types and its attributes
    at the bound sizes, keeping a size the old type knew and the new one does not (range_dynamic's [S], say)."""
    for node in graph.nodes:
        if node.op == "const":
            continue
        opdef = get_op(node.op)
        if bindings:  # symbolic shape attributes (a reshape to [1, S]) take the bound sizes
            node.attrs = opdef.resolve_shape_attrs(node.attrs, bindings, node.label)
        types = opdef.infer([v.type for v in node.inputs], node.attrs, where=node.label)
        for v, t in zip(node.outputs, types):
            old = v.shape if len(v.shape) == t.rank else (D.UNKNOWN,) * t.rank
            v.type = t.with_shape(tuple(_known(new, was, bindings) for new, was in zip(t.shape, old)))


def _known(new, old, bindings):
    if new != D.UNKNOWN or old == D.UNKNOWN:
        return new
    if isinstance(old, int) or not D.symbols(old) <= set(bindings):
        return old
    return D.evaluate(old, bindings)


def _check_static_twins(graph: Graph, target: str) -> None:
    lacks = LACKS.get(target, {})
    for node in dynamic_nodes(graph):
        twins = STATIC_OPS[node.op]
        if all(op in lacks for op in twins):
            raise LeptoncError(f"{node.label}: the {target} target runs it as {' or '.join(twins)} once its "
                               f"operands are known, and lacks that op: {lacks[twins[0]]}")


def _lower(graph: Graph, target: str, pipeline: list[str], cache: bool, bindings, weights: SharedWeights):
    from .api import Progress, compile_cpu

    if target == "cpu":
        return compile_cpu(graph, pipeline, Progress(quiet=True), cache=cache, shared_weights=weights)
    if target == "triton":
        from .codegen.triton import compile_triton

        return compile_triton(graph, pipeline, Progress(quiet=True))
    from .codegen.stablehlo import compile_stablehlo

    return compile_stablehlo(graph, {"pipeline": ",".join(pipeline)}, bindings)


def _manifest(graph: Graph, target: str, pipeline: list[str], version: str) -> dict:
    def describe(values):
        return [{"name": v.name, "dtype": v.dtype.value, "shape": list(v.shape)} for v in values]

    symbols = sorted({s for v in graph.inputs for d in v.shape for s in D.symbols(d)})
    manifest = {"leptonc_version": version, "target": target, "pipeline": ",".join(pipeline),
                "signature": {"inputs": describe(graph.inputs), "outputs": describe(graph.outputs),
                              "symbols": symbols},
                "specialized_on": list(dict.fromkeys(name for node in dynamic_nodes(graph)
                                                     for name in _operand_names(graph, node)))}
    if target == "stablehlo":
        manifest["stablehlo"] = {"bindings": {}, "weights": []}
    else:
        manifest.update(compiler="", program={}, fusion_report="")
    return manifest


def _operand_names(graph: Graph, node) -> list[str]:
    return [node.inputs[i].name for i in SHAPE_OPERANDS[node.op]
            if i < len(node.inputs) and graph.constant_of(node.inputs[i]) is None]


def _numpy_inputs(example_inputs) -> list[np.ndarray]:
    inputs = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    return [a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a) for a in inputs]
