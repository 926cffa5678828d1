"""A whole model for the triton target: one Python module of Triton kernels and launchers, and a launch plan.

The module (`source`) starts with the prelude (imports, math helpers, the
block-size table), then, for each kernel of the fusion plan in order, its
`@triton.jit` function (a header comment lists the fused IR ops) and its
launcher; kernels of the same code (repeated layers) share the first one's
function and launcher, so Triton compiles it once; an attention kernel of the plan (scores matmul, softmax, output
matmul) is one flash-attention kernel (attention.py). The launch plan
(`meta`, JSON) says what the runtime does:

    inputs, outputs     the signature; each output names the buffer, input or
                        weight it comes from (reshapes are views: same memory)
    symbols             the graph's symbols, passed to every launcher
    buffers             intermediates: name, dtype, shape (dims), the launch that
                        writes it first and the one that reads it last
    steps               one per launch: its launcher and its arguments (input i,
                        weight name, buffer i, or the run's index error slot i),
                        then the buffers that die there
    index_checks        one per kernel that reads positions from a tensor: the
                        op (where), the dims it indexes and their sizes, its step
                        and which argument holds the indices (runtime/triton.py: IndexChecks)
    kernels, unfused    what the fusion planner did, for reports

Buffers are torch tensors allocated at their first kernel and dropped after
their last: on a GPU the caching allocator gives a dead buffer's memory to
the next one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ...ir import dims as D
from ...ir.size_checks import size_checks
from ...ir.graph import Graph, Node, Value
from .. import Program, check_dtypes, graph_symbols
from ...passes.fusion import Kernel, memory_operands, plan_fusion, view_root
from .attention import emit_attention
from .kernels import KernelContext, emit_kernel, kernel_header, kernel_source
from .prelude import PRELUDE
from .texpr import TL_TYPES, UnsupportedError


def generate(graph: Graph) -> Program:
    """The Triton module and launch plan for a graph that the `fuse` pass has prepared."""
    check_dtypes(graph, "triton", TL_TYPES, UnsupportedError)
    return _Generator(graph).run()


class _Generator:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.plan = plan_fusion(graph)
        self.symbols = graph_symbols(graph)
        self.refs: dict[int, dict] = {id(v): {"input": i} for i, v in enumerate(graph.inputs)}
        self.buffers: list[dict] = []
        self.step_of: dict[int, int] = {}               # id(node) -> index of the launch that computes it
        for i, k in enumerate(self.plan.kernels):
            for n in k.nodes + k.absorbed:
                self.step_of[id(n)] = i

    def run(self) -> Program:
        steps, kernels, checks = [], [], []
        functions: dict[str, _Function] = {}  # kernel code with its own name taken out -> its function
        aliases = []
        for i, k in enumerate(self.plan.kernels):
            ext, outs = self._interface(k)
            names = {id(v): f"x{j}" for j, v in enumerate(ext)}
            names.update({id(v): f"y{j}" for j, v in enumerate(outs)})
            for v in outs:
                self._new_buffer(v, i)
            ctx = KernelContext(self.graph, names, k.nodes[0].label)
            em = emit_attention(ctx, k) if k.kind == "attention" else emit_kernel(ctx, k)
            params, args = [names[id(v)] for v in ext + outs], [self._ref(v) for v in ext + outs]
            if ctx.index_check is not None:
                params.append("err")
                args.append({"index_error": len(checks)})
                checks.append(dict(ctx.index_check, step=i, arg=[id(v) for v in ext].index(id(k.nodes[0].inputs[1]))))
            jit, launcher = kernel_source(k.name, params, self.symbols, em)
            code = _local_names_numbered((jit + launcher).replace(k.name, "@"))
            if code in functions:  # repeated layers share one function: Triton compiles it once
                functions[code].also.append(k.name)
                aliases.append(f"launch_{k.name} = launch_{functions[code].kernel.name}")
            else:
                functions[code] = _Function(k, jit, launcher)
            steps.append({"kernel": k.name, "args": args, "free": []})
            kernels.append({"name": k.name, "kind": k.kind, "ops": k.describe_ops()})
        parts = [PRELUDE] + [part for f in functions.values() for part in f.text()] \
            + (["\n".join(aliases) + "\n"] if aliases else [])
        outputs = [dict(self._ref(v), shape=list(v.shape)) for v in self.graph.outputs]
        for o in outputs:
            if "buffer" in o:
                self.buffers[o["buffer"]]["last"] = len(steps)  # outputs outlive every kernel
        for b, buf in enumerate(self.buffers):
            if buf["last"] < len(steps):
                steps[buf["last"]]["free"].append(b)
        meta = {
            "symbols": self.symbols,
            "inputs": [_entry(v) for v in self.graph.inputs],
            "outputs": [dict(_entry(v), source=o) for v, o in zip(self.graph.outputs, outputs)],
            "buffers": self.buffers,
            "steps": steps,
            "weights": sorted({a["weight"] for s in steps for a in s["args"] if "weight" in a}
                              | {o["weight"] for o in outputs if "weight" in o}),
            "intermediates": [{"name": b["name"], "bytes": D.mul(D.product(b["shape"]), b["itemsize"])}
                              for b in self.buffers],
            "kernels": kernels,
            "index_checks": checks,
            "signed_dims": [list(s) for s in size_checks(self.graph)],  # (JSON)
            "unfused": [{"producer": p.producer.label, "consumer": p.consumer.label, "reason": p.reason}
                        for p in self.plan.unfused],
        }
        source = f"# generated by leptonc for graph @{self.graph.name}: Triton kernels and their launchers\n" \
            + "\n\n".join(parts)
        return Program(source, meta, self.plan)

    # -- what each launch reads and writes -----------------------------------------
    def _interface(self, k: Kernel) -> tuple[list[Value], list[Value]]:
        ext = [v for v in memory_operands(k) if not self._inline_literal(k, v)]
        outs = [v for n in k.nodes for v in n.outputs if self._materialized(k.nodes, v)]
        return ext, outs

    def _inline_literal(self, k: Kernel, v: Value) -> bool:
        """A one-element constant read by fused elementwise code is a literal in the source."""
        arr = self.graph.constant_of(v)
        return arr is not None and arr.size == 1 and all(u in k.loop_nodes for u, _ in v.uses if u in k.nodes)

    def _materialized(self, nodes: list[Node], v: Value) -> bool:
        if any(o is v for o in self.graph.outputs):
            return True
        mine = {id(n) for n in nodes}
        return any(id(u) not in mine for u, _ in v.uses)

    def _new_buffer(self, v: Value, first: int) -> None:
        self.refs[id(v)] = {"buffer": len(self.buffers)}
        self.buffers.append({"name": v.name, "dtype": v.dtype.value, "shape": list(v.shape),
                             "itemsize": int(v.dtype.itemsize), "first": first,
                             "last": max([first] + self._readers(v))})

    def _readers(self, v: Value) -> list[int]:
        out = []
        for u, _ in v.uses:
            if u.op == "reshape":
                out += self._readers(u.outputs[0])
            elif id(u) in self.step_of:
                out.append(self.step_of[id(u)])
            elif u.op == "transpose":  # absorbed by a matmul
                out += self._readers(u.outputs[0])
        return out

    def _ref(self, v: Value) -> dict:
        root = view_root(v)
        if id(root) in self.refs:
            return self.refs[id(root)]
        p = root.producer
        if p is not None and p.op == "const":
            return {"weight": p.attrs["name"]}
        raise AssertionError(f"{v.name} is read before any kernel writes it")


@dataclass
class _Function:
    """A kernel's @triton.jit function and launcher, which kernels of the same code (`also`) launch too."""

    kernel: Kernel
    jit: str
    launcher: str
    also: list[str] = field(default_factory=list)

    def text(self) -> list[str]:
        k = self.kernel
        sources = list(dict.fromkeys(n.loc for n in k.absorbed + k.nodes if n.loc))
        source = f"# from {', '.join(sources)}\n" if sources else ""
        return [kernel_header(k.name, k.kind, k.describe_ops(), self.also) + source + self.jit, self.launcher]


def _local_names_numbered(code: str) -> str:
    """Kernel code with its tile variables (v_<IR value name>) renamed v0, v1, ... in order of first use: two
    layers' kernels are the same code when only their value names differ."""
    numbers: dict[str, str] = {}
    return _TILE_VARIABLE.sub(lambda m: numbers.setdefault(m.group(0), f"v{len(numbers)}"), code)


_TILE_VARIABLE = re.compile(r"\bv_\w+")


def _entry(v: Value) -> dict:
    return {"name": v.name, "dtype": v.dtype.value, "shape": list(v.shape)}
