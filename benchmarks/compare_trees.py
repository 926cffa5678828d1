"""Idle speed of two leptonc source trees (say, a commit before a change and the working tree), in turns.

    git worktree add /tmp/before <commit>
    python benchmarks/compare_trees.py /tmp/before . --models gpt2,bert --rounds 10 [--busy 0,1,2]

For each model, each tree runs in a process of its own (so that one tree's thread pools never share a process
with the other's), which compiles the suite model (benchmarks/suite.py of its tree) for the cpu target and then
times `--calls` back-to-back calls whenever the parent asks. The parent asks the two processes in turns,
`--rounds` times, so that both trees see the same load when the machine is shared: compare the ratio, taken in
the same minutes, rather than the milliseconds. With `--busy`, the turns are taken again beside each count of
busy-looping processes (benchmarks/contention.py's), so that a change's effect on a busy machine shows too. The
table gives the median of each tree's calls, the first and last quartile of its turns' medians, and after / before.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.contention import BUSY_SETTLE_S, busy_processes, stop  # noqa: E402

CHILD = """
import statistics, sys, time
tree, name = sys.argv[1], sys.argv[2]
sys.path.insert(0, tree)
import leptonc
from benchmarks.suite import SUITE
assert leptonc.__file__.startswith(tree), leptonc.__file__
module, inputs = SUITE[name]()[:2]
args = [x.numpy() for x in inputs]
cm = leptonc.compile(module, inputs, target="cpu", quiet=True)
for _ in range(3):
    cm(*args)
print("ready", flush=True)
for line in sys.stdin:
    times = []
    for _ in range(int(line)):
        t0 = time.perf_counter()
        cm(*args)
        times.append((time.perf_counter() - t0) * 1e3)
    print(" ".join(f"{t:.4f}" for t in times), flush=True)
"""
PAUSE_S = 0.1  # before each turn: the other tree's pool stops spinning


class Tree:
    """A process holding `model` compiled by the leptonc in `tree`, timing calls on request."""

    def __init__(self, tree: str, model: str):
        self.tree = tree
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD, tree, model], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"{model} with {tree} failed (see its error above)")

    def time(self, calls: int) -> list[float]:
        self.proc.stdin.write(f"{calls}\n")
        self.proc.stdin.flush()
        return [float(t) for t in self.proc.stdout.readline().split()]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def compare(trees: list[str], model: str, busy: list[int], rounds: int, calls: int) -> dict[int, list]:
    """{busy processes: per tree, per round, the ms of each call}."""
    procs = [Tree(t, model) for t in trees]
    out = {}
    try:
        for n in busy:
            loops = busy_processes(n)
            times: list[list[list[float]]] = [[] for _ in trees]
            try:
                time.sleep(BUSY_SETTLE_S if n else 0)
                for r in range(rounds):
                    order = range(len(procs)) if r % 2 == 0 else reversed(range(len(procs)))  # neither always first
                    for i in order:
                        time.sleep(PAUSE_S)
                        times[i].append(procs[i].time(calls))
            finally:
                stop(loops)
            out[n] = times
    finally:
        for p in procs:
            p.close()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("before", help="a leptonc source tree (a git worktree of the older commit)")
    p.add_argument("after", help="another leptonc source tree")
    p.add_argument("--models", default="mlp,gemv_chain,gpt2,mobilenet_v2,bert")
    p.add_argument("--rounds", type=int, default=10, help="turns per tree")
    p.add_argument("--calls", type=int, default=5, help="back-to-back calls per turn")
    p.add_argument("--busy", default="0", help="counts of busy-looping processes beside the timed ones")
    args = p.parse_args(argv)
    trees = [os.path.abspath(args.before), os.path.abspath(args.after)]
    busy = [int(n) for n in args.busy.split(",")]
    print(f"load average at the start: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"| model | busy processes | {trees[0]} ms: median (turns' quartiles) "
          f"| {trees[1]} ms: median (turns' quartiles) | after / before |")
    print("|---|---|---|---|---|")
    for model in args.models.split(","):
        for n, times in compare(trees, model, busy, args.rounds, args.calls).items():
            medians = [statistics.median(t for turn in ts for t in turn) for ts in times]
            cells = []
            for ts, m in zip(times, medians):
                q = statistics.quantiles([statistics.median(turn) for turn in ts], n=4) if len(ts) > 1 else [m] * 3
                cells.append(f"{m:.2f} ({q[0]:.2f}-{q[2]:.2f})")
            print(f"| {model} | {n} | {cells[0]} | {cells[1]} | {medians[1] / medians[0]:.2f}x |", flush=True)
    print(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
