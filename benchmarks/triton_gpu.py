"""The Triton target on a CUDA GPU against eager PyTorch and torch.compile (inductor: default, and
mode="reduce-overhead", which replays CUDA graphs as leptonc does), side by side in one run on the CPU
suite's models, fp32 and fp16, batch 1 and 32; writes benchmarks/results/<date>-triton-<gpu>.md.

    python benchmarks/triton_gpu.py [--models mlp,bert] [--dtypes fp32,fp16] [--batches 1,32] [--runs 20] [--tf32]

Every system gets the same device tensors, is warmed up, then timed with the
GPU synchronized after each run; the tables give medians, ratios, and each
system's max error against eager PyTorch in the same precision. --tf32 lets
both torch and leptonc's tl.dot use TF32 for fp32 (declared tolerance:
leptonc.codegen.triton.TF32_TOLERANCE). Without a GPU the script says so
and exits cleanly: there is nothing to measure.
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.suite import SUITE  # noqa: E402
from leptonc.bench import (ModelResult, Progress, Timing, _first, _max_error, cpu_name,  # noqa: E402
                           format_table, write_results)

SYSTEMS = ("eager", "inductor", "inductor-cudagraphs", "leptonc")


def at_batch(inputs: tuple, batch: int) -> tuple:
    """The example inputs with their leading (batch) dim repeated or cut to `batch`."""
    out = []
    for x in inputs:
        reps = -(-batch // x.shape[0])
        out.append(x.repeat(reps, *([1] * (x.dim() - 1)))[:batch].contiguous())
    return tuple(out)


def to_device(inputs: tuple, dtype) -> tuple:
    return tuple((x.to(dtype) if x.is_floating_point() else x).cuda() for x in inputs)


def prepare(system: str, module, cpu_inputs: tuple, gpu_inputs: tuple, dtype, tf32: bool):
    """(a zero-argument function running one inference on the GPU, compile seconds or None)."""
    import torch

    t0 = time.perf_counter()
    if system == "eager":
        gpu_module = module.to(dtype).cuda()
        return (lambda: gpu_module(*gpu_inputs)), None
    if system.startswith("inductor"):
        mode = "reduce-overhead" if system == "inductor-cudagraphs" else None
        compiled = torch.compile(module.to(dtype).cuda(), mode=mode)
        with torch.inference_mode():
            compiled(*gpu_inputs)
        return (lambda: compiled(*gpu_inputs)), time.perf_counter() - t0
    import leptonc

    cpu_module = module.to(dtype).cpu()
    example = tuple(x.to(dtype) if x.is_floating_point() else x for x in cpu_inputs)
    cm = leptonc.compile(cpu_module, example, target="triton", quiet=True)
    if tf32:
        cm.executor.module.DOT_PRECISION = "tf32"
    cm.run_torch(*gpu_inputs)  # Triton compiles each kernel on its first launch
    torch.cuda.synchronize()
    return (lambda: cm.run_torch(*gpu_inputs)), time.perf_counter() - t0


def time_gpu(fn, runs: int, warmup: int = 5) -> list[float]:
    import torch

    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        torch.cuda.synchronize()
        out = []
        for _ in range(runs):
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            out.append((time.perf_counter() - t0) * 1e3)
    return out


def bench(name: str, build, dtype_name: str, batch: int, runs: int, tf32: bool, progress: Progress) -> ModelResult:
    import torch

    dtype = {"fp32": torch.float32, "fp16": torch.float16}[dtype_name]
    module, inputs = build()
    cpu_inputs = at_batch(inputs, batch)
    gpu_inputs = to_device(cpu_inputs, dtype)
    timings = []
    expected = None
    for system in SYSTEMS:
        t = Timing(system)
        try:
            run, t.compile_s = prepare(system, copy.deepcopy(module), cpu_inputs, gpu_inputs, dtype, tf32)
            with torch.inference_mode():
                got = _to_cpu(run())
            if expected is None:
                expected = got
            t.max_error = _max_error(_first(got), _first(expected))
            t.times_ms = time_gpu(run, runs)
        except Exception as e:  # reported in the table
            t.error = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        timings.append(t)
        progress.step(f"{name} {dtype_name} batch {batch}: {system}")
    return ModelResult(f"{name} {dtype_name} batch {batch}", timings)


def _to_cpu(out):
    """Outputs as float32 CPU tensors (any container), for comparison."""
    while isinstance(out, (list, tuple)) or hasattr(out, "to_tuple"):
        out = out.to_tuple()[0] if hasattr(out, "to_tuple") else out[0]
    if hasattr(out, "last_hidden_state"):
        out = out.last_hidden_state
    return out.detach().float().cpu()


def gpu_notes(gpu: str, runs: int) -> list[str]:
    """The header lines of the results: the GPU, how it was timed, what compile time counts."""
    return [f"- gpu: {gpu} (host: {cpu_name()})",
            f"- timing: medians (and mins) of {runs} runs after 5 warm-ups, the GPU synchronized after each run; "
            "each system in turn, on the same device tensors",
            "- compile s: the first call, compiling included: torch.compile (default, and mode=reduce-overhead) "
            "and leptonc (compile, then Triton's compilation of each kernel at its first launch)",
            "- leptonc runs each model as one CUDA graph after its first two calls (runtime.py in "
            "leptonc/codegen/triton), as torch.compile does in mode=reduce-overhead"]


def summary(results: list[ModelResult]) -> str:
    lines = ["## geomean: leptonc (triton) speedup, per precision and batch", ""]
    groups: dict[str, list[ModelResult]] = {}
    for r in results:
        groups.setdefault(" ".join(r.name.split()[1:]), []).append(r)
    for key, rs in [("all", results)] + sorted(groups.items()):
        for other in ("inductor", "inductor-cudagraphs", "eager"):
            ratios = [x for x in (r.ratio("leptonc", other) for r in rs) if x]
            if ratios:
                lines.append(f"- {key}, vs {other}: {float(np.exp(np.mean(np.log(ratios)))):.2f}x over "
                             f"{len(ratios)} cases (worst {min(ratios):.2f}x, median {statistics.median(ratios):.2f}x)")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(SUITE), help="comma-separated subset of: " + ", ".join(SUITE))
    p.add_argument("--dtypes", default="fp32,fp16")
    p.add_argument("--batches", default="1,32")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--tf32", action="store_true", help="TF32 matmuls in torch and in leptonc's tl.dot (fp32)")
    args = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1":
        print("triton_gpu: no CUDA GPU here (or TRITON_INTERPRET=1 is set); this benchmark measures the triton "
              "target on a GPU, so nothing was measured. The target's correctness tests run without one: "
              "pytest tests/codegen/test_triton_models.py")
        return 0
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in SUITE]
    if unknown:
        p.error(f"unknown models {unknown}")
    dtypes = [d for d in args.dtypes.split(",") if d]
    batches = [int(b) for b in args.batches.split(",") if b]
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    progress = Progress(len(models) * len(dtypes) * len(batches) * len(SYSTEMS))
    gpu = torch.cuda.get_device_name()
    title = f"triton target vs eager CUDA and torch.compile on {gpu}{' (TF32 allowed)' if args.tf32 else ''}"
    results = []
    for name in models:
        for d in dtypes:
            for b in batches:
                results.append(bench(name, SUITE[name], d, b, args.runs, args.tf32, progress))
                # the tables so far, rewritten after each case: a run cut short still leaves what it measured
                text = format_table(results, title, gpu_notes(gpu, args.runs), summary=False) + "\n" + summary(results)
                path = write_results(text, os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"),
                                     "triton", gpu)
    print(text)
    print("written to", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
