"""Calibration data: real inputs for the passes that need activations (static int8 activations, GPTQ,
SparseGPT and Wanda pruning, recovery).

    cm = leptonc.compile(model, example_inputs, passes="quantize{weights=int4,method=gptq}", calibration=data)
    leptonc compile model.onnx -o m.lep --passes ... --calibration data.npz

`data` is an iterable of samples, each a tuple of numpy arrays in graph-input order (a sample may itself be a
batch), or the path of an .npz file with one key per graph input, samples stacked on axis 0: an array of
rank r + 1 for an input of rank r holds one sample per row of axis 0, and an array of rank r (a batch of
samples) gives each row as a batch-1 sample. Each sample is checked against the graph's input types before
any pass runs, so a wrong file fails with its key and shape named.

A pass reads the data with `require_calibration(pass_name)` while the pipeline runs under
`calibrating(data)`, and runs it through the graph as it stands with `observe(graph, values)`, which yields
one list of arrays per sample (the values asked for), so that statistics accumulate in bounded memory.
A pass that rewrites linear layers from their inputs' statistics (GPTQ, SparseGPT, Wanda) walks them with
`waves(graph, layers, statistic)`: wave by wave, each observed in one run of the samples through the graph
with the earlier waves already rewritten.
A calibrated method records each layer's error on the data beside its plain baseline's with
`record_layer_error`; the compile's accuracy report prints them.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np

from ..ir.size_checks import size_checks
from ..ir.errors import LeptoncError
from ..ir.graph import Graph, Value
from ..runtime.reference import run_reference
from ..runtime.signature import bind_inputs
from .dce import dce
from .registry import PassError

MAX_SAMPLES = 100_000


class CalibrationError(LeptoncError):
    """Calibration data that does not fit the graph (missing input, wrong shape or dtype, empty)."""


@dataclass(frozen=True)
class LayerError:
    """A layer's output error on the calibration data (relative: error energy over output energy) under a
    calibrated method and under its uncalibrated baseline (gptq beside rtn)."""

    layer: str
    method: str
    error: float
    baseline: str
    baseline_error: float


@dataclass(frozen=True)
class Calibration:
    """Calibration samples, each a tuple of arrays in graph-input order, and the layer errors the passes
    recorded on them."""

    samples: tuple[tuple[np.ndarray, ...], ...]
    layer_errors: list[LayerError] = field(default_factory=list, compare=False)

    def layer_error_rows(self) -> list[dict]:
        """The recorded layer errors as the accuracy report's rows."""
        return [asdict(e) for e in self.layer_errors]

    def __len__(self) -> int:
        return len(self.samples)

    def observe(self, graph: Graph, values: list[Value]) -> Iterator[list[np.ndarray]]:
        """Per sample, the arrays `values` of `graph` take when the reference interpreter runs the sample
        (only the part of the graph they depend on runs)."""
        prefix = _computing(graph, values)
        for sample in self.samples:
            yield run_reference(prefix, *sample)


def _computing(graph: Graph, values: list[Value]) -> Graph:
    """A copy of `graph` whose outputs are `values`, without the nodes they do not depend on."""
    prefix = graph.copy()
    twin = {id(v): c for v, c in zip(graph.values(), prefix.values())}
    prefix.set_outputs([twin[id(v)] for v in values])
    dce(prefix)
    return prefix


def gram(rows: np.ndarray) -> np.ndarray:
    """X^T X [K, K] of rows X [R, K] (float64): GPTQ's and SparseGPT's Hessian, summed over samples."""
    return rows.T @ rows


def column_squares(rows: np.ndarray) -> np.ndarray:
    """The sum of squares of each column [K] of rows X [R, K] (float64): Wanda's input norms squared."""
    return np.einsum("ij,ij->j", rows, rows)


def waves(graph: Graph, layers: list, statistic: Callable[[np.ndarray], np.ndarray], *, pass_name: str,
          sequential: bool = True, node: Callable = lambda layer: layer,
          unfold: Callable = lambda layer: None) -> Iterator[list[tuple]]:
    """Walk the linear layers `layers` of `graph` (`node(layer)` is a layer's node, input x first, in the
    graph's nodes) in waves, yielding per wave the list of (layer, statistic of its x over the calibration
    data). `statistic(rows)` maps a sample's x as float64 rows [R, K] to an array that sums over samples.
    A layer whose weight multiplies other rows than x's last axis (a convolution's windows) has
    `unfold(layer)`: a function from x to the list of row matrices [R, K] (one per group), and its
    statistic is the list of theirs.
    The caller rewrites the wave's layers before asking for the next wave. Sequential, a wave holds the
    pending layers whose x no pending layer feeds (with every layer in it, the layers reading the same x),
    observed in one run of the samples through the graph as it stands: each layer sees the rewritten
    layers before it, in as few runs as the graph's depth allows. A run starts from the values the
    previous run left that no pending layer feeds (kept per sample: the activations at that cut), so the
    graph is not run again from its inputs every wave. Not sequential: one wave, all layers observed on
    the graph as given."""
    calibration = require_calibration(pass_name)
    pending = list(layers)
    cut = _Cut()
    while pending:
        wave = _next_wave(graph, pending, node) if sequential else pending
        xs = list({id(node(l).inputs[0]): node(l).inputs[0] for l in wave}.values())
        rest = [l for l in pending if all(l is not w for w in wave)]
        keep = _cut_values(graph, [node(l) for l in pending]) if rest else []
        kept: list[list[np.ndarray]] = []  # per sample, the arrays of `keep`

        def observed():
            for arrays in cut.run(calibration, graph, xs + keep):
                kept.append(arrays[len(xs):])
                yield arrays[:len(xs)]

        index = {id(x): i for i, x in enumerate(xs)}
        views = [(index[id(node(l).inputs[0])], unfold(l)) for l in wave]
        distinct = list({(i, id(f)): (i, f) for i, f in views}.values())
        stats = dict(zip(((i, id(f)) for i, f in distinct),
                         _accumulate(observed(), xs, distinct, statistic, pass_name)))
        cut = _Cut(graph, keep, kept)
        yield [(l, stats[i, id(f)]) for l, (i, f) in zip(wave, views)]
        pending = rest


