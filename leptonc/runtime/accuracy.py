"""The error a lossy compile introduced: the compiled model against the fp32 model on sample inputs.

    reference = start_reference(fp32_graph, passes, accuracy, example_inputs, build=compile_fp32)
    ...                                   # (the lossy model builds meanwhile, the fp32 model runs samples)
    report = measure_accuracy(fp32_graph, compiled_model, tolerance, fp32=reference)
    print(format_accuracy(report))

The fp32 reference is the graph before the lossy passes, compiled (`build`) or, without a C compiler, run by
the reference interpreter; it builds and runs its samples in a thread while the lossy model builds, and then
beside the lossy model's runs, each model on one thread. For
every float output the report gives the max abs error, the max error relative to max(1, max|reference|) and
the SQNR in dB (10 log10 of the reference's energy over the error's), over random inputs shaped like the
examples (token ids within the embedding table they index). For outputs that are a classification or LM
head (see `head_outputs`) it also gives the top-1 agreement (argmax over the last axis), over HEAD_SAMPLES random
inputs by default (64: the agreement's standard error is then at most 1/16, 2.7 points at 95%). The report says whether the errors are within the tolerance the passes declared.
"""
from __future__ import annotations

import math
import threading
from functools import partial

import numpy as np

from ..ir.errors import LeptoncError
from ..ir.graph import Graph, Value
from ..ir.ops.sparse import SPARSE_MATMULS
from .reference import run_reference

HEAD_SAMPLES = 64  # each sample is a call of the fp32 and of the lossy model
SAMPLES = 8
INTERPRETER_SAMPLES = 32  # the default count when the reference interpreter gives the fp32 outputs
KEEP_BYTES = 256 << 20  # fp32 outputs computed ahead and kept for the comparison
LINEAR_OPS = {"matmul", "matmul_wq", "matmul_w8a8", *SPARSE_MATMULS}
# what may follow the linear layer of a head: its bias, a (log-)softmax, reshapes and casts
HEAD_OPS = {"add", "sub", "exp", "log", "div", "reduce_max", "reduce_sum", "reshape", "cast"}


def head_outputs(graph: Graph) -> list[int]:
    """Indices of the outputs that are a classification or LM head: float, last dim >= 2, logits of a
    linear layer (a matmul with a constant weight), possibly after a bias, a (log-)softmax and reshapes.
    Hidden states (after a norm or an activation) are not heads."""
    return [i for i, v in enumerate(graph.outputs)
            if v.dtype.is_float and v.type.rank >= 1 and isinstance(v.shape[-1], int) and v.shape[-1] >= 2
            and _from_linear(graph, v)]


def _from_linear(graph: Graph, v: Value, budget: int = 24) -> bool:
    found, stack, seen = False, [v], set()
    while stack and budget > 0:
        p = stack.pop().producer
        if p is None or id(p) in seen or p.op == "const":
            continue
        seen.add(id(p))
        budget -= 1
        if p.op in LINEAR_OPS and graph.constant_of(p.inputs[1]) is not None:
            found = True
        elif p.op in HEAD_OPS:
            stack.extend(p.inputs)
        else:
            return False
    return found


def sample_inputs(graph: Graph, count: int, example_inputs=None, seed: int = 0) -> list[list[np.ndarray]]:
    """`count` random input sets shaped like the examples (or the graph's inputs, symbols set to 1)."""
    rng = np.random.default_rng(seed)
    if example_inputs is None:
        examples = [None] * len(graph.inputs)
    else:  # (one input may come bare, as leptonc.compile takes it)
        examples = list(example_inputs) if isinstance(example_inputs, (list, tuple)) else [example_inputs]
    sizes = _size_inputs(graph)
    specs = []
    for v, ex in zip(graph.inputs, examples):
        ex = None if ex is None else np.asarray(ex.detach().numpy() if hasattr(ex, "detach") else ex)
        shape = ex.shape if ex is not None else tuple(d if isinstance(d, int) else 1 for d in v.shape)
        std = float(np.std(ex)) if ex is not None and v.dtype.is_float and ex.size else 1.0
        fixed = ex if ex is not None and any(v is w for w in sizes) else None  # a size or axis: the example's
        specs.append((v, shape, std or 1.0, _index_bound(graph, v, ex), fixed))
    sets = []
    for _ in range(count):
        arrays = []
        for v, shape, std, bound, fixed in specs:
            if fixed is not None:
                arrays.append(fixed)
            elif v.dtype.is_float:
                arrays.append((rng.standard_normal(shape) * std).astype(v.dtype.numpy))
            else:
                arrays.append(rng.integers(0, bound, size=shape).astype(v.dtype.numpy))
        sets.append(arrays)
    return sets


