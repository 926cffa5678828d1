"""Precision lowering, measured in one run: speed and size ratios of quantized models against fp32.

    python benchmarks/precision.py [--parts gemv,bert,gpt2] [--runs 30] [--threads 2] [--append]

  gemv  4 x Linear(4096, 4096), batch 1: leptonc fp32, int8 weight-only (per channel) and int4
        weight-only (groups of 128): time per run and artifact size, as ratios to fp32.
  bert  BERT-base, batch 1, seq 128: leptonc fp32 and W8A8 (quantize{weights=int8,activations=int8-dynamic})
        against ONNX Runtime fp32 and ONNX Runtime's quantize_dynamic model; error of each quantized model
        against the fp32 model (max abs error, SQNR).
  gpt2  GPT-2 (124M), one decode step (batch 1, seq 1): leptonc fp32, int8 and int4 weight-only; tokens per
        second and error.

Timings are medians over runs taken in turns (one run of each system per round), so that the load of a
shared machine falls on all of them alike. Writes benchmarks/results/<date>-precision-<cpu>.md (with
--append, adds to it: parts measured in separate runs), each part under the command that measured it.
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import leptonc  # noqa: E402
from leptonc.bench import PAUSE_S, cpu_name, ort_session, write_results  # noqa: E402
from leptonc.ir import DType, Graph, TensorType  # noqa: E402

INT8 = "quantize{weights=int8,per=channel}"
INT4 = "quantize{weights=int4,group=128}"
W8A8 = "quantize{weights=int8,activations=int8-dynamic}"


def timed_in_turns(systems: dict, runs: int, warmup: int = 3, pause: float = 0.0) -> dict[str, float]:
    """Median milliseconds per call of each zero-argument function, calls taken in turns, each after `pause`
    seconds (bench.PAUSE_S where systems with their own thread pools alternate, so that one's spinning
    threads do not take the cores of the next; none between leptonc models, which share one pool and run
    back to back like the steps of a decode loop)."""
    for fn in systems.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in systems}
    for _ in range(runs):
        for name, fn in systems.items():
            if pause:
                time.sleep(pause)
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: float(np.median(t)) for name, t in times.items()}


def errors(reference: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(max abs error, SQNR in dB) of y against reference."""
    r, d = reference.astype(np.float64), np.asarray(y, np.float64) - reference
    noise = float(np.sum(d * d))
    return float(np.max(np.abs(d))), (math.inf if noise == 0 else 10 * math.log10(float(np.sum(r * r)) / noise))


def artifact_bytes(cm) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.lep")
        cm.save(path)
        return os.path.getsize(path)


# ---------------------------------------------------------------- GEMV chain

def gemv_chain(layers: int = 4, width: int = 4096) -> Graph:
    rng = np.random.default_rng(0)
    g = Graph("gemv_chain")
    h = g.add_input("x", TensorType(DType.f32, (1, width)))
    for i in range(layers):
        w = g.add_constant((rng.standard_normal((width, width)) / math.sqrt(width)).astype(np.float32), f"fc{i}.weight")
        h = g.add("matmul", h, w)
        h = g.add("add", h, g.add_constant((0.01 * rng.standard_normal(width)).astype(np.float32), f"fc{i}.bias"))
    g.set_outputs([h])
    return g


def bench_gemv(runs: int) -> list[str]:
    graph = gemv_chain()
    x = np.random.default_rng(1).standard_normal((1, 4096)).astype(np.float32)
    models = {"fp32": leptonc.compile(graph, (x,), quiet=True),
              "int8 weight-only": leptonc.compile(graph, (x,), passes=INT8, quiet=True),
              "int4 weight-only (g128)": leptonc.compile(graph, (x,), passes=INT4, quiet=True)}
    ms = timed_in_turns({k: (lambda cm=cm: cm(x)) for k, cm in models.items()}, runs)
    ref = models["fp32"](x)
    lines = ["## GEMV chain: 4 x Linear(4096, 4096), batch 1", "",
             "| model | ms / run | speed-up vs fp32 | weights read GB/s | artifact MiB | size vs fp32 | max abs err "
             "| SQNR dB |",
             "|---|---|---|---|---|---|---|---|"]
    size32 = artifact_bytes(models["fp32"])
    for name, cm in models.items():
        size = artifact_bytes(cm)
        err, sqnr = errors(ref, cm(x))
        weight_bytes = sum(w.nbytes for w in cm.weights.values())
        lines.append(f"| {name} | {ms[name]:.2f} | {ms['fp32'] / ms[name]:.2f}x | {weight_bytes / ms[name] / 1e6:.1f} | "
                     f"{size / 2**20:.1f} | {size / size32:.3f}x | {err:.3g} | {sqnr:.1f} |")
    return lines + [""]


# ---------------------------------------------------------------- BERT-base W8A8 vs ONNX Runtime

