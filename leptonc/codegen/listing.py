"""The kernel targets' fusion plan and generated code as text: what `leptonc ir --emit plan|c|triton` prints.

    program = lower(graph, "cpu")        # the target's pipeline, its fusion plan and its code
    print(plan_text(graph_after, program.plan, "cpu"))
    print(program.source)                # C for cpu, a Python module of Triton kernels for triton

The plan lists every kernel in launch order with the IR statements it runs
(`absorbed` ones are transposes or splits it reads through strides), what it
reads from memory and what it writes, then the views that need no code and
each producer/consumer pair left unfused with the reason. The cpu and triton
targets plan with the same planner (passes/fusion.py); the cpu target also
reads some transposes in place (a conv's channels-first image), so the plans
can differ.
"""
from __future__ import annotations

from ..ir.errors import LeptoncError
from ..ir.graph import Graph, Node, Value
from ..ir.printer import format_node
from ..passes.fusion import FusionPlan, Kernel, memory_operands

KERNEL_TARGETS = ("cpu", "triton")


def lower(graph: Graph, target: str):
    """(graph after the target's pipeline, its generated program: .plan, .source, .meta) for a copy of
    `graph`."""
    from ..passes import run_pipeline

    if target == "cpu":
        from .cpu import TARGET_PIPELINE
        from .cpu.program import generate
    elif target == "triton":
        from .triton import TARGET_PIPELINE
        from .triton.program import generate
    else:
        raise LeptoncError(f"a fusion plan is that of a kernel target ({', '.join(KERNEL_TARGETS)}), not {target!r}")
    lowered = run_pipeline(graph, TARGET_PIPELINE)
    return lowered, generate(lowered)


def plan_text(graph: Graph, plan: FusionPlan, target: str) -> str:
    """The plan as text (see the module docstring)."""
    count = f"{len(plan.kernels)} kernel" + ("" if len(plan.kernels) == 1 else "s")
    lines = [f"// fusion plan of @{graph.name} for the {target} target: {count}"]
    outputs = {id(v) for v in graph.outputs}
    for k in plan.kernels:
        lines.append(f"kernel {k.name} [{k.kind}]")
        for n in k.absorbed:
            lines.append(f"  absorbed {format_node(n, graph)}")
        for n in k.nodes:
            lines.append(f"  {format_node(n, graph)}")
        lines.append(f"  reads {_names(memory_operands(k))}")
        lines.append(f"  writes {_names(kernel_results(k, outputs))}")
    if plan.views:
        lines.append("views (no code, shared memory):")
        lines += [f"  {format_node(n, graph)}" for n in plan.views]
    for p in plan.unfused:
        lines.append(f"unfused {p.producer.statement} -> {p.consumer.statement}: {p.reason}")
    return "\n".join(lines) + "\n"


def kernel_results(k: Kernel, graph_outputs: set[int]) -> list[Value]:
    """The values a kernel writes to memory: those read after it, or graph outputs."""
    inside = {id(n) for n in k.absorbed + k.nodes}
    return [v for n in k.nodes for v in n.outputs
            if id(v) in graph_outputs or any(id(u) not in inside for u in v.users)]


def kernel_nodes(k: Kernel) -> list[Node]:
    """Every IR node a kernel computes (absorbed ones first)."""
    return k.absorbed + k.nodes


def _names(values) -> str:
    return ", ".join(f"%{v.name}" for v in values) or "nothing"
