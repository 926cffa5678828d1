"""The command-line flags that run a pipeline, shared by the verbs that optimize a graph (`ir`, `compile`).

    add_pass_arguments(parser)               # --passes, --print-ir-after-all, --dump-dir, --stats,
                                             # --verify-each, --check-reference-each, ...
    graph = run_passes_from_args(graph, args)
"""
from __future__ import annotations

import argparse
import sys

from ..ir.graph import Graph
from .manager import PassManager, format_stats


def add_pass_arguments(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    group = parser.add_argument_group("passes")
    group.add_argument("--passes", default=default, metavar="PIPELINE",
                       help='pass pipeline, e.g. "canonicalize,fold,cse,dce" or "default" '
                            "(`leptonc passes` lists them)")
    group.add_argument("--print-ir-after-all", action="store_true", help="print the IR after every pass (stderr)")
    group.add_argument("--print-ir-after", action="append", default=[], metavar="NAME",
                       help="print the IR after each run of pass NAME (repeatable)")
    group.add_argument("--dump-dir", metavar="DIR", help="write DIR/000_input.lir, 001_<pass>.lir, ...")
    group.add_argument("--stats", action="store_true", help="per pass: time, ops before/after, changed (stderr)")
    group.add_argument("--disable-pass", action="append", default=[], metavar="NAME",
                       help="skip pass NAME, also inside named pipelines (repeatable)")
    group.add_argument("--verify-each", action="store_true",
                       help="verify the graph after every pass; on failure the IR before the pass goes to a file")
    group.add_argument("--check-reference-each", action="store_true",
                       help="run the reference interpreter on random example inputs before and after every pass; "
                            "stop at the first pass whose outputs move beyond its declared tolerance")


def run_passes_from_args(graph: Graph, args: argparse.Namespace) -> Graph:
    """Run args.passes (if any) over graph with the flags of add_pass_arguments; print stats if asked."""
    if not args.passes:
        return graph
    inputs = None
    if args.check_reference_each:
        from ..runtime.accuracy import sample_inputs

        inputs = sample_inputs(graph, 1)[0]
    pm = PassManager(args.passes, verify_each=args.verify_each, print_ir_after_all=args.print_ir_after_all,
                     print_ir_after=args.print_ir_after, dump_dir=args.dump_dir, disable=args.disable_pass,
                     check_reference_each=inputs)
    graph = pm.run(graph)
    if args.stats:
        sys.stderr.write(f"# pipeline: {pm.pipeline}\n{format_stats(pm.stats)}")
        for note in pm.unconverged:
            sys.stderr.write(f"# not converged: {note}\n")
    return graph
