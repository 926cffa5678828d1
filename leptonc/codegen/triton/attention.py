"""The fusion plan's attention kernel as one flash-attention Triton kernel.

An attention kernel of the plan holds three parts:

    S = Q @ K^T  (+ epilogue: scale, mask)      a matmul
    P = softmax(S) over the key axis            a row kernel: reduce_max, sub, exp, reduce_sum, div
    O = P @ V    (+ epilogue)                   a matmul

where S and P are read by nothing else (and possibly a transpose of O that
the kernel writes directly). The triton target emits them as one
flash-attention kernel: each program holds BLOCK_M query rows and walks
the keys BLOCK_N at a time, computing the score tile with tl.dot, applying
the scores epilogue to it, and keeping a running max, running sum and
output accumulator (online softmax), so S and P never reach memory. The
fused ops and their order are the plan's; only the schedule changes.
"""
from __future__ import annotations

from ...ir import dims as D
from ...ir.graph import Value
from ...passes.fusion import Kernel, operand_layout
from .. import transposed_strides
from .kernels import Emitted, KernelContext, _batch_offset, _times, widen_bf16
from .texpr import tltype
from .tiles import Space, TileEmitter


def emit_attention(ctx: KernelContext, att: Kernel) -> Emitted:
    graph = ctx.graph
    scores, softmax, output = att.parts
    qk, pv = scores.nodes[0], output.nodes[0]
    q_ptr, q_shape, q_str = _operand(ctx, qk.inputs[0], att)
    k_ptr, k_shape, k_str = _operand(ctx, qk.inputs[1], att)
    v_ptr, v_shape, v_str = _operand(ctx, pv.inputs[1], att)
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
    body += [f"q = tl.load({q_ptr} + {q_off}{_times('rm[:, None]', q_str[-2])} + "
             f"{_times('rd[None, :]', q_str[-1])}, mask=(rm[:, None] < M) & (rd[None, :] < D), other=0.0)",
             *widen_bf16("q", qk.inputs[0]),
             'm_i = tl.full([BLOCK_M], -float("inf"), tl.float32)  # running max of each query row',
             "l_i = tl.full([BLOCK_M], 0.0, tl.float32)            # running sum of exp(score - m_i)",
             "acc = tl.full((BLOCK_M, BLOCK_E), 0.0, tl.float32)",
             "for n0 in range(0, N, BLOCK_N):"]
    loop += ["rn = n0 + tl.arange(0, BLOCK_N)",
             f"kt = tl.load({k_ptr} + {k_off}{_times('rd[:, None]', k_str[-2])} + "
             f"{_times('rn[None, :]', k_str[-1])}, mask=(rd[:, None] < D) & (rn[None, :] < N), other=0.0)",
             *widen_bf16("kt", qk.inputs[1]),
             "mask = (rm[:, None] < M) & (rn[None, :] < N)",
             f"v_{_name(s_val)} = tl.dot(q, kt, input_precision=PRECISION).to({tltype(s_val.dtype)})"]
    rank = len(s_val.shape)
    s_space.define(rank - 2, "rm[:, None]", True, axis=True)
    s_space.define(rank - 1, "rn[None, :]", True, axis=True)
    s_space.flat = None
    s_space.mask = "mask"
    epilogue = TileEmitter(graph, s_space, ctx.names, {id(s_val): f"v_{_name(s_val)}"})
    epilogue.emit(scores.loop_nodes)
    s = epilogue.values[id(scores.nodes[-1].outputs[0])]
    p_dtype = tltype(softmax.nodes[-1].outputs[0].dtype)
    loop += [f"s = tl.where(rn[None, :] < N, ({s}).to(tl.float32), -float(\"inf\"))",
             "m_new = tl.maximum(m_i, tl.reduce(s, 1, lep_max))",
             'm_safe = tl.where(m_new == -float("inf"), 0.0, m_new)  # rows masked so far stay empty',
             "alpha = tl.exp(m_i - m_safe)",
             "p = tl.exp(s - m_safe[:, None])",
             "l_i = l_i * alpha + tl.reduce(p, 1, lep_add)",
             f"vt = tl.load({v_ptr} + {v_off}{_times('rn[:, None]', v_str[-2])} + "
             f"{_times('re[None, :]', v_str[-1])}, mask=(rn[:, None] < N) & (re[None, :] < E), other=0.0)",
             f"pt = p.to({p_dtype})",
             *widen_bf16("vt", pv.inputs[1]),
             *widen_bf16("pt", pv.inputs[0]),
             "acc = acc * alpha[:, None] + tl.dot(pt, vt, input_precision=PRECISION)",
             "m_i = m_new"]
    body += ["    " + line for line in loop]
    body += ["o_mask = (rm[:, None] < M) & (re[None, :] < E)",
             f"v_{_name(o_val)} = (acc / l_i[:, None]).to({tltype(o_val.dtype)})"]
    ob = len(batch)
    out_space.define(ob, "rm[:, None]", True, axis=True)
    out_space.define(ob + 1, "re[None, :]", True, axis=True)
    out_space.flat = ("bid * M * E + " if batch else "") + "rm[:, None] * E + re[None, :]"
    out_space.mask = "o_mask"
    out = TileEmitter(graph, out_space, ctx.names, {id(o_val): f"v_{_name(o_val)}"})
    if id(o_val) in ctx.names:
        body.append(out_space.store(ctx.ptr(o_val), o_val.shape, f"v_{_name(o_val)}"))
    out.emit(output.loop_nodes)
    t = att.out_transpose
    if t is not None and id(t.outputs[0]) in ctx.names:  # the result in the transpose's layout
        body.append(out_space.store(ctx.ptr(t.outputs[0]), t.inputs[0].shape, out.values[id(t.inputs[0])],
                                    transposed_strides(t)))
    setup = [f"M, N, D, E = {d(M)}, {d(N)}, {d(Dq)}, {d(E)}",
             "BLOCK_M, BLOCK_N, _, warps, stages = dot_blocks(M, N, D, %d)" % s_val.dtype.itemsize,
             "BLOCK_D, BLOCK_E = max(16, row_block(D)), max(16, row_block(E))"]
    grid = f"(triton.cdiv(M, BLOCK_M), {ctx.numel(batch)})" if batch else "(triton.cdiv(M, BLOCK_M),)"
    return Emitted(body, ["BLOCK_M", "BLOCK_N", "BLOCK_D", "BLOCK_E", "PRECISION"], setup, grid,
                   "PRECISION=DOT_PRECISION, num_warps=warps, num_stages=stages", guard="M * E == 0")


def _operand(ctx: KernelContext, v: Value, att: Kernel) -> tuple[str, list, list]:
    """(pointer, shape, element strides) of Q, K^T or V, read through the kernel's absorbed nodes."""
    mem, offset, shape, strides = operand_layout(v, att.absorbed)
    return (ctx.ptr(mem) if D.same(offset, 0) else f"({ctx.ptr(mem)} + {ctx.d(offset)})"), shape, strides


def _name(v: Value) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in v.name)

