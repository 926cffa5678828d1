"""Speed on a busy machine: each model of the CPU suite alone, then beside one and two busy-looping processes,
and each system alone in its own process against interleaved in one process with the others.

    python benchmarks/contention.py [--models mlp,bert] [--systems leptonc,onnxruntime,eager] [--busy 0,1,2]
                                    [--runs 10] [--rounds 3] [--quick]

The parent exports every model once (an ONNX file, a leptonc artifact, its inputs), then starts one process
per system that loads only what that system needs (the leptonc process imports neither torch nor onnx) and
one process that holds all the systems. Each system keeps the thread settings it picks by default. For each
count of busy processes (`--busy`: processes running `while True: pass`, started by the parent), the
systems are timed in turns, `--rounds` times `--runs` back-to-back calls each, a short pause before each
turn so that the previous system's pool stops spinning: the slowdown factor is the median call under load
over the median idle. Then, idle again, each system's time alone in its process is compared with its time
in the shared process, where the systems are called one after the other with no pause (the in-process
penalty: the other pools still spinning). `--quick` runs a small MLP with few calls (a smoke test). The
results file records the load average at the start and end, and around each model's timing.
Writes benchmarks/results/<date>-contention-<cpu>.md (`--out` elsewhere).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SYSTEMS = ("leptonc", "onnxruntime", "eager")
PAUSE_S = 0.1  # before each turn: the pools of the system timed before go to sleep
BUSY_SETTLE_S = 0.5  # after starting busy processes, before timing


# -- the processes that time one system, or all of them in one process --------------------------------------
def _runner(system: str, folder: str):
    """A zero-argument function running one inference of the model exported to `folder` under `system`."""
    import numpy as np

    with np.load(os.path.join(folder, "inputs.npz")) as f:
        inputs = [f[f"arg{i}"] for i in range(len(f.files))]
    if system == "leptonc":
        import warnings

        import leptonc

        with warnings.catch_warnings():  # unsigned: built here (from the build cache), as a user's would be
            warnings.simplefilter("ignore")
            cm = leptonc.load(os.path.join(folder, "model.lep"))
        return lambda: cm.run(*inputs)
    if system == "onnxruntime":
        import onnxruntime as ort

        session = ort.InferenceSession(os.path.join(folder, "model.onnx"), providers=["CPUExecutionProvider"])
        feed = {i.name: a for i, a in zip(session.get_inputs(), inputs)}
        return lambda: session.run(None, feed)
    if system == "eager":
        import torch

        module = torch.load(os.path.join(folder, "model.pt"), weights_only=False)
        tensors = [torch.from_numpy(a) for a in inputs]

        def run():
            with torch.inference_mode():
                return module(*tensors)
        return run
    raise ValueError(f"unknown system {system!r} (known: {', '.join(SYSTEMS)})")


def child(systems: list[str], folder: str) -> None:
    """Serve timing requests on stdin: `<system> <calls>` answers the milliseconds of `calls` calls of that system
    back to back, after one untimed call; `interleaved <calls>` calls every system of this process in turn, with
    no pause, and answers each one's milliseconds."""
    runners = {s: _runner(s, folder) for s in systems}
    for run in runners.values():
        run()
    print("ready", flush=True)
    for line in sys.stdin:
        what, calls = line.split()
        if what == "interleaved":
            times: dict[str, list[float]] = {s: [] for s in runners}
            for _ in range(int(calls)):
                for s, run in runners.items():
                    t0 = time.perf_counter()
                    run()
                    times[s].append((time.perf_counter() - t0) * 1e3)
        else:
            run = runners[what]
            run()
            times = {what: []}
            for _ in range(int(calls)):
                t0 = time.perf_counter()
                run()
                times[what].append((time.perf_counter() - t0) * 1e3)
        print(json.dumps(times), flush=True)


