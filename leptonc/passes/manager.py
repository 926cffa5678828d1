"""The pass manager: runs a pipeline over a graph, with IR dumps, verification and statistics.

    pm = PassManager("canonicalize,fold,cse,dce", verify_each=True, dump_dir="dumps")
    g = pm.run(g)                # dumps/000_input.lir, 001_canonicalize.lir, ...
    print(format_stats(pm.stats))

Named pipelines (`default`) expand to their passes; a fixpoint pipeline repeats
until a whole round changes nothing (at most its max_iterations rounds; one
that is still changing then is listed in `unconverged`). Under verify_each the verifier runs after
every pass; when it fails, the error names the pass and the IR from before the
pass is written to a file for a bug report. A pass that says it did not change
the graph is held to it: its printed IR must be unchanged.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import TextIO

from ..ir.errors import LeptoncError
from ..ir.graph import Graph
from ..ir.printer import print_ir
from ..ir.verifier import verify
from .pipeline import Pipeline, PipelineEntry, parse_pipeline
from .registry import PassError, get_pass


@dataclass
class PassStat:
    """One run of one pass: how long it took, the op counts around it, and whether it changed the graph."""

    name: str
    seconds: float
    ops_before: int
    ops_after: int
    changed: bool
    within: str = ""  # the named pipeline (and round) it ran in, e.g. "default#2"


class PassManager:
    """Runs `pipeline` (a string or Pipeline) over graphs; see the module docstring."""

    def __init__(self, pipeline: "str | Pipeline", *, verify_each: bool = False,
                 print_ir_after_all: bool = False, print_ir_after=(), dump_dir: str | None = None,
                 disable=(), out: TextIO | None = None, report_dir: str | None = None):
        self.pipeline = parse_pipeline(pipeline)
        self.verify_each = verify_each
        self.print_ir_after_all = print_ir_after_all
        self.print_ir_after = set(print_ir_after)
        for name in self.print_ir_after | set(disable):
            get_pass(name, "--print-ir-after/--disable-pass")
        self.disable = set(disable)
        self.dump_dir = dump_dir
        self.out = out
        self.report_dir = report_dir or dump_dir
        self.stats: list[PassStat] = []
        self.unconverged: list[str] = []  # fixpoint pipelines still changing the graph at their last round
        self._step = 0

    def run(self, graph: Graph) -> Graph:
        """Run the pipeline over `graph` (edited in place, or replaced by a pass) and return the result."""
        self.stats = []
        self.unconverged = []
        self._step = 0
        if self.verify_each:
            try:
                verify(graph)
            except LeptoncError as e:
                raise PassError(f"the input graph fails verification, before any pass: {e}") from None
        if self.dump_dir:
            os.makedirs(self.dump_dir, exist_ok=True)
            self._dump(graph, "input")
        return self._run_entries(graph, self.pipeline.entries, within="")

    def _run_entries(self, graph: Graph, entries, within: str) -> Graph:
        for entry in entries:
            graph, _ = self._run_entry(graph, entry, within)
        return graph

    def _run_entry(self, graph: Graph, entry: PipelineEntry, within: str) -> tuple[Graph, bool]:
        info = get_pass(entry.name)
        if entry.name in self.disable:
            return graph, False
        if not info.is_pipeline:
            return self._run_pass(graph, entry, within)
        inner = parse_pipeline(info.pipeline).entries
        rounds = info.max_iterations if info.fixpoint else 1
        any_change = False
        for r in range(1, rounds + 1):
            changed = False
            for sub in inner:
                graph, c = self._run_entry(graph, sub, f"{entry.name}#{r}" if info.fixpoint else entry.name)
                changed |= c
            any_change |= changed
            if not changed:
                break
        else:
            if info.fixpoint:
                self.unconverged.append(f"{entry.name} still changed the graph after {rounds} rounds")
        if entry.name in self.print_ir_after:
            self._print(graph, entry, any_change)
        return graph, any_change

    def _run_pass(self, graph: Graph, entry: PipelineEntry, within: str) -> tuple[Graph, bool]:
        info = get_pass(entry.name)
        before_text = print_ir(graph) if self.verify_each else None
        ops_before = len(graph.nodes)
        start = time.perf_counter()
        try:
            result = info.run(graph, entry.options)
        except LeptoncError:
            raise
        except Exception as e:
            where = f"the IR before it is in {self._report(entry, before_text)}" if before_text else \
                "run with verify_each (--verify-each) to save the IR from before it"
            raise PassError(f"pass '{entry}' crashed ({type(e).__name__}: {e}); {where}") from e
        seconds = time.perf_counter() - start
        if result.graph is not None:
            graph = result.graph
        self.stats.append(PassStat(str(entry), seconds, ops_before, len(graph.nodes), result.changed, within))
        if self.verify_each:
            self._check(graph, entry, result.changed, before_text)
        self._step += 1
        if self.dump_dir:
            self._dump(graph, entry.name)
        if self.print_ir_after_all or entry.name in self.print_ir_after:
            self._print(graph, entry, result.changed)
        return graph, result.changed

    def _print(self, graph: Graph, entry: PipelineEntry, changed: bool) -> None:
        out = self.out or sys.stderr
        out.write(f"# IR after {entry}{'' if changed else ' (unchanged)'}\n{print_ir(graph)}\n")

    def _check(self, graph: Graph, entry: PipelineEntry, changed: bool, before_text: str) -> None:
        try:
            verify(graph)
        except LeptoncError as e:
            path = self._report(entry, before_text)
            raise PassError(f"pass '{entry}' produced an invalid graph: {e}\n"
                            f"the IR before the pass is in {path}; `leptonc ir {path} --passes "
                            f"\"{entry}\"` reproduces it") from None
        if not changed and print_ir(graph) != before_text:
            path = self._report(entry, before_text)
            raise PassError(f"pass '{entry}' said it did not change the graph, but the IR differs; "
                            f"the IR before the pass is in {path}")

    def _report(self, entry: PipelineEntry, before_text: str) -> str:
        directory = self.report_dir or tempfile.gettempdir()
        os.makedirs(directory, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix=f"leptonc_before_{entry.name}_", suffix=".lir", dir=directory)
        with os.fdopen(fd, "w") as f:
            f.write(f"# IR before pass '{entry}', which failed\n{before_text}")
        return path

    def _dump(self, graph: Graph, name: str) -> None:
        path = os.path.join(self.dump_dir, f"{self._step:03d}_{name}.lir")
        with open(path, "w") as f:
            f.write(print_ir(graph))


def run_pipeline(graph: Graph, pipeline: "str | Pipeline", *, inplace: bool = False, stats: list | None = None,
                 **options) -> Graph:
    """Run a pipeline over a copy of `graph` (or the graph itself with inplace=True); return the result.

    Keyword options are those of PassManager (verify_each, print_ir_after_all,
    print_ir_after, dump_dir, disable, out); `stats`, a list, receives a
    PassStat per pass run.
    """
    pm = PassManager(pipeline, **options)
    result = pm.run(graph if inplace else graph.copy())
    if stats is not None:
        stats.extend(pm.stats)
    return result


def format_stats(stats: list[PassStat]) -> str:
    """A table of pass statistics, one line per pass run, and a total."""
    lines = [f"{'pass':<32} {'ms':>9} {'ops before':>10} {'ops after':>10}  changed"]
    for s in stats:
        name = f"{s.within}/{s.name}" if s.within else s.name
        lines.append(f"{name:<32} {s.seconds * 1e3:>9.2f} {s.ops_before:>10} {s.ops_after:>10}  "
                     f"{'yes' if s.changed else 'no'}")
    total = sum(s.seconds for s in stats)
    first = stats[0].ops_before if stats else 0
    last = stats[-1].ops_after if stats else 0
    lines.append(f"{'total':<32} {total * 1e3:>9.2f} {first:>10} {last:>10}")
    return "\n".join(lines) + "\n"
