"""The pass manager: runs a pipeline over a graph, with instruments around every pass (instruments.py).

    pm = PassManager("canonicalize,fold,cse,dce", verify_each=True, dump_dir="dumps")
    g = pm.run(g)                # dumps/000_input.lir, 001_canonicalize.lir, ...
    print(format_stats(pm.stats))
    PassManager("default,quantize", check_reference_each=inputs).run(g)   # ReferenceMismatch names the pass

Named pipelines (`default`) expand to their passes; a fixpoint pipeline repeats
until a whole round changes nothing (at most its max_iterations rounds; one
that is still changing then is listed in `unconverged`). The options are
instruments: timing (always, `stats`), verify_each (the verifier after every
pass; a pass that says it did not change the graph is held to it; on failure
the error names the pass and the IR from before it goes to a file),
dump_dir, print_ir_after_all / print_ir_after, and check_reference_each (the
reference interpreter on those inputs after every pass, held to the pass's
declared tolerance). `instruments` adds more.
"""
from __future__ import annotations

import time
from typing import TextIO

from ..ir.errors import LeptoncError
from ..ir.graph import Graph
from .instruments import Dump, Instrument, PassStat, PrintIR, ReferenceCheck, Timing, Verify
from .pipeline import Pipeline, PipelineEntry, parse_pipeline
from .registry import PassError, get_pass


class PassManager:
    """Runs `pipeline` (a string or Pipeline) over graphs; see the module docstring."""

    def __init__(self, pipeline: "str | Pipeline", *, verify_each: bool = False,
                 print_ir_after_all: bool = False, print_ir_after=(), dump_dir: str | None = None,
                 disable=(), out: TextIO | None = None, report_dir: str | None = None,
                 check_reference_each=None, instruments=()):
        self.pipeline = parse_pipeline(pipeline)
        for name in set(print_ir_after) | set(disable):
            get_pass(name, "--print-ir-after/--disable-pass")
        self.disable = set(disable)
        self.timing = Timing()
        self.verifier = Verify(report_dir or dump_dir) if verify_each else None
        self.instruments: list[Instrument] = [self.timing] + ([self.verifier] if self.verifier else [])
        if dump_dir:
            self.instruments.append(Dump(dump_dir))
        if print_ir_after_all or print_ir_after:
            self.instruments.append(PrintIR(print_ir_after_all, print_ir_after, out))
        if check_reference_each is not None:
            self.instruments.append(ReferenceCheck(check_reference_each, report_dir=report_dir or dump_dir or ""))
        self.instruments += list(instruments)
        self.unconverged: list[str] = []  # fixpoint pipelines still changing the graph at their last round

    @property
    def stats(self) -> list[PassStat]:
        return self.timing.stats

    def run(self, graph: Graph) -> Graph:
        """Run the pipeline over `graph` (edited in place, or replaced by a pass) and return the result."""
        self.unconverged = []
        for i in self.instruments:
            i.run_started(graph)
        for entry in self.pipeline.entries:
            graph, _ = self._run_entry(graph, entry, within="")
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
        for i in self.instruments:
            i.after_pipeline(entry, graph, any_change)
        return graph, any_change

    def _run_pass(self, graph: Graph, entry: PipelineEntry, within: str) -> tuple[Graph, bool]:
        info = get_pass(entry.name)
        for i in self.instruments:
            i.before_pass(entry, graph)
        ops_before = len(graph.nodes)
        start = time.perf_counter()
        try:
            result = info.run(graph, entry.options)
        except LeptoncError:
            raise
        except Exception as e:
            where = f"the IR before it is in {self.verifier.save_before(entry)}" if self.verifier else \
                "run with verify_each (--verify-each) to save the IR from before it"
            raise PassError(f"pass '{entry}' crashed ({type(e).__name__}: {e}); {where}") from e
        seconds = time.perf_counter() - start
        if result.graph is not None:
            graph = result.graph
        for i in self.instruments:
            i.after_pass(entry, graph, result.changed, seconds, ops_before, within)
        return graph, result.changed


def run_pipeline(graph: Graph, pipeline: "str | Pipeline", *, inplace: bool = False, stats: list | None = None,
                 **options) -> Graph:
    """Run a pipeline over a copy of `graph` (or the graph itself with inplace=True); return the result.

    Keyword options are those of PassManager (verify_each, print_ir_after_all,
    print_ir_after, dump_dir, disable, out, check_reference_each, instruments);
    `stats`, a list, receives a PassStat per pass run.
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
