"""Side-by-side benchmarks: leptonc against eager PyTorch, torch.compile and ONNX Runtime.

Every system runs in one process, on the same inputs, with the same thread
count; each is warmed up, then timed over repeated runs. Results are reported
as ratios (times alone mean little on a shared, noisy machine). This module
is tooling: it imports torch and onnxruntime, which the runtime never needs.
"""
from __future__ import annotations

import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

SYSTEMS = ("eager", "inductor", "onnxruntime", "leptonc")
LOAD_AT_START = os.getloadavg()  # before this process does any work (its own threads raise it later)
PAUSE_S = 0.1  # before each timed run: the previous system's idle threads stop spinning and sleep (ORT's spin ~45 ms)


@dataclass
class Timing:
    system: str
    times_ms: list[float] = field(default_factory=list)
    compile_s: float | None = None
    max_error: float | None = None  # against eager PyTorch (or the reference interpreter)
    error: str | None = None        # why the system could not run this model

    @property
    def median(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def min(self) -> float:
        return min(self.times_ms)


@dataclass
class ModelResult:
    name: str
    timings: list[Timing]
    flops: float | None = None  # per run, when known: gives GFLOP/s

    def ok(self) -> list[Timing]:
        return [t for t in self.timings if t.error is None and t.times_ms]

    def ratio(self, system: str, other: str) -> float | None:
        """How many times faster `system` is than `other` (median over median)."""
        by = {t.system: t for t in self.ok()}
        if system not in by or other not in by:
            return None
        return by[other].median / by[system].median


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, total: int, enabled: bool = True):
        self.total, self.done, self.enabled = total, 0, enabled and total > 0

    def step(self, label: str) -> None:
        self.done += 1
        if self.enabled:
            width = 30
            filled = width * self.done // self.total
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {label[:40]:<40}")
            sys.stderr.flush()
            if self.done == self.total:
                sys.stderr.write("\n")


def _first(out):
    """The first output as numpy, whatever container a system returns."""
    while isinstance(out, (list, tuple)) or hasattr(out, "to_tuple"):
        out = out.to_tuple()[0] if hasattr(out, "to_tuple") else out[0]
    if hasattr(out, "last_hidden_state"):
        out = out.last_hidden_state
    return out.detach().numpy() if hasattr(out, "detach") else np.asarray(out)


def _max_error(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b))) if a.shape == b.shape else float("inf")


def bench_torch_model(name: str, module, example_inputs: tuple, systems=SYSTEMS, runs: int = 10,
                      warmup: int = 3, threads: int = 2, progress: Progress | None = None,
                      prepare=None) -> ModelResult:
    """Time a torch.nn.Module under each system on the same inputs.

    Every system is prepared (compiled) and warmed up first; then the timed runs go round the systems in
    turn, so that a slow spell of a shared machine falls on all of them alike. Each timed run follows a
    short pause, which lets the thread pools of the system before stop spinning, and an untimed run, which
    wakes the system's own threads: what is timed is a call in a back-to-back stream of calls. `prepare(system, module,
    inputs, threads)` gives (a function running one inference, compile seconds or None); the default
    knows SYSTEMS."""
    import torch

    torch.set_num_threads(threads)
    with torch.inference_mode():
        expected = _first(module(*example_inputs))
    timings, runners = [], {}
    for system in systems:
        t = Timing(system)
        try:
            run, t.compile_s = (prepare or prepare_system)(system, module, example_inputs, threads)
            t.max_error = _max_error(_first(run()), expected)
            for _ in range(warmup):
                run()
            runners[system] = run
        except Exception as e:  # a system that cannot run a model is reported, not fatal
            t.error = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        timings.append(t)
        if progress:
            progress.step(f"{name}: {system}")
    for _ in range(runs):
        for t in timings:
            if t.system in runners:
                time.sleep(PAUSE_S)
                runners[t.system]()  # untimed: wakes this system's threads, as in back-to-back serving
                t0 = time.perf_counter()
                runners[t.system]()
                t.times_ms.append((time.perf_counter() - t0) * 1e3)
    return ModelResult(name, timings, model_flops(module, example_inputs))