def _next_wave(graph: Graph, pending: list, node: Callable) -> list:
    """The pending layers whose x no pending layer feeds."""
    tainted = _downstream(graph, [node(l) for l in pending])
    return [l for l in pending if id(node(l).inputs[0]) not in tainted]


def _downstream(graph: Graph, nodes: list) -> set[int]:
    """The ids of the values that `nodes` feed (graph.nodes is in topological order)."""
    waiting = {id(n) for n in nodes}
    tainted: set[int] = set()
    for n in graph.nodes:
        if id(n) in waiting or any(id(v) in tainted for v in n.inputs):
            tainted.update(id(v) for v in n.outputs)
    return tainted


def _cut_values(graph: Graph, pending: list) -> list[Value]:
    """The values no pending layer feeds (constants aside) that a node fed by a pending layer reads: with
    them, every value the pending layers feed can be computed without running the graph's start again."""
    tainted = _downstream(graph, pending)
    waiting = {id(n) for n in pending}
    cut: dict[int, Value] = {}
    for n in graph.nodes:
        if id(n) in waiting or any(id(v) in tainted for v in n.outputs):
            for v in n.inputs:
                if id(v) not in tainted and (v.producer is None or v.producer.op != "const"):
                    cut.setdefault(id(v), v)
    return list(cut.values())


class _Cut:
    """Per sample, the arrays of some values of a graph, with each value's lineage (the nodes, their inputs
    and constants it was computed from) so that a later run reuses them only while that lineage is intact."""

    def __init__(self, graph: Graph | None = None, values: list[Value] = (), arrays: list[list] = ()):
        self.values, self.arrays = list(values), list(arrays)
        memo: dict[int, int] = {}
        self.lineage = [_lineage(graph, v, memo) for v in self.values]
        # the lineage names nodes and constants by identity: they are held so that no identity is reused
        self.held = (list(graph.nodes), list(graph.constants.values())) if graph is not None else ()

    def run(self, calibration: Calibration, graph: Graph, outputs: list[Value]) -> Iterator[list[np.ndarray]]:
        """Per sample, the arrays of `outputs`, computed from the kept values whose lineage is intact."""
        memo: dict[int, int] = {}
        valid = [i for i, v in enumerate(self.values) if _lineage(graph, v, memo) == self.lineage[i]]
        prefix = graph.copy()
        twin = {id(v): c for v, c in zip(graph.values(), prefix.values())}
        prefix.set_outputs([twin[id(v)] for v in outputs])
        for i in valid:
            v = twin[id(self.values[i])]
            prefix.replace_all_uses(v, prefix.add_input(v.name, v.type))
        dce(prefix)
        for s, sample in enumerate(calibration.samples):
            yield run_reference(prefix, *sample, *(self.arrays[s][i] for i in valid))


def _lineage(graph: Graph, v: Value, memo: dict[int, int]) -> int:
    """A hash of a value's computation: its producer's identity, op, attributes and result index and its
    inputs' lineages (a constant's array by identity; a graph input by its own)."""
    if id(v) not in memo:
        n = v.producer
        if n is None:
            memo[id(v)] = hash(("input", id(v)))
        elif n.op == "const":
            memo[id(v)] = hash(("const", id(n), id(graph.constants.get(n.attrs["name"]))))
        else:
            memo[id(v)] = hash((id(n), n.op, repr(n.attrs), n.outputs.index(v),
                                tuple(_lineage(graph, u, memo) for u in n.inputs)))
    return memo[id(v)]


