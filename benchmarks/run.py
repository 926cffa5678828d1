"""Run the whole CPU suite side by side and write benchmarks/results/<date>-<cpu>.md.

    python benchmarks/run.py [--models mlp,bert] [--systems eager,inductor,onnxruntime,leptonc] [--runs 10]

The suite's `_bN` entries (BERT-base and ResNet-50 at batch 8 and 32) also get a table of items per second.
"""
from __future__ import annotations

import argparse
import os
import re
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
    text = format_table(results, f"CPU suite, {args.threads} threads per system") + throughput(results)
    print(text)
    print("written to", write_results(text, os.path.join(os.path.dirname(__file__), "results")))
    return 0


def throughput(results) -> str:
    """Items per second of each system on the models run at a batch above 1 (the suite's `_bN` entries)."""
    batched = [(r, int(r.name.rsplit("_b", 1)[1])) for r in results if re.fullmatch(r".+_b\d+", r.name)]
    if not batched:
        return ""
    systems = list(dict.fromkeys(t.system for r, _ in batched for t in r.ok()))
    lines = ["", "## throughput, items/s (median run)", "", "| model | batch | " + " | ".join(systems) + " |",
             "|---|---|" + "---|" * len(systems)]
    for r, batch in batched:
        by = {t.system: t for t in r.ok()}
        cells = [f"{batch * 1e3 / by[s].median:.1f}" if s in by else "-" for s in systems]
        lines.append(f"| {r.name} | {batch} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
