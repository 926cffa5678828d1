"""The three most expensive kernels of every suite model on the cpu target, from leptonc's per-kernel
profile (what `leptonc run --profile` prints); writes benchmarks/results/<date>-profile-<cpu>.md.

    python benchmarks/top_kernels.py [--models bert,resnet50] [--runs 10] [--top 3]

Kernels that share one C function (repeated layers) are summed under their shared code, so that a
row reads "the 12 FFN-up GEMMs of BERT take 31%"; the total of the kernels is set against a whole run.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.suite import SUITE  # noqa: E402
from leptonc.bench import cpu_name, write_results  # noqa: E402
from leptonc.runtime.report import median_run_seconds  # noqa: E402


def kernel_groups(cm, rows) -> list[tuple[str, int, float]]:
    """(title, count, seconds) of the kernels grouped by what they compute (the name without its index)."""
    groups: dict[str, list] = defaultdict(lambda: [0, 0.0])
    for name, seconds in rows:
        title = name.split("_", 1)[1] if "_" in name else name
        groups[title][0] += 1
        groups[title][1] += seconds
    return sorted(((t, n, s) for t, (n, s) in groups.items()), key=lambda g: -g[2])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(SUITE), help="comma-separated subset of: " + ", ".join(SUITE))
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--top", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import leptonc

    lines = [f"# Most expensive kernels per model, cpu target, {args.threads} threads, {cpu_name()}", "",
             "Kernels of the same computation (a model's repeated layers) are summed; % of the kernels' total.", ""]
    for name in [m for m in args.models.split(",") if m]:
        module, inputs = SUITE[name]()
        cm = leptonc.compile(module, inputs, target="cpu", quiet=True)
        xs = [x.numpy() for x in inputs]
        median_run_seconds(cm, xs, args.runs)  # warm-up: the first runs after a compile measured up to 2x slower
        rows = cm.profile(*xs, repeat=args.runs)
        total = sum(s for _, s in rows)
        run = median_run_seconds(cm, xs, args.runs)
        lines += [f"## {name}: kernels {total * 1e3:.2f} ms of a {run * 1e3:.2f} ms run, {len(rows)} kernels", "",
                  "| kernels | count | ms | % |", "|---|---|---|---|"]
        for title, count, seconds in kernel_groups(cm, rows)[:args.top]:
            lines.append(f"| {title} | {count} | {seconds * 1e3:.2f} | {100 * seconds / total:.1f} |")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    print("written to", write_results(text, os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"),
                                      "profile"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
