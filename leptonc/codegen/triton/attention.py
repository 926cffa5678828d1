"""Attention as one kernel: the fusion plan's scores matmul, softmax row kernel and output matmul, merged.

The fusion planner gives attention as three consecutive kernels:

    S = Q @ K^T  (+ epilogue: scale, mask)      a matmul kernel
    P = softmax(S) over the key axis            a row kernel: reduce_max, sub, exp, reduce_sum, div
    O = P @ V    (+ epilogue)                   a matmul kernel

where S and P are read by nothing else. The triton target emits the three as
one flash-attention kernel: each program holds BLOCK_M query rows and walks
the keys BLOCK_N at a time, computing the score tile with tl.dot, applying
the scores epilogue to it, and keeping a running max, running sum and
output accumulator (online softmax), so S and P never reach memory. The
fused ops and their order are the plan's; only the schedule changes.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...ir import dims as D
from ...ir.graph import Graph, Node, Value
from ...passes.fusion import FusionPlan, Kernel
from .kernels import Emitted, KernelContext, _batch_offset, _times, operand_view
from .texpr import tltype
from .tiles import Space, TileEmitter


@dataclass
class Attention:
    scores: Kernel
    softmax: Kernel
    output: Kernel

    @property
    def kernels(self) -> list[Kernel]:
        return [self.scores, self.softmax, self.output]


def group_kernels(plan: FusionPlan, graph: Graph) -> list[list[Kernel]]:
    """The plan's kernels in order, each alone or, for an attention chain, the three together."""
    groups, i = [], 0
    ks = plan.kernels
    while i < len(ks):
        if i + 2 < len(ks) and _is_attention(graph, ks[i], ks[i + 1], ks[i + 2]):
            groups.append(ks[i:i + 3])
            i += 3
        else:
            groups.append([ks[i]])
            i += 1
    return groups


def _result(k: Kernel) -> Value:
    return k.nodes[-1].outputs[0]


def _only_read_by(graph: Graph, v: Value, readers: list[Node]) -> bool:
    return all(o is not v for o in graph.outputs) and all(any(u is r for r in readers) for u, _ in v.uses)


def _is_attention(graph: Graph, scores: Kernel, softmax: Kernel, output: Kernel) -> bool:
    if scores.kind != "matmul" or softmax.kind != "loop" or output.kind != "matmul" or softmax.reduce_rank != 1:
        return False
    if any(n.op in ("reduce_max", "reduce_sum") for n in scores.loop_nodes):
        return False
    ops = [n.op for n in softmax.nodes]
    if ops != ["reduce_max", "sub", "exp", "reduce_sum", "div"]:
        return False
    mx, sub, exp, total, div = softmax.nodes
    s = _result(scores)
    if not (mx.inputs[0] is s and sub.inputs[0] is s and sub.inputs[1] is mx.outputs[0] and exp.inputs[0] is
            sub.outputs[0] and total.inputs[0] is exp.outputs[0] and div.inputs[0] is exp.outputs[0]
            and div.inputs[1] is total.outputs[0]):
        return False
    if not all(n.attrs.get("keepdims") for n in (mx, total)) or s.type.rank < 2:
        return False
    p = div.outputs[0]
    pv = output.nodes[0]
    if pv.inputs[0] is not p or pv.inputs[1] is p or not s.dtype.is_float:
        return False
    if len(s.shape) != len(pv.outputs[0].shape) or not all(D.same(a, b) for a, b in zip(s.shape[:-2],
                                                                                      pv.outputs[0].shape[:-2])):
        return False  # one program's query rows share their batch index with the output
    inside = scores.nodes + softmax.nodes
    if not _only_read_by(graph, s, [mx, sub]) or not _only_read_by(graph, p, [pv]):
        return False
    # nothing else the scores kernel or the softmax computes may be needed outside
    return all(_only_read_by(graph, v, inside) for n in scores.nodes + softmax.nodes[:-1] for v in n.outputs)


