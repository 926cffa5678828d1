"""The XLA path (leptonc's stablehlo target) against eager PyTorch and leptonc's CPU backend,
side by side in one run on the CPU suite; writes benchmarks/results/<date>-xla-<cpu>.md.

    python benchmarks/xla.py [--models mlp,bert] [--runs 10] [--threads 2]

Every system gets the same inputs and thread count, is warmed up, then timed;
the table reports medians and ratios. A system that cannot run a model is
reported with its error, not fatal.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.suite import SUITE  # noqa: E402
from leptonc.bench import (ModelResult, Progress, bench_torch_model, format_table, prepare_system,  # noqa: E402
                           write_results)

SYSTEMS = ("eager", "leptonc", "xla")  # leptonc = the CPU backend, xla = the stablehlo target run by XLA


def set_threads(threads: int) -> None:
    """One thread count for torch and OpenMP (the CPU backend). XLA's CPU client sizes its own pool
    to the machine's cores, so compare at --threads equal to the core count."""
    import torch

    torch.set_num_threads(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))


def prepare(system: str, module, inputs: tuple, threads: int):
    """(a zero-argument function that runs one inference, compile seconds or None); eager and leptonc (the
    CPU backend) as in every benchmark, xla = the stablehlo target."""
    if system != "xla":
        return prepare_system(system, module, inputs, threads)
    import leptonc

    np_inputs = [x.numpy() for x in inputs]
    t0 = time.perf_counter()
    compiled = leptonc.compile(module, inputs, target="stablehlo")
    compiled(*np_inputs)  # XLA compiles on the first call of a size
    return (lambda: compiled(*np_inputs)), time.perf_counter() - t0


def xla_summary(results: list[ModelResult]) -> str:
    """Geometric-mean speed of the XLA path over eager and over the CPU backend."""
    lines = ["## geomean: xla speedup", ""]
    for other in ("eager", "leptonc"):
        ratios = [r for r in (res.ratio("xla", other) for res in results) if r]
        if ratios:
            lines.append(f"- vs {other}: {float(np.exp(np.mean(np.log(ratios)))):.2f}x over {len(ratios)} models "
                         f"(worst {min(ratios):.2f}x, best {max(ratios):.2f}x)")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(SUITE), help="comma-separated subset of: " + ", ".join(SUITE))
    p.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset of: " + ", ".join(SYSTEMS))
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    systems = [s for s in args.systems.split(",") if s]
    unknown = [m for m in models if m not in SUITE] + [s for s in systems if s not in SYSTEMS]
    if unknown:
        p.error(f"unknown models or systems {unknown}")
    set_threads(args.threads)
    progress = Progress(len(models) * len(systems))
    results = []
    for name in models:
        module, inputs = SUITE[name]()
        results.append(bench_torch_model(name, module, inputs, systems, args.runs, threads=args.threads,
                                         progress=progress, prepare=prepare))
    text = format_table(results, f"XLA path (stablehlo target) vs eager and the CPU backend, "
                                 f"{args.threads} threads (XLA: {os.cpu_count()} cores)") + "\n" + xla_summary(results)
    print(text)
    path = write_results(text, os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"), "xla")
    print("written to", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
