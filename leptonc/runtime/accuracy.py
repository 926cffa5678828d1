"""The error a lossy compile introduced: the compiled model against the fp32 graph on sample inputs.

    report = measure_accuracy(fp32_graph, compiled_model, tolerance, example_inputs)
    print(format_accuracy(report))

For every float output it gives the max abs error, the max error relative to
max(1, max|reference|) and the SQNR in dB (10 log10 of the reference's
energy over the error's), over random inputs shaped like the examples (token
ids within the embedding table they index). For outputs that are a
classification or LM head (see `head_outputs`) it also gives the top-1
agreement (argmax over the last axis) over 256 random inputs. The report says
whether the errors are within the tolerance the passes declared.
"""
from __future__ import annotations

import math

import numpy as np

from ..ir.graph import Graph, Value
from ..ir.ops.sparse import SPARSE_MATMULS
from .reference import run_reference

HEAD_SAMPLES = 256
SAMPLES = 8
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
    specs = []
    for v, ex in zip(graph.inputs, examples):
        ex = None if ex is None else np.asarray(ex.detach().numpy() if hasattr(ex, "detach") else ex)
        shape = ex.shape if ex is not None else tuple(d if isinstance(d, int) else 1 for d in v.shape)
        std = float(np.std(ex)) if ex is not None and v.dtype.is_float and ex.size else 1.0
        specs.append((v, shape, std or 1.0, _index_bound(graph, v, ex)))
    sets = []
    for _ in range(count):
        arrays = []
        for v, shape, std, bound in specs:
            if v.dtype.is_float:
                arrays.append((rng.standard_normal(shape) * std).astype(v.dtype.numpy))
            else:
                arrays.append(rng.integers(0, bound, size=shape).astype(v.dtype.numpy))
        sets.append(arrays)
    return sets


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


def measure_accuracy(reference: Graph, run, tolerance=None, example_inputs=None, *, samples: int | None = None,
                     seed: int = 0) -> dict:
    """Errors of `run` (a callable: input arrays -> outputs) against the fp32 graph `reference`."""
    heads = head_outputs(reference)
    count = samples or (HEAD_SAMPLES if heads else SAMPLES)
    stats = [{"max_abs": 0.0, "ref_max": 0.0, "err2": 0.0, "ref2": 0.0, "agree": 0, "total": 0}
             for _ in reference.outputs]
    for inputs in sample_inputs(reference, count, example_inputs, seed):
        want = run_reference(reference, *inputs)
        got = run(*inputs)
        got = got if isinstance(got, (list, tuple)) else [got]
        for i, (r, y) in enumerate(zip(want, got)):
            if not np.issubdtype(r.dtype, np.floating) and r.dtype.name != "bfloat16":
                continue
            r64, y64 = r.astype(np.float64), np.asarray(y).astype(np.float64)
            s = stats[i]
            if r64.size:
                s["max_abs"] = max(s["max_abs"], float(np.max(np.abs(y64 - r64))))
                s["ref_max"] = max(s["ref_max"], float(np.max(np.abs(r64))))
            s["err2"] += float(np.sum((y64 - r64) ** 2))
            s["ref2"] += float(np.sum(r64 ** 2))
            if i in heads:
                s["agree"] += int(np.sum(np.argmax(r64, axis=-1) == np.argmax(y64, axis=-1)))
                s["total"] += int(np.prod(r64.shape[:-1]))
    outputs = []
    for i, (v, s) in enumerate(zip(reference.outputs, stats)):
        if not v.dtype.is_float:
            continue
        entry = {"name": v.name, "max_abs_error": s["max_abs"],
                 "max_rel_error": s["max_abs"] / max(1.0, s["ref_max"]),
                 "sqnr_db": _sqnr(s["ref2"], s["err2"]),
                 "top1_agreement": s["agree"] / s["total"] if i in heads and s["total"] else None}
        outputs.append(entry)
    report = {"samples": count, "outputs": outputs,
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


def format_accuracy(report: dict) -> str:
    """The report as the table `leptonc compile --report` prints."""
    lines = [f"accuracy against the fp32 graph ({report['samples']} random inputs):",
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
        from ..passes.sparse_layers import format_layer_table

        lines += ["linear layers (weight format, fraction of zero weights, weight size):",
                  format_layer_table(report["layers"])]
    return "\n".join(lines)


def record_accuracy(cm, reference: Graph, passes: str | None, example_inputs=None, graph: Graph | None = None) \
        -> dict | None:
    """Measure a compiled model against the fp32 graph when `passes` hold a lossy pass, and record the
    report in its manifest (`manifest["accuracy"]`, saved with the artifact), with the weight format and
    sparsity of each linear layer of `graph` (the graph the passes made). Returns the report."""
    from ..passes.sparse_layers import layer_table
    from ..passes.tolerance import tolerance_of

    tolerance = tolerance_of(passes) if passes else None
    if tolerance is None:
        return None
    report = measure_accuracy(reference, cm, tolerance, example_inputs)
    report["passes"] = passes
    if graph is not None:
        report["layers"] = layer_table(graph)
    cm.manifest["accuracy"] = report
    return report


__all__ = ["NOTHING_LOSSY", "format_accuracy", "head_outputs", "measure_accuracy", "record_accuracy", "sample_inputs",
           "within"]