def emit_attention(ctx: KernelContext, att: Attention) -> Emitted:
    graph = ctx.graph
    qk, pv = att.scores.nodes[0], att.output.nodes[0]
    q_val, q_shape, q_str = operand_view(qk.inputs[0], att.scores.absorbed)
    k_val, k_shape, k_str = operand_view(qk.inputs[1], att.scores.absorbed)
    v_val, v_shape, v_str = operand_view(pv.inputs[1], att.output.absorbed)
    s_val, o_val = qk.outputs[0], pv.outputs[0]
    d = ctx.d
    M, Dq, N, E = q_shape[-2], q_shape[-1], k_shape[-1], v_shape[-1]
    batch = tuple(o_val.shape[:-2])
    body = [f"M, N, D, E = {d(M)}, {d(N)}, {d(Dq)}, {d(E)}",
            "rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)",
            "rd = tl.arange(0, BLOCK_D)",
            "re = tl.arange(0, BLOCK_E)"]
    out_space = Space(o_val.shape, body, ctx.where, prefix="o")
    loop: list[str] = []
    s_space = Space(s_val.shape, loop, ctx.where, prefix="s")
    if batch:
        body.append("bid = tl.program_id(1)")
        out_space.unravel(range(len(batch)), "bid", False)
        s_space.unravel(range(len(batch)), "bid", False)
    q_off = _batch_offset(out_space, batch, q_shape, q_str)
    k_off = _batch_offset(out_space, batch, k_shape, k_str)
    v_off = _batch_offset(out_space, batch, v_shape, v_str)
    body += [f"q = tl.load({ctx.ptr(q_val)} + {q_off}{_times('rm[:, None]', q_str[-2])} + "
             f"{_times('rd[None, :]', q_str[-1])}, mask=(rm[:, None] < M) & (rd[None, :] < D), other=0.0)",
             'm_i = tl.full([BLOCK_M], -float("inf"), tl.float32)  # running max of each query row',
             "l_i = tl.full([BLOCK_M], 0.0, tl.float32)            # running sum of exp(score - m_i)",
             "acc = tl.full((BLOCK_M, BLOCK_E), 0.0, tl.float32)",
             "for n0 in range(0, N, BLOCK_N):"]
    loop += ["rn = n0 + tl.arange(0, BLOCK_N)",
             f"kt = tl.load({ctx.ptr(k_val)} + {k_off}{_times('rd[:, None]', k_str[-2])} + "
             f"{_times('rn[None, :]', k_str[-1])}, mask=(rd[:, None] < D) & (rn[None, :] < N), other=0.0)",
             "mask = (rm[:, None] < M) & (rn[None, :] < N)",
             f"v_{_name(s_val)} = tl.dot(q, kt, input_precision=PRECISION).to({tltype(s_val.dtype)})"]
    rank = len(s_val.shape)
    s_space.define(rank - 2, "rm[:, None]", True)
    s_space.define(rank - 1, "rn[None, :]", True)
    s_space.flat = None
    s_space.mask = "mask"
    scores = TileEmitter(graph, s_space, ctx.names, {id(s_val): f"v_{_name(s_val)}"})
    scores.emit(att.scores.loop_nodes)
    s = scores.values[id(_result(att.scores))]
    p_dtype = tltype(att.softmax.nodes[-1].outputs[0].dtype)
    loop += [f"s = tl.where(rn[None, :] < N, ({s}).to(tl.float32), -float(\"inf\"))",
             "m_new = tl.maximum(m_i, tl.reduce(s, 1, lep_max))",
             'm_safe = tl.where(m_new == -float("inf"), 0.0, m_new)  # rows masked so far stay empty',
             "alpha = tl.exp(m_i - m_safe)",
             "p = tl.exp(s - m_safe[:, None])",
             "l_i = l_i * alpha + tl.reduce(p, 1, lep_add)",
             f"vt = tl.load({ctx.ptr(v_val)} + {v_off}{_times('rn[:, None]', v_str[-2])} + "
             f"{_times('re[None, :]', v_str[-1])}, mask=(rn[:, None] < N) & (re[None, :] < E), other=0.0)",
             f"acc = acc * alpha[:, None] + tl.dot(p.to({p_dtype}), vt, input_precision=PRECISION)",
             "m_i = m_new"]
    body += ["    " + line for line in loop]
    body += ["o_mask = (rm[:, None] < M) & (re[None, :] < E)",
             f"v_{_name(o_val)} = (acc / l_i[:, None]).to({tltype(o_val.dtype)})"]
    ob = len(batch)
    out_space.define(ob, "rm[:, None]", True)
    out_space.define(ob + 1, "re[None, :]", True)
    out_space.flat = (f"bid * M * E + " if batch else "") + "rm[:, None] * E + re[None, :]"
    out_space.mask = "o_mask"
    out = TileEmitter(graph, out_space, ctx.names, {id(o_val): f"v_{_name(o_val)}"})
    if id(o_val) in ctx.names:
        body.append(out_space.store(ctx.ptr(o_val), o_val.shape, f"v_{_name(o_val)}"))
    out.emit(att.output.loop_nodes)
    setup = [f"M, N, D, E = {d(M)}, {d(N)}, {d(Dq)}, {d(E)}",
             "BLOCK_M, BLOCK_N, _, warps, stages = dot_blocks(M, N, D, %d)" % s_val.dtype.itemsize,
             "BLOCK_D, BLOCK_E = max(16, row_block(D)), max(16, row_block(E))"]
    grid = f"(triton.cdiv(M, BLOCK_M), {ctx.numel(batch)})" if batch else "(triton.cdiv(M, BLOCK_M),)"
    return Emitted(body, ["BLOCK_M", "BLOCK_N", "BLOCK_D", "BLOCK_E", "PRECISION"], setup, grid,
                   "PRECISION=DOT_PRECISION, num_warps=warps, num_stages=stages", guard="M * E == 0")


def _name(v: Value) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in v.name)


def describe(att: Attention) -> list[str]:
    return [op for k in att.kernels for op in k.describe_ops()]


def title(att: Attention) -> str:
    return att.scores.name.split("_")[0] + "_attention"
