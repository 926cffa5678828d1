"""Sparsity, measured in one run: speed and size of pruned models as ratios against leptonc's dense fp32.

    python benchmarks/sparsity.py build [--parts gemv,bert,cost] [--dir DIR]   # compile the models (cpu-job)
    python benchmarks/sparsity.py time [--parts gemv,bert,cost] [--dir DIR] [--runs 30] [--append]   # time them

  gemv  4 x Linear(4096, 4096) with ReLUs, batch 1 (benchmarks/suite.py): dense fp32; 90% sparse in 1x8
        blocks; 2:4; 90% unstructured (magnitude); int8 weights dense and int8 weights 90% sparse in 1x8
        blocks. Time per run, artifact size, each as a ratio to fp32.
  bert  BERT-base, batch 1, seq 128 (tests/model_zoo.py): dense fp32 against 80% of every linear layer's
        weights pruned in 8x1 blocks (8 outputs of one input) and in 1x8 blocks (8 inputs of one output).
  cost  the cost model (leptonc/passes/sparse_cost.py) checked against measurement: layers of BERT and
        GEMV-chain shapes at 1 and 128 rows, in each sparse format (groups of layers with 256 MiB of dense
        weights a call, so that weights stream from memory as in a model), predicted and measured speed-ups
        of the sparse kernel over the dense one, and whether the model's choice was the faster kernel.

`build` compiles each model once (kernels=sparse, so that every pruned layer runs its sparse kernel and the
cost model can be judged), checks its outputs against the reference interpreter on the pruned graph, and
saves the artifacts and what it measured (error of the pruning against fp32, from the compile report) in
DIR. `time` loads them and times them in turns (one call of each per round, medians and minimums), then
writes benchmarks/results/<date>-sparsity-<cpu>.md (--append adds to it). Build under cpu-job, time under
bench-job: the timing phase compiles nothing. Weights of all models of a part stay in memory, so
the caches hold none of them between calls: each call reads its weights from memory, as in serving.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import leptonc  # noqa: E402
from leptonc.bench import cpu_name, write_results  # noqa: E402
from leptonc.ir.ops.sparse import SPARSE_MATMULS  # noqa: E402
from leptonc.passes import run_pipeline  # noqa: E402
from leptonc.passes.sparse_cost import compare  # noqa: E402
from leptonc.passes.sparse_layers import Encoding, SparsityWarning, encode_bsr, encode_nm  # noqa: E402

DEFAULT_DIR = os.path.join(os.environ.get("TMPDIR", "/tmp"), "leptonc-sparsity")


def _block(sparsity: float, shape: str) -> str:
    return f"prune{{method=block,block={shape},sparsity={sparsity},skip=none,kernels=sparse}}"


GEMV_MODELS = {
    "fp32": None,
    "90% in 1x8 blocks": _block(0.9, "1x8"),
    "2:4": "prune{method=nm,n=2,m=4,skip=none,kernels=sparse}",
    "90% unstructured (CSR)": "prune{method=magnitude,sparsity=0.9,skip=none,kernels=sparse}",
    "int8 weights": "quantize{weights=int8}",
    "int8 weights, 90% in 1x8 blocks": "quantize{weights=int8}," + _block(0.9, "1x8"),
}
BERT_MODELS = {"fp32": None, "80% in 8x1 blocks": _block(0.8, "8x1"), "80% in 1x8 blocks": _block(0.8, "1x8")}
COST_SHAPES = [(768, 768), (3072, 768), (768, 3072), (4096, 4096)]
COST_ROWS = [1, 128]
COST_LAYOUTS = [("bsr", (1, 8), 0.9), ("bsr", (8, 1), 0.8), ("bsr", (8, 1), 0.5), ("bsr", (4, 4), 0.8),
                ("bsr", (1, 8), 0.5), ("csr", (1, 1), 0.9), ("csr", (1, 1), 0.7), ("nm", (2, 4), 0.5)]


# ---------------------------------------------------------------- models

def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def _compile_part(part: str, models: dict, module, inputs, directory: str) -> dict:
    """Compile each model of a part, check its outputs against the reference on its own graph, save it."""
    graph = run_pipeline(leptonc.api.import_graph(module, inputs), leptonc.api.CLEANUP_PIPELINE)
    np_inputs = [t.numpy() for t in inputs]
    meta = {}
    for name, passes in models.items():
        print(f"  {part}: {name}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SparsityWarning)
            cm = leptonc.compile(graph, np_inputs, passes=passes, quiet=True)
        seconds = time.perf_counter() - t0
        path = os.path.join(directory, f"{part}-{_slug(name)}.lep")
        cm.save(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SparsityWarning)
            lowered = run_pipeline(graph, passes) if passes else graph  # what compile ran, before fusion
        want = leptonc.run_reference(lowered, *np_inputs)[0]
        got = cm.run(*np_inputs)[0]
        accuracy = cm.manifest.get("accuracy") or {}
        worst = min(accuracy.get("outputs", []), key=lambda o: o["sqnr_db"], default=None)
        meta[name] = {"passes": passes, "path": path, "bytes": os.path.getsize(path), "compile_s": seconds,
                      "kernel_rel_error": float(np.max(np.abs(got - want)) / max(1.0, float(np.max(np.abs(want))))),
                      "sqnr_db": worst["sqnr_db"] if worst else math.inf,
                      "max_rel_error": worst["max_rel_error"] if worst else 0.0,
                      "sparse_layers": sum(n.op in SPARSE_MATMULS for n in lowered.nodes)}
    return meta


def build_gemv(directory: str) -> dict:
    from benchmarks.suite import gemv_chain

    module, inputs = gemv_chain()
    return _compile_part("gemv", GEMV_MODELS, module, inputs, directory)


def build_bert(directory: str) -> dict:
    from tests.model_zoo import build

    module, inputs = build("bert")
    return _compile_part("bert", BERT_MODELS, module, inputs, directory)


def _layers_graph(rows: int, k_in: int, weights: list, encodings: list | None):
    """len(weights) layers side by side, all reading one x [rows, K], one output each: dense matmuls, or the
    sparse matmuls of `encodings`."""
    from leptonc.ir import DType, Graph, TensorType

    g = Graph("layers")
    x = g.add_input("x", TensorType(DType.f32, (rows, k_in)))
    outs = []
    for i, w in enumerate(weights):
        if encodings is None:
            outs.append(g.add("matmul", x, g.add_constant(w.T, f"w{i}")))
            continue
        enc = encodings[i]
        names = ("values", "cols", "rows") if enc.layout.format != "nm" else ("values", "meta")
        operands = [g.add_constant(a, f"w{i}.{n}") for a, n in zip(enc.arrays, names)]
        attrs = {"n": 2, "m": 4} if enc.layout.format == "nm" else {}
        op = {"csr": "matmul_csr", "bsr": "matmul_bsr", "nm": "matmul_nm"}[enc.layout.format]
        outs.append(g.add(op, x, *operands, **attrs))
    g.set_outputs(outs)
    return g


def _pruned(rng, n_out: int, k_in: int, fmt: str, block: tuple, sparsity: float) -> tuple[np.ndarray, Encoding]:
    w = rng.standard_normal((n_out, k_in)).astype(np.float32)
    if fmt == "nm":
        drop = np.argsort(rng.random((n_out, k_in // 4, 4)), axis=2)[:, :, 2:]
        w3 = w.reshape(n_out, k_in // 4, 4)
        np.put_along_axis(w3, drop, 0, axis=2)
        return w, encode_nm(w, 2, 4)
    keep = rng.random((n_out // block[0], k_in // block[1])) >= sparsity
    w *= np.kron(keep, np.ones(block, np.float32))
    return w, encode_bsr(w, block)


COLD_BYTES = 256 << 20  # dense weights per measured call: 8 times the last-level cache, so none stays in it


def build_cost(directory: str) -> dict:
    """Each case is a group of layers of one shape and format, enough of them that their dense weights do not
    fit in the cache (as in a model): the time per layer is the time per call over the group's size."""
    rng = np.random.default_rng(0)
    meta = {}
    for n_out, k_in in COST_SHAPES:
        count = max(1, -(-COLD_BYTES // (n_out * k_in * 4)))
        for rows in COST_ROWS:
            key = f"{n_out}x{k_in} rows {rows}"
            print(f"  cost: {key} ({count} layers a call)", file=sys.stderr, flush=True)
            dense_path = os.path.join(directory, f"cost-{n_out}x{k_in}-{rows}-dense.lep")
            weights = [rng.standard_normal((n_out, k_in)).astype(np.float32) for _ in range(count)]
            leptonc.compile(_layers_graph(rows, k_in, weights, None), quiet=True).save(dense_path)
            for fmt, block, sparsity in COST_LAYOUTS:
                pruned = [_pruned(rng, n_out, k_in, fmt, block, sparsity) for _ in range(count)]
                encodings = [e for _, e in pruned]
                path = os.path.join(directory, f"cost-{n_out}x{k_in}-{rows}-{fmt}{block[0]}x{block[1]}-{sparsity}.lep")
                leptonc.compile(_layers_graph(rows, k_in, [w for w, _ in pruned], encodings), quiet=True).save(path)
                chosen, dense_s, sparse_s = compare(encodings[0].layout, rows)
                meta[f"{key}: {encodings[0].layout.describe()} {100 * sparsity:.0f}%"] = {
                    "dense": dense_path, "sparse": path, "rows": rows, "k_in": k_in, "layers": count,
                    "predicted_dense_us": dense_s * 1e6, "predicted_sparse_us": sparse_s * 1e6, "chosen": chosen}
    return meta


BUILDERS = {"gemv": build_gemv, "bert": build_bert, "cost": build_cost}


# ---------------------------------------------------------------- timing

def time_in_turns(calls: dict, runs: int, warmup: int = 2) -> dict[str, tuple[float, float]]:
    """(median, minimum) milliseconds per call of each zero-argument function, calls taken in turns."""
    for fn in calls.values():
        for _ in range(warmup):
            fn()
    samples = {name: [] for name in calls}
    for _ in range(runs):
        for name, fn in calls.items():  # back to back: every call is leptonc's, on one thread pool
            t0 = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - t0) * 1e3)
    return {name: (float(np.median(s)), float(np.min(s))) for name, s in samples.items()}