def _size_inputs(graph: Graph) -> list[Value]:
    """The graph inputs whose values are sizes or axes of dynamic ops (runtime/specialized.py)."""
    from .specialized import ShapeProbe, dynamic_nodes

    if not dynamic_nodes(graph):
        return []
    try:
        return ShapeProbe(graph).inputs_read
    except LeptoncError:
        return []


def _index_bound(graph: Graph, v: Value, example) -> int:
    """Exclusive upper bound of an integer input: the size of the table it gathers from, else the examples'."""
    for user, i in v.uses:
        if user.op == "gather" and i == 1:
            table = user.inputs[0]
            axis = user.attrs.get("axis", 0) % max(table.type.rank, 1)
            if isinstance(table.shape[axis], int):
                return table.shape[axis]
    if example is not None and example.size:
        return int(example.max()) + 1
    return 2


def accuracy_samples(accuracy) -> int | None:
    """The sample count that `compile(..., accuracy=)` asks for: None for the default (True), 0 to skip the
    check (False or 0), else the count. Anything else is a LeptoncError."""
    if accuracy is True:
        return None
    if accuracy is False:
        return 0
    if isinstance(accuracy, (int, np.integer)) and accuracy >= 0:
        return int(accuracy)
    raise LeptoncError(f"accuracy={accuracy!r}: give True (the default sample count), False or 0 (no accuracy "
                       "check) or a number of samples")


def default_samples(graph: Graph) -> int:
    """How many random inputs the check runs by default: HEAD_SAMPLES for a model with a head (top-1 agreement
    needs many), else SAMPLES."""
    return HEAD_SAMPLES if head_outputs(graph) else SAMPLES


