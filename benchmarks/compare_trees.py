"""Idle speed of two leptonc source trees (say, a commit before a change and the working tree), in turns.

    git worktree add /tmp/before <commit>
    python benchmarks/compare_trees.py /tmp/before . --models gpt2,bert --rounds 3

Each (tree, model) runs in a process of its own, taking turns with the other tree, so that one tree's thread
pools never share a process with the other's. A process compiles the suite model (benchmarks/suite.py of its
tree) for the cpu target, calls it a few times, then times `--calls` calls; the line printed per process is the
median in ms. The table gives every round's median, so that a bimodal tree shows as such.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

CHILD = """
import statistics, sys, time
tree, name, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, tree)
import leptonc
from benchmarks.suite import SUITE
assert leptonc.__file__.startswith(tree), leptonc.__file__
module, inputs = SUITE[name]()[:2]
args = [x.numpy() for x in inputs]
cm = leptonc.compile(module, inputs, target="cpu", quiet=True)
for _ in range(3):
    cm(*args)
times = []
for _ in range(calls):
    t0 = time.perf_counter()
    cm(*args)
    times.append(time.perf_counter() - t0)
print(statistics.median(times) * 1e3)
"""


def time_in_process(tree: str, model: str, calls: int) -> float:
    """Median ms of one call of `model` compiled by the leptonc in `tree`, in a fresh process."""
    out = subprocess.run([sys.executable, "-c", CHILD, tree, model, str(calls)], capture_output=True, text=True,
                         timeout=1800)
    if out.returncode:
        raise SystemExit(f"{model} with {tree} failed:\n{out.stderr[-2000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("before", help="a leptonc source tree (a git worktree of the older commit)")
    p.add_argument("after", help="another leptonc source tree")
    p.add_argument("--models", default="mlp,gemv_chain,gpt2,mobilenet_v2,bert")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--calls", type=int, default=30)
    args = p.parse_args(argv)
    trees = [os.path.abspath(args.before), os.path.abspath(args.after)]
    print(f"| model | {trees[0]} ms (each round) | {trees[1]} ms (each round) | after / before (medians) |")
    print("|---|---|---|---|")
    for model in args.models.split(","):
        times: list[list[float]] = [[], []]
        for _ in range(args.rounds):
            for i, tree in enumerate(trees):
                times[i].append(time_in_process(tree, model, args.calls))
                time.sleep(0.5)
        ratio = statistics.median(times[1]) / statistics.median(times[0])
        cells = [", ".join(f"{t:.2f}" for t in ts) for ts in times]
        print(f"| {model} | {cells[0]} | {cells[1]} | {ratio:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