def _inputs(part: str) -> list[np.ndarray]:
    if part == "gemv":
        return [np.random.default_rng(1).standard_normal((1, 4096)).astype(np.float32)]
    from tests.model_zoo import build

    return [t.numpy() for t in build("bert")[1]]


def time_models(part: str, meta: dict, runs: int) -> list[str]:
    inputs = _inputs(part)
    models = {name: leptonc.load(m["path"]) for name, m in meta.items()}
    ms = time_in_turns({name: (lambda cm=cm: cm(*inputs)) for name, cm in models.items()}, runs)
    base, size32 = ms["fp32"][0], meta["fp32"]["bytes"]
    title = ("GEMV chain: 4 x Linear(4096, 4096) + ReLU, batch 1" if part == "gemv"
             else "BERT-base, batch 1, seq 128, every linear layer pruned")
    lines = [f"## {title}", "",
             "| model | median ms | min ms | speed-up vs fp32 | artifact MiB | size vs fp32 | sparse layers | "
             "pruning error: max rel / SQNR dB | kernels vs reference |", "|---|---|---|---|---|---|---|---|---|"]
    for name, m in meta.items():
        med, low = ms[name]
        lines.append(f"| {name} | {med:.3f} | {low:.3f} | {base / med:.2f}x | {m['bytes'] / 2**20:.1f} | "
                     f"{m['bytes'] / size32:.3f}x | {m['sparse_layers']} | {m['max_rel_error']:.3g} / "
                     f"{m['sqnr_db']:.1f} | {m['kernel_rel_error']:.1e} |")
    return lines + [""]


