"""leptonc (import + reference interpreter) on the ONNX backend test cases: the same harness as
benchmarks/onnx_backend_ort.py, so the two pass counts compare.

    .venv/bin/python benchmarks/onnx_backend_leptonc.py [--node] [--pytorch] [--light] [-j N]
                     [--write-failures tests/frontends/onnx_node_failures.txt]
    .venv/bin/python benchmarks/onnx_backend_leptonc.py --compiled cpu [--compiled triton] [--every N] [-j N]

--compiled TARGET runs the node cases as a user would on that target (import, compile, run), beside the
reference interpreter and ONNX Runtime on the same cases (every N-th case in name order with --every), and
prints each count and the compiled targets' most common reasons.

--write-failures rewrites the committed list of failing node cases (one line each, with the reason)
that tests/frontends/test_onnx_node.py holds leptonc to.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "frontends"))
import onnx_cases as oc  # noqa: E402

_HEADER = """\
# ONNX node test cases (onnx {onnx_version}) that leptonc does not pass, one per line with the reason.
# tests/frontends/test_onnx_node.py fails when a case not listed here fails, and when fewer than
# {floor} of the {total} cases pass. Regenerate with
#   .venv/bin/python benchmarks/onnx_backend_leptonc.py --node --write-failures tests/frontends/onnx_node_failures.txt
# Measured: leptonc passes {passed} of {total}; ONNX Runtime {ort_version} passes {ort} in the same harness
# (benchmarks/onnx_backend_ort.py --node). Excluded by design: sequence/optional-typed cases, string
# tensors (no IR dtype), training ops (ai.onnx.preview.training), random ops whose outputs cannot
# match (bernoulli, training dropout).
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--node", action="store_true")
    p.add_argument("--pytorch", action="store_true")
    p.add_argument("--light", action="store_true")
    p.add_argument("-j", type=int, default=os.cpu_count() or 1, help="processes")
    p.add_argument("--write-failures", metavar="FILE")
    p.add_argument("--ort-passes", type=int, default=1727, help="ORT's node pass count, for the file header")
    p.add_argument("--compiled", action="append", choices=("cpu", "triton", "stablehlo"), default=[],
                   help="node cases compiled for this target")
    p.add_argument("--every", type=int, default=1, help="with --compiled: every N-th node case")
    args = p.parse_args(argv)
    if args.compiled:
        _compiled(args.compiled, args.every, args.j)
    if args.node:
        t = time.time()
        with tempfile.TemporaryDirectory() as tmp:
            res = oc.run_node_suite(oc.generate_node_cases(tmp), processes=args.j)
        passed = sum(r == "pass" for r in res.values())
        skipped = sum(r.startswith("skip") for r in res.values())
        print(f"node: leptonc passes {passed} of {len(res)} ({skipped} sequence/optional cases skipped) "
              f"in {time.time() - t:.0f} s")
        if args.write_failures:
            import onnx
            import onnxruntime

            with open(args.write_failures, "w") as f:
                f.write(_HEADER.format(onnx_version=onnx.__version__, floor=passed, total=len(res), passed=passed,
                                       ort=args.ort_passes, ort_version=onnxruntime.__version__))
                for name, r in sorted(res.items()):
                    if r != "pass":
                        f.write(f"{name}  {oc.short_reason(r)}\n")
    if args.pytorch:
        for kind in ("pytorch-converted", "pytorch-operator"):
            res = {os.path.basename(d): oc.run_leptonc(d) for d in oc.model_case_dirs(kind)}
            print(f"{kind}: leptonc passes {sum(r == 'pass' for r in res.values())} of {len(res)}")
            for name, r in sorted(res.items()):
                if r != "pass":
                    print(f"  {name}: {oc.short_reason(r)}")
    if args.light:
        for name in oc.LIGHT_MODELS:
            t = time.time()
            r = oc.run_light(name)
            print(f"light_{name}: {r} ({time.time() - t:.1f} s)")
    return 0


def _compiled(targets: list[str], every: int, processes: int) -> None:
    import collections

    from onnx_backend_ort import run_case

    if "triton" in targets:
        os.environ.setdefault("TRITON_INTERPRET", "1")  # no GPU: Triton's interpreter runs the kernels
    with tempfile.TemporaryDirectory() as tmp:
        node_dir = oc.generate_node_cases(tmp)
        dirs = oc.node_case_dirs(node_dir)[::every]
        runs = {}
        for name in ["ONNX Runtime", "reference"] + targets:
            t = time.time()
            if name == "ONNX Runtime":
                runs[name] = {os.path.basename(d): run_case(d) for d in dirs}
            else:
                runs[name] = oc.run_node_suite(node_dir, processes, target=None if name == "reference" else name,
                                               every=every)
            print(f"node, every {every}: {name} passes {sum(r == 'pass' for r in runs[name].values())} of "
                  f"{len(runs[name])} ({time.time() - t:.0f} s)", flush=True)
    for target in targets:
        reasons = collections.Counter(oc.short_reason(r)[:90] for r in runs[target].values() if r != "pass")
        print(f"{target}: most common reasons")
        for reason, n in reasons.most_common(25):
            print(f"  {n:4d}  {reason}")


if __name__ == "__main__":
    sys.exit(main())