class Reference:
    """The fp32 model's outputs on sample inputs, to measure a lossy model against.

    `build` (graph -> callable) makes the fp32 model, the graph compiled without the lossy passes; without it
    the reference interpreter runs the graph. `start` builds it and runs the samples in a thread, first while
    the lossy model builds, then beside the lossy model's runs; their outputs are kept (up to KEEP_BYTES,
    beyond which the thread waits) until `outputs` hands them out, in order. Each model runs on one thread
    (`single_threaded`): two of them fill two cores without their thread pools spinning against each other
    or against the C compiler."""

    def __init__(self, graph: Graph, inputs: list[list[np.ndarray]], build=None):
        self.graph, self.inputs, self.build = graph, inputs, build
        self.kind = "compiled" if build is not None else "reference interpreter"
        self._run = None
        self._kept: list[list[np.ndarray] | None] = [None] * len(inputs)
        self._kept_bytes = 0
        self._cond = threading.Condition()
        self._running = self._stopped = False
        self._error: BaseException | None = None

    def start(self) -> "Reference":
        self._running = True
        threading.Thread(target=self._run_ahead, name="leptonc-fp32-reference", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop the thread after the sample it is running."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def _run_ahead(self) -> None:
        try:
            for i, x in enumerate(self.inputs):
                with self._cond:
                    self._cond.wait_for(lambda: self._stopped or self._kept_bytes < KEEP_BYTES)
                    if self._stopped:
                        return
                out = self._call(x)
                with self._cond:
                    self._kept[i] = out
                    self._kept_bytes += sum(a.nbytes for a in out)
                    self._cond.notify_all()
        except BaseException as e:  # noqa: BLE001 (raised in the caller's thread by `outputs`)
            self._error = e
        finally:
            with self._cond:
                self._running = False
                self._cond.notify_all()

    def _call(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        if self._run is None:
            self._run = self.build(self.graph) if self.build is not None else partial(run_reference, self.graph)
            single_threaded(self._run)
        out = self._run(*inputs)
        return [np.asarray(a) for a in out] if isinstance(out, (list, tuple)) else [np.asarray(out)]

    def outputs(self, i: int) -> list[np.ndarray]:
        """The fp32 outputs of sample `i`, once the thread has run it (each is handed out once, then let go)."""
        with self._cond:
            self._cond.wait_for(lambda: self._kept[i] is not None or not self._running)
            if self._error is not None:
                raise self._error
            out, self._kept[i] = self._kept[i], None
            if out is not None:
                self._kept_bytes -= sum(a.nbytes for a in out)
                self._cond.notify_all()
        return out if out is not None else self._call(self.inputs[i])


def single_threaded(model) -> int | None:
    """Run a compiled cpu model's kernels on one thread; returns its former count (None for other callables)."""
    executor = getattr(model, "executor", None)
    if executor is None or not hasattr(executor, "set_threads"):
        return None
    before = executor.threads
    executor.set_threads(1)
    return before


def start_reference(graph: Graph, tolerance, accuracy=True, example_inputs=None, build=None) -> Reference | None:
    """The started Reference of a compile whose passes declare a `tolerance` (passes/tolerance.py's
    tolerance_of: None when no pass is lossy), on its sample inputs; None when no pass is lossy or `accuracy`
    turns the check off. Without `build`, a default count is bounded to
    INTERPRETER_SAMPLES (the reference interpreter is slow)."""
    count = accuracy_samples(accuracy)
    if tolerance is None or count == 0:
        return None
    if count is None:
        count = default_samples(graph) if build is not None else min(default_samples(graph), INTERPRETER_SAMPLES)
    return Reference(graph, sample_inputs(graph, count, example_inputs), build).start()


class ErrorStats:
    """The errors of one model's outputs against the fp32 outputs, summed over samples (`add`); `entries` are
    the report's rows, one per float output. A second lossy model compared on the same samples is one more
    ErrorStats."""

    def __init__(self, graph: Graph):
        self.outputs, self.heads = graph.outputs, set(head_outputs(graph))
        self.sums = [{"max_abs": 0.0, "ref_max": 0.0, "err2": 0.0, "ref2": 0.0, "agree": 0, "total": 0}
                     for _ in graph.outputs]

    def add(self, want: list[np.ndarray], got: list[np.ndarray]) -> None:
        for i, (r, y) in enumerate(zip(want, got)):
            if not np.issubdtype(r.dtype, np.floating) and r.dtype.name != "bfloat16":
                continue
            r64, y64 = r.astype(np.float64), np.asarray(y).astype(np.float64)
            s = self.sums[i]
            if r64.size:
                s["max_abs"] = max(s["max_abs"], float(np.max(np.abs(y64 - r64))))
                s["ref_max"] = max(s["ref_max"], float(np.max(np.abs(r64))))
            s["err2"] += float(np.sum((y64 - r64) ** 2))
            s["ref2"] += float(np.sum(r64 ** 2))
            if i in self.heads:
                s["agree"] += int(np.sum(np.argmax(r64, axis=-1) == np.argmax(y64, axis=-1)))
                s["total"] += int(np.prod(r64.shape[:-1]))

    def entries(self) -> list[dict]:
        return [{"name": v.name, "max_abs_error": s["max_abs"],
                 "max_rel_error": s["max_abs"] / max(1.0, s["ref_max"]),
                 "sqnr_db": _sqnr(s["ref2"], s["err2"]),
                 "top1_agreement": s["agree"] / s["total"] if i in self.heads and s["total"] else None}
                for i, (v, s) in enumerate(zip(self.outputs, self.sums)) if v.dtype.is_float]


def measure_accuracy(reference: Graph, run, tolerance=None, example_inputs=None, *, samples: int | None = None,
                     seed: int = 0, fp32: Reference | None = None, progress=None) -> dict:
    """Errors of `run` (a callable: input arrays -> outputs) against the fp32 graph `reference`, on the inputs
    and outputs of `fp32` (a started Reference), or else on `samples` random inputs through the reference
    interpreter. `progress` (api.Progress) shows the count of samples done."""
    if fp32 is None:
        count = samples or default_samples(reference)
        fp32 = Reference(reference, sample_inputs(reference, count, example_inputs, seed))
    stats = ErrorStats(reference)
    total = len(fp32.inputs)
    threads = single_threaded(run)  # (the fp32 model runs beside it, on the other core)
    try:
        for i, inputs in enumerate(fp32.inputs):
            if progress is not None:
                progress.count("measuring the error of the passes against the fp32 model", i, total)
            got = run(*inputs)
            stats.add(fp32.outputs(i), list(got) if isinstance(got, (list, tuple)) else [got])
    finally:
        fp32.stop()
        if threads is not None:
            run.executor.set_threads(threads)
    report = {"samples": total, "reference": fp32.kind, "outputs": stats.entries(),
              "tolerance": tolerance.as_dict() if tolerance is not None else None}
    report["within_tolerance"] = within(report) if tolerance is not None else None
    return report


def _sqnr(signal: float, noise: float) -> float:
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def within(report: dict) -> bool:
    """Whether every output of a report is within its tolerance."""
    tol = report["tolerance"]
    for o in report["outputs"]:
        if o["max_rel_error"] > tol["max_rel_error"] or o["sqnr_db"] < tol["min_sqnr_db"]:
            return False
        if o["top1_agreement"] is not None and o["top1_agreement"] < tol["min_top1"]:
            return False
    return True


NOTHING_LOSSY = ("no lossy pass ran (quantize, mixed-precision, prune): the compiled model computes the fp32 graph's "
                 "function, so there is no error to report")


REFERENCE_SOURCES = {"compiled": ", the fp32 graph compiled for the cpu target",
                     "reference interpreter": ", the fp32 graph run by the reference interpreter"}


def format_accuracy(report: dict) -> str:
    """The report as the table `leptonc compile --report` prints."""
    source = REFERENCE_SOURCES.get(report.get("reference"), "")
    lines = [f"accuracy against the fp32 graph ({report['samples']} random inputs){source}:",
             f"  {'output':<24} {'max abs err':>12} {'max rel err':>12} {'SQNR dB':>9} {'top-1':>7}"]
    for o in report["outputs"]:
        top1 = f"{100 * o['top1_agreement']:6.1f}%" if o["top1_agreement"] is not None else f"{'-':>7}"
        lines.append(f"  {o['name']:<24} {o['max_abs_error']:>12.4g} {o['max_rel_error']:>12.4g} "
                     f"{o['sqnr_db']:>9.2f} {top1}")
    tol = report["tolerance"]
    if tol is not None:
        verdict = "within" if report["within_tolerance"] else "OUTSIDE"
        lines.append(f"  {verdict} the declared tolerance: max rel err <= {tol['max_rel_error']:g}, "
                     f"SQNR >= {tol['min_sqnr_db']:g} dB, top-1 >= {100 * tol['min_top1']:g}%")
    if report.get("layers"):
        lines += ["linear layers (weight format, fraction of zero weights, weight size):",
                  format_layer_table(report["layers"])]
    if report.get("calibrated_layers"):
        lines.append("error of each calibrated layer on the calibration data (error energy / output energy), "
                     "beside its baseline's:")
        lines += [f"  {c['layer']:<40} {c['method']} {c['error']:.3e}   {c['baseline']} {c['baseline_error']:.3e}"
                  for c in report["calibrated_layers"]]
    return "\n".join(lines)


def record_accuracy(cm, fp32: Reference | None, tolerance, passes: str, layers: list[dict] | None = None,
                    progress=None, calibrated: list[dict] | None = None) -> dict | None:
    """Measure a compiled model against `fp32` (start_reference's; None: no check), within the passes' declared
    `tolerance`, and record the report in its manifest (`manifest["accuracy"]`, saved with the artifact), with
    `layers` (passes/sparse_layers.py's layer_table of the graph the passes made: weight format and sparsity of
    each linear layer) and the errors calibrated methods recorded per layer on the calibration data
    (`calibrated`, Calibration.layer_error_rows). Returns the report."""
    if fp32 is None:
        return None
    report = measure_accuracy(fp32.graph, cm, tolerance, fp32=fp32, progress=progress)
    report["passes"] = passes
    if layers is not None:
        report["layers"] = layers
    if calibrated:
        report["calibrated_layers"] = calibrated
    cm.manifest["accuracy"] = report
    return report


def format_layer_table(rows: list[dict]) -> str:
    """The report's linear layers (passes/sparse_layers.py's layer_table) as a table."""
    lines = [f"  {'layer':<40} {'[N, K]':>13} {'kernel':>12} {'zeros':>7} {'MiB':>8}"]
    for r in rows:
        shape = "x".join(str(d) for d in r["shape"])
        lines.append(f"  {r['name'][-40:]:<40} {shape:>13} {r['format']:>12} {100 * r['sparsity']:6.1f}% "
                     f"{r['bytes'] / 2**20:8.2f}")
    return "\n".join(lines)


__all__ = ["NOTHING_LOSSY", "ErrorStats", "Reference", "accuracy_samples", "default_samples", "format_accuracy",
           "format_layer_table", "head_outputs", "measure_accuracy", "record_accuracy", "sample_inputs", "start_reference", "within"]