def model_flops(module, example_inputs: tuple) -> float | None:
    """Floating-point operations of one inference (matmuls and convolutions), by torch's flop counter."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            module(*example_inputs)
    except Exception:  # a model the counter cannot trace still gets timed
        return None
    return float(counter.get_total_flops()) or None


def prepare_system(system: str, module, inputs: tuple, threads: int):
    """(a zero-argument function that runs one inference, compile seconds or None)."""
    import torch

    np_inputs = [x.numpy() for x in inputs]

    if system == "eager":
        def run():
            with torch.inference_mode():
                return module(*inputs)
        return run, None
    if system == "inductor":
        import torch.compiler

        compiled = torch.compile(module)
        t0 = time.perf_counter()
        with torch.inference_mode(), torch.compiler.config.patch(force_disable_caches=True):
            compiled(*inputs)  # compile time is measured cold, as leptonc's is
        seconds = time.perf_counter() - t0

        def run():
            with torch.inference_mode():
                return compiled(*inputs)
        return run, seconds
    if system == "onnxruntime":
        path = os.path.join(tempfile.mkdtemp(prefix="leptonc-bench-"), "model.onnx")
        torch.onnx.export(module, inputs, path, dynamo=True, verbose=False)
        t0 = time.perf_counter()
        session = ort_session(path, threads)
        seconds = time.perf_counter() - t0
        feed = {i.name: a for i, a in zip(session.get_inputs(), np_inputs)}
        return (lambda: session.run(None, feed)), seconds
    if system == "leptonc":
        import leptonc

        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        t0 = time.perf_counter()
        cm = leptonc.compile(module, inputs, target="cpu", cache=False)  # cold: no build cache
        seconds = time.perf_counter() - t0
        return (lambda: cm(*np_inputs)), seconds
    raise ValueError(f"unknown system {system!r} (known: {', '.join(SYSTEMS)})")


def ort_session(path: str, threads: int):
    """An ONNX Runtime CPU session with every graph optimization, `threads` intra-op threads, one inter-op."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def median_seconds_in_turns(models, x, runs: int, calls: int = 1) -> list[float]:
    """Median seconds of one call of each model on x, the models taking turns (`calls` calls a turn)."""
    for model in models:
        model(x)
    times = [[] for _ in models]
    for _ in range(runs):
        for i, model in enumerate(models):
            t0 = time.perf_counter()
            for _ in range(calls):
                model(x)
            times[i].append((time.perf_counter() - t0) / calls)
    return [statistics.median(t) for t in times]


def cpu_notes() -> list[str]:
    """The header lines of a CPU results table: the machine, how it was timed, what compile time counts."""
    return [f"- cpu: {cpu_name()}",
            "- timing: medians (and mins) of runs taken in turns across the systems, same inputs and threads",
            "- compile s: cold for torch.compile (caches disabled) and leptonc (no compile or build cache; the GEMM "
            "driver it links, built once per machine, is reused); session creation for ONNX Runtime",
            f"- load average (1, 5, 15 min) when the run started: {', '.join(f'{x:.1f}' for x in LOAD_AT_START)} "
            "(above ~0.5, other work shared the cores)"]


def format_table(results: list[ModelResult], title: str = "", notes: list[str] | None = None,
                 summary: bool = True) -> str:
    """A markdown table per model: system | median ms | min ms | vs eager | vs best other | compile s | error,
    under a header (`notes`: its lines; the CPU's by default) and over the geomean summary (`summary`)."""
    lines = [f"# {title}" if title else "# leptonc benchmark", "",
             f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
             *(cpu_notes() if notes is None else notes), ""]
    for r in results:
        lines += [f"## {r.name}", "", "| system | median ms | min ms | ratio vs eager | ratio vs best other "
                  "| compile s | max err | note |", "|---|---|---|---|---|---|---|---|"]
        for t in r.timings:
            if t.error or not t.times_ms:
                lines.append(f"| {t.system} | - | - | - | - | - | - | {t.error or 'not run'} |")
                continue
            others = [o.median for o in r.ok() if o.system != t.system]
            vs_eager = r.ratio(t.system, "eager")
            vs_best = (min(others) / t.median) if others else None
            gflops = f"{r.flops / t.median / 1e6:.1f} GFLOP/s" if r.flops else ""
            lines.append(f"| {t.system} | {t.median:.3f} | {t.min:.3f} | {_ratio(vs_eager)} | {_ratio(vs_best)} | "
                         f"{_num(t.compile_s, '.2f')} | {_num(t.max_error, '.1e')} | {gflops} |")
        lines.append("")
    if summary:
        lines += geomean_summary(results)
    return "\n".join(lines) + "\n"


def geomean_summary(results: list[ModelResult]) -> list[str]:
    """Geometric-mean speed of leptonc over each other system, over the models both ran."""
    out = ["## geomean: leptonc speedup", ""]
    for other in SYSTEMS:
        if other == "leptonc":
            continue
        ratios = [r.ratio("leptonc", other) for r in results]
        ratios = [x for x in ratios if x]
        if ratios:
            out.append(f"- vs {other}: {float(np.exp(np.mean(np.log(ratios)))):.2f}x over {len(ratios)} models "
                       f"(worst {min(ratios):.2f}x)")
    return out + [""]


def _ratio(x) -> str:
    return "-" if x is None else f"{x:.2f}x"


def _num(x, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def write_results(text: str, directory: str, kind: str = "", device: str | None = None,
                  append: bool = False) -> str:
    """Write a results table to `directory`/<date>-[<kind>-]<device>.md (device: this CPU by default), or
    add it to that file (append: parts of one benchmark measured in separate runs)."""
    os.makedirs(directory, exist_ok=True)
    slug = "".join(c if c.isalnum() else "-" for c in (device or cpu_name())).strip("-").lower()[:40]
    path = os.path.join(directory, f"{datetime.date.today().isoformat()}-{kind + '-' if kind else ''}{slug}.md")
    with open(path, "a" if append else "w") as f:
        f.write(text)
    return path
