"""Finding what broke the numbers: the first pass, then the first kernel, whose result diverges from the
reference interpreter, with a minimal IR reproducer.

    result = leptonc.bisect(model, example_inputs, passes="quantize", target="cpu")
    print(result)                 # what diverged, the first diverging value, the reproducer and how to run it
    leptonc bisect model.onnx --passes quantize --target cpu

1. Passes. The pipeline that `compile` runs (the cleanup pipeline, `passes`,
   then the target's own passes) runs under a ReferenceCheck instrument
   (passes/instruments.py): the reference interpreter on the example inputs
   after every pass. The first pass whose outputs move beyond its tolerance
   (the one it declares, or EXACT) is the culprit; the reproducer is the IR
   before it, cut to what the diverging output needs, ending at the earliest
   value that still diverges and starting below the values it need not
   recompute.
2. Kernels. When every pass holds, the graph is compiled for the target and
   run; outputs within the target's tolerance of the reference (EXACT, or four
   units in the last place of the narrowest float the graph computes in, when
   it computes in one below f32) mean nothing diverges. Otherwise
   each kernel of the target's fusion plan runs on the values the reference
   interpreter computes for its operands (all kernels side by side in one
   compile, each reading its operands as inputs of its own; if that finds
   none, each kernel compiled alone), and its results are compared with the
   reference's: the first kernel in launch order out of tolerance is the
   culprit, and its IR (the kernel's ops as a graph) is the reproducer. The stablehlo target runs one XLA module: its culprit is
   the module.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import ml_dtypes
import numpy as np

from .api import CLEANUP_PIPELINE, Progress, check_target, import_graph
from .ir.errors import LeptoncError
from .ir.graph import Graph
from .ir.printer import print_ir
from .passes import PassManager, ReferenceCheck, ReferenceMismatch, run_pipeline
from .passes.instruments import EXACT, first_divergence
from .passes.tolerance import Tolerance
from .runtime.reference import run_reference


@dataclass
class BisectResult:
    """What `bisect` found: `culprit` is "pass", "kernel", "module" or None (nothing diverges)."""

    culprit: str | None
    name: str | None             # the pass (as a pipeline writes it) or the kernel
    detail: str                  # the first diverging value
    graph: Graph | None = None   # the reproducer (None when nothing diverges)
    command: str = ""            # the command line that shows it on the reproducer saved as repro.lir

    @property
    def reproducer(self) -> str:
        """The reproducer as IR text that runs on its own (every constant inline); "" when nothing diverges."""
        return print_ir(self.graph, constants="inline") if self.graph is not None else ""

    def __str__(self) -> str:
        if self.culprit is None:
            return f"no divergence: {self.detail}\n"
        return (f"first diverging {self.culprit}: {self.name}\n{self.detail}\n"
                f"reproducer (large constants by name; `leptonc bisect ... -o repro.lir` or `.reproducer` has them "
                f"all), then `{self.command}`:\n{print_ir(self.graph)}")


def bisect(model, example_inputs=None, passes: str | None = None, target: str = "cpu") -> BisectResult:
    """Find the first pass, then the first kernel of `target`, whose result on `example_inputs` (default:
    random inputs shaped like the model's, sizes 1) diverges from the reference interpreter; see the module
    docstring."""
    target = check_target(target)
    graph = import_graph(model, example_inputs)
    inputs = _inputs(graph, example_inputs)
    pipelines = [",".join([CLEANUP_PIPELINE] + ([passes] if passes else [])), _target_pipeline(target)]
    check = ReferenceCheck(inputs, keep_before=True)
    stages = []
    try:
        for pipeline in filter(None, pipelines):
            graph = PassManager(pipeline, instruments=[check]).run(graph)
            stages.append(graph.copy())
    except ReferenceMismatch as e:
        reproducer = _smallest(e.before, str(e.entry), check.inputs_of(e.before), e.output)
        return BisectResult("pass", str(e.entry), e.problem, reproducer,
                            f'leptonc ir repro.lir --passes "{e.entry}" --check-reference-each')
    optimized = stages[0]  # what the target's compile starts from (it runs its own passes again)
    want = run_reference(optimized, *inputs)
    got = _compile(optimized, target, inputs).run(*inputs)
    tolerance = target_tolerance(optimized)
    found = first_divergence(want, got, tolerance, [v.name for v in optimized.outputs])
    if found is None:
        return BisectResult(None, None, f"every pass and the {target} target agree with the reference interpreter "
                                        f"(max rel error <= {tolerance.max_rel_error:g})")
    if target == "stablehlo":
        return BisectResult("module", "the XLA module", found[0], optimized,
                            "leptonc bisect repro.lir --target stablehlo")
    return _first_kernel(optimized, target, inputs, found[0])


def _first_kernel(graph: Graph, target: str, inputs: list, whole: str) -> BisectResult:
    """Each kernel of the plan on the reference's values of its operands: all of them side by side in one
    compile first (each kernel's operands are inputs of its own, so no kernel reads another's result), then,
    when that finds none, each kernel compiled alone."""
    from .codegen.listing import kernel_nodes, kernel_results, lower
    from .passes.fusion import memory_operands

    lowered, program = lower(graph, target)
    values = _reference_values(lowered, inputs)
    outputs = {id(v) for v in lowered.outputs}
    parts = [(k, kernel_nodes(k), [v for v in memory_operands(k) if v.producer is None or v.producer.op != "const"],
              kernel_results(k, outputs)) for k in program.plan.kernels]

    def culprit(k, nodes, operands, results, found) -> BisectResult:
        sub = _subgraph(lowered, k.name, [(nodes, operands, results)])
        return BisectResult("kernel", k.name, found[0], sub,
                            f"leptonc bisect repro.lir --target {target}")

    together = _subgraph(lowered, "kernels", [p[1:] for p in parts])
    feed = [values[v.name] for v in together.inputs]
    try:
        got = _compile(together, target, feed).run(*feed)
    except LeptoncError:
        got = None  # (checked one by one below)
    if got is not None:
        at = 0
        for k, nodes, operands, results in parts:
            found = first_divergence([values[v.name] for v in results], got[at:at + len(results)],
                                     target_tolerance(together), [v.name for v in results])
            if found is not None:
                return culprit(k, nodes, operands, results, found)
            at += len(results)
    alone = []  # kernels that do not compile on their own
    for k, nodes, operands, results in parts:
        sub = _subgraph(lowered, k.name, [(nodes, operands, results)])
        feed = [values[v.name] for v in operands]
        try:
            compiled = _compile(sub, target, feed)
        except LeptoncError as e:
            alone.append(f"{k.name} ({e})")
            continue
        try:
            found = first_divergence([values[v.name] for v in results], compiled.run(*feed),
                                     target_tolerance(sub), [v.name for v in results])
        except LeptoncError as e:  # the reference ran these values without an error
            found = (f"it fails where the reference does not: {e}", 0)
        if found is not None:
            return culprit(k, nodes, operands, results, found)
    skipped = f"; kernels that do not compile alone, so were not checked: {', '.join(alone)}" if alone else ""
    return BisectResult("kernel", None, f"the whole model diverges ({whole}), but no kernel does on its own: "
                        f"look at how kernels hand values to each other (buffers, layouts){skipped}",
                        lowered, f"leptonc bisect repro.lir --target {target}")


def target_tolerance(graph: Graph) -> Tolerance:
    """How far a target's result may be from the reference's: EXACT, or, when the graph computes in a float
    narrower than f32, four units in the last place of the narrowest (a target may accumulate in another
    order, and each rounding to the narrow type may then fall the other way)."""
    eps = [float(ml_dtypes.finfo(v.dtype.numpy).eps) for v in graph.values()
           if v.dtype.is_float and np.dtype(v.dtype.numpy).itemsize < 4]
    return replace(EXACT, max_rel_error=max([EXACT.max_rel_error] + [4 * e for e in eps]))


def _inputs(graph: Graph, example_inputs) -> list[np.ndarray]:
    if example_inputs is None:
        from .runtime.accuracy import sample_inputs

        return sample_inputs(graph, 1)[0]
    examples = list(example_inputs) if isinstance(example_inputs, (list, tuple)) else [example_inputs]
    return [np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x) for x in examples]


def _target_pipeline(target: str) -> str:
    if target == "cpu":
        from .codegen.cpu import TARGET_PIPELINE
    elif target == "triton":
        from .codegen.triton import TARGET_PIPELINE
    else:
        return ""
    return TARGET_PIPELINE


def _compile(graph: Graph, target: str, inputs: list):
    """The compiled model of `graph` for `target` (its own passes only: the graph is optimized already)."""
    progress = Progress(quiet=True)
    if target == "cpu":
        from .api import compile_cpu

        return compile_cpu(graph, [], progress, example_inputs=inputs)
    if target == "triton":
        from .codegen.triton import compile_triton

        return compile_triton(graph, [], progress, example_inputs=inputs)
    from . import __version__
    from .codegen.stablehlo import compile_stablehlo
    from .runtime.signature import example_bindings

    return compile_stablehlo(graph, {"leptonc_version": __version__, "pipeline": ""},
                             example_bindings(graph.inputs, inputs))


def _reference_values(graph: Graph, inputs: list) -> dict[str, np.ndarray]:
    """Every value of `graph` (by name) as the reference interpreter computes it on `inputs`."""
    probe = graph.copy()
    values = [v for n in probe.nodes if n.op != "const" for v in n.outputs]
    probe.set_outputs(values)
    out = dict(zip((v.name for v in values), run_reference(probe, *inputs)))
    out.update({v.name: x for v, x in zip(graph.inputs, inputs)})
    return out


def _subgraph(graph: Graph, name: str, parts: list) -> Graph:
    """Kernels of `graph` as one graph, side by side: `parts` holds (nodes, operands, results) per kernel; the
    operands (not constants) of each are inputs (one per value, shared by the kernels that read it), its
    constants stay, and the graph's outputs are every kernel's results in turn."""
    sub = Graph(name)
    position = {id(n): i for i, n in enumerate(graph.nodes)}
    inputs: dict[str, object] = {}  # (made first, so that they keep their names)
    for _, operands, _ in parts:
        for v in operands:
            if v.name not in inputs:
                inputs[v.name] = sub.add_input(v.name, v.type)
    constants: dict[str, object] = {}
    outputs = []
    for nodes, operands, results in parts:
        env = {id(v): inputs[v.name] for v in operands}
        for node in sorted(nodes, key=lambda n: position[id(n)]):
            for v in node.inputs:
                if id(v) not in env and v.producer is not None and v.producer.op == "const":
                    cname = v.producer.attrs["name"]
                    if cname not in constants:
                        constants[cname] = sub.add_constant(graph.constants[cname], cname)
                    env[id(v)] = constants[cname]
            made = sub.add_node(node.op, [env[id(v)] for v in node.inputs], dict(node.attrs),
                                names=[v.name for v in node.outputs], types=[v.type for v in node.outputs],
                                loc=node.loc)
            env.update({id(v): w for v, w in zip(node.outputs, made.outputs)})
        outputs += [env[id(v)] for v in results]
    sub.set_outputs(outputs)
    return sub


def _smallest(graph: Graph, entry: str, inputs: list, output: int, tries: int = 64) -> Graph:
    """A small graph on which pass `entry` still moves the outputs beyond its tolerance: `graph` cut to what its
    output `output` needs; then ending at the earliest value whose own cone still diverges; then cut above
    values (each made an input, fed the reference's value) while the pass still diverges, nearest the output
    first. At most `tries` trials each way."""
    values = _reference_values(graph, inputs)
    best, _ = _cut(graph, [graph.outputs[output].name], None)
    for name in [v.name for n in best.nodes if n.op != "const" for v in n.outputs][:tries]:
        trial, _ = _cut(best, [name], None)
        if _diverges(trial, entry, [values[v.name] for v in trial.inputs]):
            best = trial
            break
    for name in [v.name for n in reversed(best.nodes) if n.op != "const" for v in n.outputs][:tries]:
        trial, fed = _cut(best, [v.name for v in best.outputs], name)
        if trial is None:
            continue
        values[fed] = values[name]
        if _diverges(trial, entry, [values[v.name] for v in trial.inputs]):
            best = trial
    return best


def _cut(graph: Graph, outputs: list[str], at: str | None) -> tuple[Graph | None, str | None]:
    """(a copy of `graph` with these outputs, value `at` (when given) made an input, and what is left unused
    removed, nodes and inputs; the new input's name). None when `at` is no longer in it or is an output."""
    g = graph.copy()
    by_name = {v.name: v for v in g.values()}
    g.set_outputs([by_name[o] for o in outputs])
    fed = None
    if at is not None:
        v = by_name.get(at)
        if v is None or v.producer is None or at in outputs:
            return None, None
        new = g.add_input(at + "_in", v.type)
        g.replace_all_uses(v, new)
        fed = new.name
    g = run_pipeline(g, "dce")
    g.inputs = [x for x in g.inputs if x.uses]
    return g, fed


def _diverges(graph: Graph, entry: str, inputs: list) -> bool:
    try:
        PassManager(entry, instruments=[ReferenceCheck(inputs)]).run(graph.copy())
    except ReferenceMismatch:
        return True
    except LeptoncError:
        return False
    return False


__all__ = ["BisectResult", "bisect", "target_tolerance"]
