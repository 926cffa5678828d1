"""Pass instruments: what the pass manager runs around every pass (as MLIR's PassInstrumentation).

    pm = PassManager("default,quantize", instruments=[ReferenceCheck(inputs)])

An instrument overrides some of the hooks of `Instrument`. The manager's own
options are instruments too: `Timing` (always on: pm.stats), `Verify`
(verify_each), `Dump` (dump_dir), `PrintIR` (print_ir_after_all,
print_ir_after). `ReferenceCheck` (check_reference_each) runs the reference
interpreter on example inputs before the first pass and after every pass that
changed the graph, and stops at the first pass whose outputs move beyond its
tolerance: the one the pass declares (passes/tolerance.py), or EXACT for a
pass that declares none.
"""
from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from ..ir.errors import LeptoncError
from ..ir.graph import Graph
from ..ir.printer import print_ir
from ..ir.verifier import verify
from ..runtime.reference import run_reference
from .pipeline import PipelineEntry
from .registry import PassError
from .tolerance import Tolerance, tolerance_of

# what a pass that declares no tolerance may change: the rounding of reassociated or refactored f32 arithmetic
# (fold-batchnorm folds a scale into the weights, channels-last reorders a conv's sums)
EXACT = Tolerance(max_rel_error=1e-4, min_sqnr_db=80.0, min_top1=1.0)


class Instrument:
    """Hooks around a run of the pass manager; each does nothing unless overridden."""

    def run_started(self, graph: Graph) -> None:
        """Before the first pass, on the input graph."""

    def before_pass(self, entry: PipelineEntry, graph: Graph) -> None:
        """Before each pass (not a named pipeline: its passes)."""

    def after_pass(self, entry: PipelineEntry, graph: Graph, changed: bool, seconds: float, ops_before: int,
                   within: str) -> None:
        """After each pass that returned; `within`: the named pipeline (and round) it ran in."""

    def after_pipeline(self, entry: PipelineEntry, graph: Graph, changed: bool) -> None:
        """After a named pipeline (all its rounds)."""


@dataclass
class PassStat:
    """One run of one pass: how long it took, the op counts around it, and whether it changed the graph."""

    name: str
    seconds: float
    ops_before: int
    ops_after: int
    changed: bool
    within: str = ""  # the named pipeline (and round) it ran in, e.g. "default#2"


class Timing(Instrument):
    """A PassStat per pass run (`stats`)."""

    def __init__(self):
        self.stats: list[PassStat] = []

    def run_started(self, graph: Graph) -> None:
        self.stats = []

    def after_pass(self, entry, graph, changed, seconds, ops_before, within) -> None:
        self.stats.append(PassStat(str(entry), seconds, ops_before, len(graph.nodes), changed, within))


class Verify(Instrument):
    """The verifier on the input and after every pass; a pass that says it did not change the graph is held to
    it (its printed IR must be unchanged). On failure the IR from before the pass goes to a file in
    `report_dir` (default: the temporary folder), which the error names."""

    def __init__(self, report_dir: str | None = None):
        self.report_dir = report_dir
        self.before_text: str | None = None

    def run_started(self, graph: Graph) -> None:
        try:
            verify(graph)
        except LeptoncError as e:
            raise PassError(f"the input graph fails verification, before any pass: {e}") from None

    def before_pass(self, entry, graph) -> None:
        self.before_text = print_ir(graph)

    def after_pass(self, entry, graph, changed, seconds, ops_before, within) -> None:
        try:
            verify(graph)
        except LeptoncError as e:
            path = self.save_before(entry)
            raise PassError(f"pass '{entry}' produced an invalid graph: {e}\n"
                            f"the IR before the pass is in {path}; `leptonc ir {path} --passes "
                            f"\"{entry}\"` reproduces it") from None
        if not changed and print_ir(graph) != self.before_text:
            path = self.save_before(entry)
            raise PassError(f"pass '{entry}' said it did not change the graph, but the IR differs; "
                            f"the IR before the pass is in {path}")

    def save_before(self, entry: PipelineEntry) -> str:
        """Write the IR from before `entry` to a new file; returns its path."""
        directory = self.report_dir or tempfile.gettempdir()
        os.makedirs(directory, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix=f"leptonc_before_{entry.name}_", suffix=".lir", dir=directory)
        with os.fdopen(fd, "w") as f:
            f.write(f"# IR before pass '{entry}', which failed\n{self.before_text}")
        return path


class Dump(Instrument):
    """DIR/000_input.lir, then DIR/001_<pass>.lir, ... after every pass."""

    def __init__(self, directory: str):
        self.directory = directory
        self.step = 0

    def run_started(self, graph: Graph) -> None:
        os.makedirs(self.directory, exist_ok=True)
        self.step = 0
        self._write(graph, "input")

    def after_pass(self, entry, graph, changed, seconds, ops_before, within) -> None:
        self.step += 1
        self._write(graph, entry.name)

    def _write(self, graph: Graph, name: str) -> None:
        with open(os.path.join(self.directory, f"{self.step:03d}_{name}.lir"), "w") as f:
            f.write(print_ir(graph))


class PrintIR(Instrument):
    """The IR after every pass (`after_all`), or after the passes and named pipelines in `after`, to `out`
    (default stderr)."""

    def __init__(self, after_all: bool = False, after=(), out: TextIO | None = None):
        self.after_all, self.after, self.out = after_all, set(after), out

    def after_pass(self, entry, graph, changed, seconds, ops_before, within) -> None:
        if self.after_all or entry.name in self.after:
            self._print(graph, entry, changed)

    def after_pipeline(self, entry, graph, changed) -> None:
        if entry.name in self.after:
            self._print(graph, entry, changed)

    def _print(self, graph: Graph, entry: PipelineEntry, changed: bool) -> None:
        (self.out or sys.stderr).write(f"# IR after {entry}{'' if changed else ' (unchanged)'}\n{print_ir(graph)}\n")


