"""Run the whole CPU suite side by side and write benchmarks/results/<date>-<cpu>.md.

    python benchmarks/run.py [--models mlp,bert] [--systems eager,inductor,onnxruntime,leptonc] [--runs 10]
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.suite import SUITE  # noqa: E402
from leptonc.bench import SYSTEMS, Progress, bench_torch_model, format_table, write_results  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(SUITE), help="comma-separated subset of: " + ", ".join(SUITE))
    p.add_argument("--systems", default=",".join(SYSTEMS))
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in SUITE]
    if unknown:
        p.error(f"unknown models {unknown}; the suite has {list(SUITE)}")
    systems = [s for s in args.systems.split(",") if s]
    progress = Progress(len(models) * len(systems))
    results = []
    for name in models:
        module, inputs = SUITE[name]()
        results.append(bench_torch_model(name, module, inputs, systems, runs=args.runs, threads=args.threads,
                                         progress=progress))
    text = format_table(results, f"CPU suite, {args.threads} threads per system")
    print(text)
    print("written to", write_results(text, os.path.join(os.path.dirname(__file__), "results")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
