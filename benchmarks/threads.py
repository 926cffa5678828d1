"""Callers sharing one compiled model: calls per second of 1 thread and of 2 threads calling the same model.

    python benchmarks/threads.py [--batch 32] [--hidden 1024] [--seconds 1] [--rounds 5] [--omp 1,2]

The model is an MLP (512 -> hidden -> hidden -> 512, ReLU) at a fixed batch, compiled for the cpu target. Each
call takes a scratch arena from the model's pool, so callers share the weights and nothing they write, and the
library runs with the GIL let go: two callers run at once. Inside a call the kernels run on OpenMP threads:
libgomp gives every thread that opens a parallel region a team of its own, of omp_get_max_threads() threads
(OMP_NUM_THREADS, else one per core), so k callers keep k times that many threads busy. Each OMP_NUM_THREADS
of --omp runs in a fresh process (libgomp reads it once), taking 1 and 2 callers in turns for --rounds rounds
of --seconds each; the table gives the median calls/s over the rounds, the ratio of 2 callers to 1, and
the cores the process kept busy (its CPU seconds per second: on a shared machine, what it was given).
Writes benchmarks/results/<date>-threads-<cpu>.md.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def measure(batch: int, hidden: int, seconds: float, rounds: int) -> dict:
    """In this process: compile the model, then calls/s of 1 and 2 callers, taken in turns."""
    import torch

    import leptonc

    torch.manual_seed(0)
    layers = [torch.nn.Linear(512, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
              torch.nn.Linear(hidden, 512)]
    module = torch.nn.Sequential(*layers).eval()
    x = torch.randn(batch, 512)
    cm = leptonc.compile(module, (x,), quiet=True)
    xs = x.numpy()
    want = cm(xs)
    for _ in range(5):
        cm(xs)
    start = time.perf_counter()
    cm(xs)
    one_call = time.perf_counter() - start
    rates: dict[int, list[float]] = {1: [], 2: []}
    cores: dict[int, list[float]] = {1: [], 2: []}
    wrong = 0
    for _ in range(rounds):
        for callers in (1, 2):
            counts = [0] * callers
            bad = [0] * callers
            gate = threading.Barrier(callers + 1)
            stop = threading.Event()

            def work(i: int) -> None:
                gate.wait()
                while not stop.is_set():
                    bad[i] += not np.array_equal(cm(xs), want)
                    counts[i] += 1

            threads = [threading.Thread(target=work, args=(i,)) for i in range(callers)]
            for t in threads:
                t.start()
            gate.wait()
            t0, cpu0 = time.perf_counter(), time.process_time()
            time.sleep(seconds)
            stop.set()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            rates[callers].append(sum(counts) / wall)
            cores[callers].append((time.process_time() - cpu0) / wall)
            wrong += sum(bad)
    return {"omp_threads": int(cm.executor.lib.omp_get_max_threads()), "ms_per_call": one_call * 1e3,
            "one": float(np.median(rates[1])), "two": float(np.median(rates[2])),
            "cores_one": float(np.median(cores[1])), "cores_two": float(np.median(cores[2])), "wrong": wrong}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--omp", default="1,2", help="OMP_NUM_THREADS values, one process each")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.batch, args.hidden, args.seconds, args.rounds)))
        return
    from leptonc.bench import cpu_name

    rows = []
    for n in args.omp.split(","):
        cmd = [sys.executable, __file__, "--child", "--batch", str(args.batch), "--hidden", str(args.hidden),
               "--seconds", str(args.seconds), "--rounds", str(args.rounds)]
        out = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS=n), capture_output=True, text=True,
                             check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    lines = [f"# Callers sharing one model: MLP 512-{args.hidden}-{args.hidden}-512, batch {args.batch}",
             "", f"{cpu_name()}, {os.cpu_count()} cores; `python benchmarks/threads.py --batch {args.batch} "
             f"--hidden {args.hidden} --seconds {args.seconds} --rounds {args.rounds} --omp {args.omp}`", "",
             "| OpenMP threads per call | ms per call (1 caller) | calls/s, 1 caller | calls/s, 2 callers | "
             "2 callers / 1 | cores busy, 1 caller | cores busy, 2 callers | wrong results |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['omp_threads']} | {r['ms_per_call']:.2f} | {r['one']:.1f} | {r['two']:.1f} | "
                     f"{r['two'] / r['one']:.2f}x | {r['cores_one']:.2f} | {r['cores_two']:.2f} | {r['wrong']} |")
    text = "\n".join(lines) + "\n"
    print(text)
    cpu = "".join(c if c.isalnum() else "-" for c in cpu_name()).strip("-").lower()[:40]
    out = os.path.join(ROOT, "benchmarks", "results", f"{datetime.date.today().isoformat()}-threads-{cpu}.md")
    with open(out, "w") as f:
        f.write(text)
    print("written to", out)


if __name__ == "__main__":
    main()