class ReferenceMismatch(PassError):
    """A pass moved the graph's outputs beyond its tolerance (ReferenceCheck)."""

    def __init__(self, entry: PipelineEntry, tolerance: Tolerance, problem: str, output: int, before: Graph | None,
                 saved: str | None = None):
        where = f"\nthe IR before the pass is in {saved}; `leptonc bisect {saved} --passes \"{entry}\"` cuts it " \
                "down to what diverges" if saved else ""
        super().__init__(f"pass '{entry}' moved the outputs beyond its tolerance (max rel error "
                         f"{tolerance.max_rel_error:g}): {problem}{where}")
        self.entry, self.problem, self.output, self.before = entry, problem, output, before


class ReferenceCheck(Instrument):
    """The reference interpreter on `inputs` before the first pass and after every pass that changed the graph;
    raises ReferenceMismatch at the first pass whose outputs move beyond its tolerance, naming it and the first
    diverging value. With keep_before, the mismatch carries a copy of the graph from before the pass
    (`.before`); with a `report_dir` ("" for the temporary folder) that graph is also written there, constants
    inline, and the error names the file."""

    def __init__(self, inputs, keep_before: bool = False, report_dir: str | None = None):
        self.inputs = list(inputs)
        self.keep_before = keep_before or report_dir is not None
        self.report_dir = report_dir
        self.outputs: list | LeptoncError | None = None
        self.before: Graph | None = None

    def run_started(self, graph: Graph) -> None:
        self.outputs = self._run(graph)
        if isinstance(self.outputs, LeptoncError):
            raise PassError(f"the reference interpreter fails on the input graph, before any pass: {self.outputs}")

    def before_pass(self, entry, graph) -> None:
        if self.keep_before:
            self.before = graph.copy()

    def after_pass(self, entry, graph, changed, seconds, ops_before, within) -> None:
        if not changed:
            return
        outputs = self._run(graph)
        tolerance = tolerance_of(str(entry)) or EXACT
        if isinstance(outputs, LeptoncError):
            problem, output = f"the reference interpreter now fails: {outputs}", 0
        else:
            found = first_divergence(self.outputs, outputs, tolerance, [v.name for v in graph.outputs])
            problem, output = found if found else (None, None)
        if problem is not None:
            saved = None
            if self.report_dir is not None:
                directory = self.report_dir or tempfile.gettempdir()
                os.makedirs(directory, exist_ok=True)
                fd, saved = tempfile.mkstemp(prefix=f"leptonc_before_{entry.name}_", suffix=".lir", dir=directory)
                with os.fdopen(fd, "w") as f:
                    f.write(print_ir(self.before, constants="inline"))
            raise ReferenceMismatch(entry, tolerance, problem, output, self.before, saved)
        self.outputs = outputs

    def inputs_of(self, graph: Graph) -> list:
        """The inputs this check feeds `graph` (a graph it saw: the same inputs, by position)."""
        return self.inputs[:len(graph.inputs)]

    def _run(self, graph: Graph):
        try:
            return [np.asarray(y) for y in run_reference(graph, *self.inputs)]
        except LeptoncError as e:
            return e


def relative_error(want: np.ndarray, got: np.ndarray) -> float:
    """max|got - want| / max(1, max|want|), as the declared tolerances bound it (runtime/accuracy.py)."""
    w, g = want.astype(np.float64), got.astype(np.float64)
    scale = max(1.0, float(np.max(np.abs(w[np.isfinite(w)]), initial=0.0)))
    diff = np.abs(g - w)
    diff[(np.isnan(w) & np.isnan(g)) | (w == g)] = 0.0  # equal infinities and NaN where NaN is wanted agree
    return float(np.max(np.where(np.isnan(diff), np.inf, diff), initial=0.0)) / scale


def first_divergence(want: list[np.ndarray], got: list[np.ndarray], tolerance: Tolerance,
                     names: list[str]) -> tuple[str, int] | None:
    """(a description of the first value out of tolerance, its output's position), or None when every output
    is within it. Float outputs are held to max_rel_error; others must be equal (a lossy pass may change a
    fraction 1 - min_top1 of them: an argmax that flips)."""
    for i, (w, g) in enumerate(zip(want, got)):
        name = names[i] if i < len(names) else str(i)
        if w.shape != g.shape:
            return f"output {i} (%{name}) has shape {list(g.shape)}, was {list(w.shape)}", i
        if w.size == 0:
            continue
        if w.dtype.kind == "f" or w.dtype.name == "bfloat16":
            if relative_error(w, g) <= tolerance.max_rel_error:
                continue
            wf, gf = w.astype(np.float64), g.astype(np.float64)
            scale = max(1.0, float(np.max(np.abs(wf[np.isfinite(wf)]), initial=0.0)))
            bad = ~((np.abs(gf - wf) <= tolerance.max_rel_error * scale) | (wf == gf) | (np.isnan(wf) & np.isnan(gf)))
        else:
            bad = w != g
            if not bad.any() or bad.mean() <= 1.0 - tolerance.min_top1:
                continue
        at = np.unravel_index(int(np.argmax(bad.reshape(-1))), w.shape)
        error = f" (max rel error {relative_error(w, g):.3g})" if w.dtype.kind == "f" else ""
        return f"output {i} (%{name}) at {list(map(int, at))} is {g[at].item()!r}, expected {w[at].item()!r}{error}", i
    return None


__all__ = ["EXACT", "Dump", "Instrument", "PassStat", "PrintIR", "ReferenceCheck", "ReferenceMismatch", "Timing",
           "Verify", "first_divergence", "relative_error"]