def _accumulate(arrays: Iterator[list[np.ndarray]], xs: list[Value], views: list[tuple], statistic: Callable,
                pass_name: str) -> list:
    """`statistic` summed over the samples (`arrays`: per sample, one per value of `xs`) of each view (i, unfold)
    of value xs[i]: of its rows [R, K] along the last axis (unfold None), or a list, of each of unfold's row
    matrices."""
    accs: list = [None] * len(views)
    for sample in arrays:
        for v, (i, unfold) in enumerate(views):
            a = np.asarray(sample[i], np.float64)
            s = statistic(a.reshape(-1, a.shape[-1])) if unfold is None else [statistic(r) for r in unfold(a)]
            if accs[v] is None:
                accs[v] = s
            elif unfold is None:
                accs[v] += s
            else:
                for total, part in zip(accs[v], s):
                    total += part
    for acc, (i, _) in zip(accs, views):
        if not all(np.isfinite(a).all() for a in (acc if isinstance(acc, list) else [acc])):
            raise PassError(f"{pass_name}: the calibration data gives inf or nan at the input of a layer "
                            f"({xs[i].name})")
    return accs


def load_calibration(data, graph: Graph) -> Calibration:
    """Calibration samples for `graph` from an .npz path or an iterable of input tuples, checked against the
    graph's inputs; a CalibrationError names the sample or key that does not fit."""
    if isinstance(data, Calibration):
        samples = list(data.samples)
        where = "calibration"
    elif isinstance(data, (str, os.PathLike)):
        samples = _npz_samples(os.fspath(data), graph)
        where = os.fspath(data)
    else:
        try:
            samples = [tuple(np.asarray(a) for a in (s if isinstance(s, (tuple, list)) else (s,)))
                       for s in _bounded(data)]
        except TypeError:
            raise CalibrationError(f"calibration: expected an iterable of input tuples (numpy arrays) or an "
                                   f".npz path, got {type(data).__name__}") from None
        where = "calibration"
    if not samples:
        raise CalibrationError(f"{where}: no calibration samples")
    names, types = [v.name for v in graph.inputs], [v.type for v in graph.inputs]
    signed = size_checks(graph)
    for i, sample in enumerate(samples):
        try:
            bind_inputs(names, types, sample, signed)
        except LeptoncError as e:
            raise CalibrationError(f"{where}: sample {i}: {e}") from None
    return Calibration(tuple(tuple(np.ascontiguousarray(a) for a in s) for s in samples))


def _bounded(data) -> list:
    samples = []
    for s in data:
        samples.append(s)
        if len(samples) > MAX_SAMPLES:
            raise CalibrationError(f"calibration: more than {MAX_SAMPLES} samples")
    return samples


def _npz_samples(path: str, graph: Graph) -> list[tuple[np.ndarray, ...]]:
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise CalibrationError(f"--calibration {path}: not a readable .npz file ({e})") from None
    with npz:
        names = [v.name for v in graph.inputs]
        missing, extra = [n for n in names if n not in npz.files], [k for k in npz.files if k not in names]
        if missing or extra:
            raise CalibrationError(f"--calibration {path}: keys {sorted(npz.files)} do not match the graph's "
                                   f"inputs {names}" + (f" (missing {missing})" if missing else "") +
                                   (f" (unknown {extra})" if extra else ""))
        columns = []
        for v in graph.inputs:
            a = npz[v.name]
            rank = v.type.rank
            if a.ndim == rank + 1:
                columns.append([a[i] for i in range(a.shape[0])])
            elif a.ndim == rank and rank >= 1:
                columns.append([a[i:i + 1] for i in range(a.shape[0])])
            else:
                raise CalibrationError(f"--calibration {path}: key {v.name!r} has shape {list(a.shape)}; input "
                                       f"{v.name} is {v.type}: give samples stacked on axis 0 (rank {rank + 1})")
    counts = {len(c) for c in columns}
    if len(counts) > 1:
        raise CalibrationError(f"--calibration {path}: the keys hold different numbers of samples "
                               f"({dict(zip(names, (len(c) for c in columns)))})")
    return list(zip(*columns))


_CURRENT: contextvars.ContextVar[Calibration | None] = contextvars.ContextVar("leptonc_calibration", default=None)


@contextlib.contextmanager
def calibrating(calibration: Calibration | None):
    """Passes run inside this block read `calibration` through require_calibration / current_calibration."""
    token = _CURRENT.set(calibration)
    try:
        yield calibration
    finally:
        _CURRENT.reset(token)


def current_calibration() -> Calibration | None:
    """The calibration data of the compile running now, if it was given any."""
    return _CURRENT.get()


def record_layer_error(layer: str, method: str, error: float, baseline: str, baseline_error: float) -> None:
    """Record, for the compile running now, a layer's error on its calibration data beside its baseline's."""
    require_calibration(method).layer_errors.append(LayerError(layer, method, error, baseline, baseline_error))


def require_calibration(pass_name: str) -> Calibration:
    """The calibration data of the compile running now; a PassError naming `pass_name` when none was given."""
    calibration = _CURRENT.get()
    if calibration is None:
        raise PassError(f"pass {pass_name} needs calibration data: leptonc.compile(..., calibration=samples or "
                        "'data.npz'), or --calibration data.npz on the command line")
    return calibration