class Child:
    def __init__(self, systems: list[str], folder: str):
        self.proc = subprocess.Popen([sys.executable, __file__, "--child", ",".join(systems), "--folder", folder],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the process timing {systems} failed to start (see its error above)")

    def ask(self, what: str, calls: int) -> dict[str, list[float]]:
        self.proc.stdin.write(f"{what} {calls}\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def busy_processes(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.kill()
        p.wait()


# -- the parent ----------------------------------------------------------------------------------------------
def export(name: str, build, folder: str) -> None:
    """The model's inputs, its ONNX file, its leptonc artifact and the module itself, in `folder`."""
    import numpy as np
    import torch

    import leptonc

    module, inputs = build()
    np.savez(os.path.join(folder, "inputs.npz"), **{f"arg{i}": x.numpy() for i, x in enumerate(inputs)})
    torch.onnx.export(module, inputs, os.path.join(folder, "model.onnx"), dynamo=True, verbose=False)
    torch.save(module, os.path.join(folder, "model.pt"))
    leptonc.compile(module, inputs, target="cpu", quiet=True).save(os.path.join(folder, "model.lep"))


def measure(folder: str, systems: list[str], busy: list[int], runs: int, rounds: int) -> dict:
    """{"busy": {n: {system: median ms}}, "alone": {system: ms}, "shared": {system: ms}} for one model."""
    alone = {s: Child([s], folder) for s in systems}
    shared = Child(systems, folder)
    out: dict = {"busy": {}, "alone": {}, "shared": {}}
    try:
        for n in busy:
            procs = busy_processes(n)
            try:
                time.sleep(BUSY_SETTLE_S if n else 0)
                times: dict[str, list[float]] = {s: [] for s in systems}
                for _ in range(rounds):
                    for s in systems:
                        time.sleep(PAUSE_S)
                        times[s] += alone[s].ask(s, runs)[s]
            finally:
                stop(procs)
            out["busy"][n] = {s: statistics.median(t) for s, t in times.items()}
        alone_t: dict[str, list[float]] = {s: [] for s in systems}
        shared_t: dict[str, list[float]] = {s: [] for s in systems}
        for _ in range(rounds):
            for s in systems:
                time.sleep(PAUSE_S)
                alone_t[s] += alone[s].ask(s, runs)[s]
            time.sleep(PAUSE_S)
            for s, t in shared.ask("interleaved", runs).items():
                shared_t[s] += t
        out["alone"] = {s: statistics.median(t) for s, t in alone_t.items()}
        out["shared"] = {s: statistics.median(t) for s, t in shared_t.items()}
    finally:
        for c in [*alone.values(), shared]:
            c.close()
    return out


def table(results: dict[str, dict], systems: list[str], busy: list[int]) -> list[str]:
    loaded = [n for n in busy if n]
    head = ["model", "system", "idle ms", *[f"{n} busy: ms (slowdown)" for n in loaded],
            "alone in its process ms", "in one process with the others ms", "in-process penalty"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model, r in results.items():
        idle = r["busy"].get(0)
        for s in systems:
            cells = [model, s, f"{idle[s]:.2f}" if idle else "-"]
            for n in loaded:
                ms = r["busy"][n][s]
                cells.append(f"{ms:.2f} ({ms / idle[s]:.2f}x)" if idle else f"{ms:.2f}")
            a, b = r["alone"][s], r["shared"][s]
            cells += [f"{a:.2f}", f"{b:.2f}", f"{b / a:.2f}x"]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def summary(results: dict[str, dict], busy: list[int]) -> list[str]:
    """Per model and load: whether leptonc's slowdown (and in-process penalty) is no worse than ONNX Runtime's."""
    out = []
    for model, r in results.items():
        if "leptonc" not in r["alone"] or "onnxruntime" not in r["alone"] or 0 not in r["busy"]:
            continue
        idle = r["busy"][0]
        parts = []
        for n in (n for n in busy if n):
            lep = r["busy"][n]["leptonc"] / idle["leptonc"]
            ort = r["busy"][n]["onnxruntime"] / idle["onnxruntime"]
            parts.append(f"{n} busy {lep:.2f}x vs {ort:.2f}x")
        pen = [r["shared"][s] / r["alone"][s] for s in ("leptonc", "onnxruntime")]
        parts.append(f"in-process {pen[0]:.2f}x vs {pen[1]:.2f}x")
        parts.append(f"idle speed {idle['onnxruntime'] / idle['leptonc']:.2f}x ONNX Runtime")
        out.append(f"- {model}: slowdown leptonc vs ONNX Runtime: {', '.join(parts)}")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=None, help="comma-separated models of benchmarks/suite.py (default: all "
                                                  "of them)")
    p.add_argument("--systems", default=",".join(SYSTEMS))
    p.add_argument("--busy", default="0,1,2", help="counts of busy-looping processes beside the timed one")
    p.add_argument("--runs", type=int, default=10, help="back-to-back calls per turn")
    p.add_argument("--rounds", type=int, default=3, help="turns per system and load")
    p.add_argument("--quick", action="store_true", help="a small MLP, few calls: a smoke test")
    p.add_argument("--out", default=None, help="the results file (default benchmarks/results/<date>-...)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child.split(","), args.folder)
        return 0
    from benchmarks.suite import SUITE
    from leptonc.bench import LOAD_AT_START, cpu_name

    systems = [s for s in args.systems.split(",") if s]
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        p.error(f"unknown systems {unknown}; known: {list(SYSTEMS)}")
    busy = [int(n) for n in args.busy.split(",")]
    if args.quick:
        suite, runs, rounds = {"tiny_mlp": _tiny_mlp}, 3, 1
    else:
        names = args.models.split(",") if args.models else list(SUITE)
        missing = [m for m in names if m not in SUITE]
        if missing:
            p.error(f"unknown models {missing}; the suite has {list(SUITE)}")
        suite, runs, rounds = {m: SUITE[m] for m in names}, args.runs, args.rounds
    command = "python benchmarks/contention.py " + " ".join(argv if argv is not None else sys.argv[1:])
    cpu = "".join(c if c.isalnum() else "-" for c in cpu_name()).strip("-").lower()[:40]
    out = args.out or os.path.join(ROOT, "benchmarks", "results",
                                   f"{datetime.date.today().isoformat()}-contention-{cpu}.md")
    results, loads = {}, {}
    for name, build in suite.items():
        with tempfile.TemporaryDirectory(prefix="leptonc-contention-") as folder:
            print(f"{name}: exporting", file=sys.stderr, flush=True)
            export(name, build, folder)
            print(f"{name}: timing", file=sys.stderr, flush=True)
            load = os.getloadavg()[0]
            results[name] = measure(folder, systems, busy, runs, rounds)
            loads[name] = (load, os.getloadavg()[0])
        lines = ["# Speed on a busy machine: slowdown beside busy processes, and in one process with other systems",
                 "", f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
                 f"- cpu: {cpu_name()}, {os.cpu_count()} cores; `{command.strip()}`",
                 f"- load average (1, 5, 15 min) at the start: {', '.join(f'{x:.1f}' for x in LOAD_AT_START)}, "
                 f"at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}",
                 f"- medians of {rounds} x {runs} back-to-back calls per system and load, the systems in turns; "
                 "each system in its own process with its default threads", "",
                 *table(results, systems, busy), "", *summary(results, busy), "",
                 "- 1-minute load average before and after timing each model (its own busy processes included; above "
                 "~0.5 before, other work shared the cores): "
                 + ", ".join(f"{m} {a:.1f} -> {b:.1f}" for m, (a, b) in loads.items())]
        with open(out, "w") as f:  # after each model: a long run that stops keeps what it measured
            f.write("\n".join(lines) + "\n")
    print(open(out).read())
    print("written to", out)
    return 0


def _tiny_mlp():
    import torch

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.Linear(256, 16)).eval()
    return module, (torch.randn(8, 64),)


if __name__ == "__main__":
    sys.exit(main())
