"""Compression that keeps accuracy, measured on trained models: one report from every section.

    python benchmarks/accuracy.py [--sections vision,lm,pruning] [--quick] [--threads 2] [--out DIR] [--append]

Each section is a module benchmarks/accuracy_<name>.py with a function

    run(quick: bool) -> list[str]

that trains (seeded, cached) or loads its models, measures them and returns its part of the report as
markdown lines (a `## ...` heading, tables, and the figures' notes). A section whose module is missing is
listed as not run; one that fails is reported with its error, so that the others still come out. `--quick`
is the smoke test: tiny sizes and few runs, the report goes to --out (a temporary directory unless given)
instead of benchmarks/results/. Writes benchmarks/results/<date>-accuracy-<cpu>.md; with --append, adds the
sections to it (sections measured in separate runs).
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import os
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SECTIONS = ("vision", "lm", "pruning")


def run_section(name: str, quick: bool) -> list[str]:
    """The markdown lines of section `name`, or a note saying why it has none."""
    try:
        module = importlib.import_module(f"benchmarks.accuracy_{name}")
    except ModuleNotFoundError as e:
        if e.name != f"benchmarks.accuracy_{name}":
            raise
        return [f"## {name}", "", f"Not run: benchmarks/accuracy_{name}.py does not exist yet.", ""]
    t0 = time.perf_counter()
    try:
        lines = list(module.run(quick=quick))
    except Exception as e:  # one failing section must not hide the others' figures
        traceback.print_exc()
        return [f"## {name}", "", f"Failed after {time.perf_counter() - t0:.0f} s: `{type(e).__name__}: {e}`", ""]
    return lines + [f"Section measured in {time.perf_counter() - t0:.0f} s.", ""]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sections", default=",".join(SECTIONS))
    p.add_argument("--quick", action="store_true", help="smoke test: tiny sizes, report not under results/")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--append", action="store_true", help="add to today's report instead of replacing it")
    p.add_argument("--out", help="directory of the report (default: benchmarks/results, or a temporary one "
                                 "with --quick)")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    sections = [s for s in args.sections.split(",") if s]
    for s in sections:
        if s not in SECTIONS:
            p.error(f"unknown section {s!r} (sections: {', '.join(SECTIONS)})")
    from leptonc.bench import cpu_name, write_results

    command = " ".join(["python benchmarks/accuracy.py"] + list(argv if argv is not None else sys.argv[1:]))
    start = datetime.datetime.now(datetime.timezone.utc)
    title = [f"# Compression that keeps accuracy, trained models, on {cpu_name()}", ""]
    lines = ([] if args.append else title) + [
        f"`{command}` ({args.threads} threads) from {start:%H:%M} UTC, load average {os.getloadavg()[0]:.1f} at "
        "the start. Timings are medians of runs taken in turns (each system once per round), so the load of a "
        "shared machine falls on all systems alike; compare them as ratios.", ""]
    for s in sections:
        print(f"section {s} ...", file=sys.stderr, flush=True)
        lines += run_section(s, args.quick)
    end = datetime.datetime.now(datetime.timezone.utc)
    lines += [f"Finished at {end:%H:%M} UTC, load average {os.getloadavg()[0]:.1f}.", ""]
    text = "\n".join(lines) + "\n"
    print(text)
    out = args.out or (tempfile.mkdtemp(prefix="leptonc-accuracy-") if args.quick else
                       os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    print("written to", write_results(text, out, "accuracy", append=args.append))
    return 0


if __name__ == "__main__":
    sys.exit(main())