def time_cost(meta: dict, runs: int) -> list[str]:
    lines = ["## Cost model against measurement (per layer; speed-up of the sparse kernel over the dense one)", "",
             "Each case runs a group of layers of one shape side by side, 256 MiB of dense weights a call, so that "
             "weights come from memory as in a model; times are per layer.", "",
             "| layer | predicted dense us | predicted sparse us | predicted | measured dense us | measured sparse us "
             "| measured | choice |", "|---|---|---|---|---|---|---|---|"]
    right = 0
    for name, m in meta.items():
        x = np.random.default_rng(2).standard_normal((m["rows"], m["k_in"])).astype(np.float32)
        dense, sparse = leptonc.load(m["dense"]), leptonc.load(m["sparse"])
        ms = time_in_turns({"dense": lambda: dense(x), "sparse": lambda: sparse(x)}, max(5, runs // 3))
        ms = {k: (med / m["layers"], low / m["layers"]) for k, (med, low) in ms.items()}
        measured = ms["dense"][0] / ms["sparse"][0]
        predicted = m["predicted_dense_us"] / m["predicted_sparse_us"]
        ok = m["chosen"] == (measured > 1.0)
        right += ok
        verdict = ("sparse" if m["chosen"] else "dense") + (", right" if ok else ", WRONG")
        lines.append(f"| {name} | {m['predicted_dense_us']:.0f} | {m['predicted_sparse_us']:.0f} | {predicted:.2f}x | "
                     f"{ms['dense'][0] * 1e3:.0f} | {ms['sparse'][0] * 1e3:.0f} | {measured:.2f}x | {verdict} |")
    lines += ["", f"The cost model chose the faster kernel for {right} of {len(meta)} layers "
                  "(it asks for a predicted 1.1x before it picks the sparse one).", ""]
    return lines


# ---------------------------------------------------------------- main

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("phase", choices=("build", "time"))
    p.add_argument("--parts", default="gemv,bert,cost")
    p.add_argument("--dir", default=DEFAULT_DIR)
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--append", action="store_true", help="add to today's results file (parts timed apart)")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    parts = [x for x in args.parts.split(",") if x]
    unknown = [x for x in parts if x not in BUILDERS]
    if unknown:
        p.error(f"unknown parts {unknown} (parts: {', '.join(BUILDERS)})")
    os.makedirs(args.dir, exist_ok=True)
    if args.phase == "build":
        for part in parts:
            meta = BUILDERS[part](args.dir)
            with open(os.path.join(args.dir, f"{part}.json"), "w") as f:
                json.dump(meta, f, indent=1)
        return 0
    lines = [f"# Sparsity on {cpu_name()}, {args.threads} threads, medians and minimums of {args.runs} runs in turns",
             "", f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
             f"- commands: `python benchmarks/sparsity.py build --parts {args.parts}` (under cpu-job), then "
             f"`python benchmarks/sparsity.py time --parts {args.parts} --runs {args.runs}` (under bench-job)", ""]
    for part in parts:
        print(f"timing {part} ...", file=sys.stderr, flush=True)
        with open(os.path.join(args.dir, f"{part}.json")) as f:
            meta = json.load(f)
        lines += time_cost(meta, args.runs) if part == "cost" else time_models(part, meta, args.runs)
    text = "\n".join(lines) + "\n"
    print(text)
    path = write_results(text, os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"), "sparsity",
                         append=args.append)
    print("written to", path, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