def bench_bert(runs: int, threads: int) -> list[str]:
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from tests.model_zoo import build, eager_outputs

    module, inputs = build("bert")
    np_inputs = [t.numpy() for t in inputs]
    ref = eager_outputs(module, inputs)[0]
    tmp = tempfile.mkdtemp(prefix="leptonc-precision-")
    fp32_path, q_path = os.path.join(tmp, "bert.onnx"), os.path.join(tmp, "bert-qdynamic.onnx")
    torch.onnx.export(module, inputs, fp32_path, dynamo=True, verbose=False)
    quantize_dynamic(fp32_path, q_path, weight_type=QuantType.QInt8)
    ort32, ortq = ort_session(fp32_path, threads), ort_session(q_path, threads)
    feed = {i.name: a for i, a in zip(ort32.get_inputs(), np_inputs)}
    graph = leptonc.api.import_graph(module, inputs)
    lep32 = leptonc.compile(graph, np_inputs, quiet=True)
    lepq = leptonc.compile(graph, np_inputs, passes=W8A8, quiet=True)
    systems = {"onnxruntime fp32": lambda: ort32.run(None, feed),
               "onnxruntime quantize_dynamic": lambda: ortq.run(None, feed),
               "leptonc fp32": lambda: lep32(*np_inputs),
               "leptonc W8A8 dynamic": lambda: lepq(*np_inputs)}
    ms = timed_in_turns(systems, runs, pause=PAUSE_S)
    lines = ["## BERT-base, batch 1, seq 128: W8A8 dynamic vs ONNX Runtime quantize_dynamic", "",
             "| system | ms / run | speed-up vs ORT quantize_dynamic | max abs err vs fp32 eager | SQNR dB |",
             "|---|---|---|---|---|"]
    for name, fn in systems.items():
        out = fn()
        y = out[0] if isinstance(out, (list, tuple)) else out
        err, sqnr = errors(ref, y)
        lines.append(f"| {name} | {ms[name]:.2f} | {ms['onnxruntime quantize_dynamic'] / ms[name]:.2f}x | "
                     f"{err:.3g} | {sqnr:.1f} |")
    return lines + [""]


# ---------------------------------------------------------------- GPT-2 int4 decode step

def bench_gpt2(runs: int) -> list[str]:
    import torch
    from transformers import GPT2Config, GPT2Model

    from tests.model_zoo import eager_outputs

    torch.manual_seed(0)
    module = GPT2Model(GPT2Config(use_cache=False)).eval()
    inputs = (torch.tensor([[464]]),)
    np_inputs = [t.numpy() for t in inputs]
    ref = eager_outputs(module, inputs)[0]
    graph = leptonc.api.import_graph(module, inputs)
    models = {"fp32": leptonc.compile(graph, np_inputs, quiet=True),
              "int8 weight-only": leptonc.compile(graph, np_inputs, passes=INT8, quiet=True),
              "int4 weight-only (g128)": leptonc.compile(graph, np_inputs, passes=INT4, quiet=True)}
    ms = timed_in_turns({k: (lambda cm=cm: cm(*np_inputs)) for k, cm in models.items()}, runs)
    lines = ["## GPT-2 (124M), decode step: batch 1, seq 1", "",
             "| model | ms / step | tokens / s | speed-up vs fp32 | max abs err vs fp32 eager | SQNR dB |",
             "|---|---|---|---|---|---|"]
    for name, cm in models.items():
        err, sqnr = errors(ref, cm(*np_inputs))
        lines.append(f"| {name} | {ms[name]:.2f} | {1e3 / ms[name]:.1f} | {ms['fp32'] / ms[name]:.2f}x | "
                     f"{err:.3g} | {sqnr:.1f} |")
    return lines + [""]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default="gemv,bert,gpt2")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--append", action="store_true", help="add to today's results file instead of replacing it")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    parts = [x for x in args.parts.split(",") if x]
    command = " ".join(["python benchmarks/precision.py"] + list(argv if argv is not None else sys.argv[1:]))
    lines = [f"# Precision lowering on {cpu_name()}, {args.threads} threads", ""] if not args.append else []
    benches = {"gemv": lambda: bench_gemv(args.runs), "bert": lambda: bench_bert(args.runs, args.threads),
               "gpt2": lambda: bench_gpt2(args.runs)}
    for part in parts:
        if part not in benches:
            p.error(f"unknown part {part!r} (parts: {', '.join(benches)})")
    for part in parts:
        print(f"measuring {part} ...", file=sys.stderr, flush=True)
        lines += benches[part]()
        lines += [f"Medians of {args.runs} runs in turns; `{command}` at "
                  f"{datetime.datetime.now(datetime.timezone.utc):%H:%M} UTC, load average "
                  f"{os.getloadavg()[0]:.1f}.", ""]
    text = "\n".join(lines) + "\n"
    print(text)
    path = write_results(text, os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"), "precision",
                         append=args.append)
    print("written to", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
