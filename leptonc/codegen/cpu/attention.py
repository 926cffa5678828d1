"""The fusion plan's attention kernel in C: flash attention over blocks of query rows (attention.c).

The kernel holds the plan's three parts: the scores matmul S = Q @ K^T with
its epilogue (scale, additive mask, causal where...), the softmax of S over
the keys, and O = P @ V with its epilogue. Each task of the parallel loop
takes one batch index (batch and heads) and a block of query rows; it walks
the keys a block at a time: raw scores from the packed keys, the scores
epilogue applied to the tile (generated here, operands read through their
broadcast strides), online softmax and the P @ V update (attention.c).
Under a causal mask (a constant where(mask, s, -inf) that hides key j from
query i when j > i + c) a block of rows skips the keys none of them sees.
Finally o / l goes through the output epilogue into the materialized
results. Q, K and V are read through the strides of the transposes the plan
absorbed (the head split costs no copy) and the result is written through
the transpose that merges the heads back, so S and P never reach memory and
no copy moves the heads.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...ir import dims as D
from ...ir.dims import contiguous_strides
from ...ir.dtypes import DType
from ...ir.graph import Graph, Node, Value
from ...passes.fusion import Kernel, operand_layout
from ..kernel_body import constant_exponent
from .cexpr import UnsupportedError, cnumel, ctype, elementwise_expr, literal
from .. import transposed_strides
from .kernels import KernelContext

ATTENTION_SOURCE = Path(__file__).with_name("attention.c").read_text()


def emit_attention(ctx: KernelContext, k: Kernel) -> list[str]:
    scores, _, output = k.parts
    qk, pv = scores.nodes[0], output.nodes[0]
    s_val, o_val = qk.outputs[0], pv.outputs[0]
    for v in (*qk.inputs, pv.inputs[1], s_val, o_val):
        if v.dtype is not DType.f32:
            raise UnsupportedError(f"{ctx.where}: attention over {v.dtype} values is not supported by the cpu "
                                   "target (f32 is)")
    q, q_shape, q_str = _operand(ctx, qk.inputs[0], k)
    kt, kt_shape, kt_str = _operand(ctx, qk.inputs[1], k)
    v, v_shape, v_str = _operand(ctx, pv.inputs[1], k)
    batch = tuple(s_val.shape[:-2])
    d = ctx.d
    lines = [f"const int64_t M = {d(q_shape[-2])}, N = {d(kt_shape[-1])}, D = {d(q_shape[-1])}, "
             f"E = {d(v_shape[-1])}, NB = {cnumel(batch, ctx.where)};",
             "const int64_t TM = lep_att_chunk(NB, M), MT = (M + TM - 1) / TM;",
             "#pragma omp parallel if (NB * MT > 1 && NB * M * N * (D + E) > 262144)",
             "{",
             "  lep_att_tile t;",
             "  lep_att_tile_init(&t, D, E);",
             "  #pragma omp for schedule(dynamic)",
             "  for (int64_t task = 0; task < NB * MT; ++task) {",
             "    const int64_t m0 = (task % MT) * TM, rows = M - m0 < TM ? M - m0 : TM;"]
    body = _batch_indices(ctx, batch)
    q_off = _batch_offset(ctx, batch, q_shape, q_str)
    k_off = _batch_offset(ctx, batch, kt_shape, kt_str)
    v_off = _batch_offset(ctx, batch, v_shape, v_str)
    off = _causal_offset(ctx.graph, scores)
    end = "N" if off is None else f"(N < m0 + rows + {off} ? N : m0 + rows + {off})"  # keys any row sees
    block = "LEP_ATT_BM" if off is None else "LEP_ATT_BMC"
    body += [f"lep_att_load_q(&t, {q} + {q_off} + m0 * {d(q_str[-2])}, {d(q_str[-2])}, {d(q_str[-1])}, rows);",
             "lep_att_begin(&t, rows);",
             f"const int64_t kend = {end};",
             "for (int64_t n0 = 0; n0 < kend; n0 += LEP_ATT_BN) {",
             "  const int64_t keys = kend - n0 < LEP_ATT_BN ? kend - n0 : LEP_ATT_BN;",
             f"  lep_att_pack(&t, {kt} + {k_off} + n0 * {d(kt_str[-1])}, {d(kt_str[-2])}, {d(kt_str[-1])}, "
             f"{v} + {v_off} + n0 * {d(v_str[-2])}, {d(v_str[-2])}, {d(v_str[-1])}, keys);",
             f"  for (int64_t i0 = 0; i0 < rows; i0 += {block}) {{",
             f"    const int64_t bm = rows - i0 < {block} ? rows - i0 : {block};"]
    if off is None:
        body.append("    const int64_t nk = keys;")
    else:  # the keys past the block's last row are masked for all its rows
        body += [f"    const int64_t seen = m0 + i0 + bm + {off} - n0, nk = seen < keys ? seen : keys;",
                 "    if (nk <= 0) continue;"]
    body.append("    lep_att_scores(&t, i0, bm, nk);")
    if scores.loop_nodes:
        tile = _Tile(ctx, s_val.shape, "m0 + i0", "n0", "bm", "nk")
        result = scores.nodes[-1].outputs[0]
        body += ["    " + s for s in tile.emit(scores.loop_nodes, (s_val, "s_[j]"), "float* s_ = t.s + i * t.lds;",
                                               [("s_", result, 0, 1)])]
    body += ["    lep_att_update(&t, i0, bm, nk);",
             "  }",
             "}"]
    stores = []
    for x, dst, strides in _stores(ctx, k):
        name = f"w{len(stores)}"
        stores.append((name, x, f"{ctx.ptr(dst)} + {_batch_offset(ctx, batch, x.shape, strides)}", strides))
    tile = _Tile(ctx, o_val.shape, "m0", "0", "rows", "E")
    setup = "const float* o_ = t.o + i * t.ldo; const float inv = 1.0f / t.l[i];"
    for name, x, base, strides in stores:
        setup += f" {ctype(x.dtype)}* {name} = {base} + (m0 + i) * {d(strides[-2])};"
    body += tile.emit(output.loop_nodes, (o_val, "(o_[j] * inv)"), setup,
                      [(name, x, 0, strides[-1]) for name, x, _, strides in stores])
    lines += ["    " + s for s in body]
    lines += ["  }", "}"]
    return lines


def _causal_offset(graph: Graph, scores: Kernel) -> int | None:
    """c when the scores epilogue ends by masking out key j of query i, where(mask, s, -inf) with a constant
    mask, exactly when j > i + c (the same for every batch index): keys past a block's last row + c need no
    work, their probabilities being exactly 0."""
    last = scores.nodes[-1]
    if last is scores.nodes[0] or last.op != "where":
        return None
    cond, fill = graph.constant_of(last.inputs[0]), graph.constant_of(last.inputs[2])
    m, n = last.outputs[0].shape[-2:]
    if cond is None or fill is None or fill.size != 1 or not np.isneginf(fill).all() or cond.ndim < 2 \
            or not isinstance(m, int) or not isinstance(n, int) or tuple(cond.shape[-2:]) != (m, n):
        return None
    masks = cond.reshape(-1, m, n)
    seen = masks[0].sum(axis=1)
    partial = np.flatnonzero((seen > 0) & (seen < n))  # a row that sees some keys, not all, fixes c
    if not partial.size:
        return None
    c = int(seen[partial[0]]) - 1 - int(partial[0])
    causal = np.arange(n)[None, :] <= np.arange(m)[:, None] + c
    return c if all(np.array_equal(mask, causal) for mask in masks) else None


def _operand(ctx: KernelContext, v: Value, k: Kernel) -> tuple[str, list, list]:
    """(C pointer, shape, element strides) of Q, K^T or V, read through the kernel's absorbed nodes."""
    mem, offset, shape, strides = operand_layout(v, k.absorbed)
    return f"({ctx.ptr(mem)} + {ctx.d(offset)})", shape, strides


def _stores(ctx: KernelContext, k: Kernel) -> list[tuple[Value, Value, list]]:
    """(value, destination, element strides of the value in the destination) of each result written."""
    out = [(v, v, contiguous_strides(v.shape)) for n in k.parts[-1].nodes for v in n.outputs if id(v) in ctx.names]
    t = k.out_transpose
    if t is not None and id(t.outputs[0]) in ctx.names:
        out.append((t.inputs[0], t.outputs[0], transposed_strides(t)))
    return out


def _batch_indices(ctx: KernelContext, batch: tuple) -> list[str]:
    """b0, b1, ...: the task's index along each batch dim."""
    lines = ["int64_t rem = task / MT; (void)rem;"]
    for i in reversed(range(len(batch))):
        lines.append(f"const int64_t b{i} = rem % {ctx.d(batch[i])}; rem /= {ctx.d(batch[i])};")
    return lines


def _batch_offset(ctx: KernelContext, batch: tuple, shape, strides) -> str:
    """Element offset of the task's batch index in an operand of `shape` (broadcast to the batch dims)."""
    rank = len(batch)
    lead = len(shape) - 2 - rank  # operand batch dims beyond the domain's: none, or leading 1s
    terms = []
    for i in range(rank):
        a = i + lead
        if a < 0 or D.same(shape[a], 1):
            continue
        terms.append(f"b{i} * {ctx.d(strides[a])}")
    return "(" + (" + ".join(terms) or "0") + ")"


class _Tile:
    """Fused elementwise ops over a tile of rows x cols of a domain [batch..., R, C], one row at a time.

    The tile starts at (row0, col0); the task's batch index is b0, b1...; `seed` is the value the tile
    holds (the raw scores, the attention output) and its C expression at column j of row i."""

    def __init__(self, ctx: KernelContext, domain, row0: str, col0: str, rows: str, cols: str):
        self.ctx, self.domain = ctx, tuple(domain)
        self.row0, self.col0, self.rows, self.cols = row0, col0, rows, cols

    def emit(self, nodes: list[Node], seed: tuple[Value, str], setup: str, sinks: list[tuple]) -> list[str]:
        """Statements computing `nodes` over the tile; each sink (pointer, value, offset, column stride)
        receives its value at pointer[offset + j * stride]."""
        ctx = self.ctx
        exprs = {id(seed[0]): seed[1]}
        pointers: list[str] = []
        loop: list[str] = []
        for i, n in enumerate(nodes):
            for x in n.inputs:
                if id(x) not in exprs:
                    exprs[id(x)] = self._operand(x, pointers)
            args = [exprs[id(x)] for x in n.inputs]
            out = n.outputs[0]
            loop.append(f"const {ctype(out.dtype, ctx.where)} a{i} = {self._expr(n, args)};")
            exprs[id(out)] = f"a{i}"
        for ptr, x, off, stride in sinks:
            j = "j" if D.same(stride, 1) else f"j * {ctx.d(stride)}"
            loop.append(f"{ptr}[{off} + {j}] = {exprs[id(x)]};")
        return ([f"for (int64_t i = 0; i < {self.rows}; ++i) {{", f"  {setup}"]
                + ["  " + p for p in pointers]
                + ["  #pragma omp simd", f"  for (int64_t j = 0; j < {self.cols}; ++j) {{"]
                + ["    " + s for s in loop] + ["  }", "}"])

    def _expr(self, n: Node, args: list[str]) -> str:
        return elementwise_expr(n.op, n.attrs, args, [x.dtype for x in n.inputs], n.outputs[0].dtype,
                                constant_exponent(self.ctx.graph, n))

    def _operand(self, x: Value, pointers: list[str]) -> str:
        """x's element at (row0 + i, col0 + j) of the tile, broadcast to the domain."""
        arr = self.ctx.graph.constant_of(x)
        if arr is not None and arr.size == 1:
            return literal(arr.reshape(()).item(), x.dtype)
        ctx, rank = self.ctx, len(self.domain)
        shape = (1,) * (rank - len(x.shape)) + tuple(x.shape)
        strides = [0 if D.same(s, 1) else st for s, st in zip(shape, contiguous_strides(shape))]
        name = f"r{len(pointers)}"
        batch = _batch_offset(ctx, self.domain[:-2], shape, contiguous_strides(shape))
        pointers.append(f"const {ctype(x.dtype, ctx.where)}* {name} = {ctx.ptr(x)} + {batch} + "
                        f"({self.row0} + i) * {ctx.d(strides[-2])} + {self.col0} * {ctx.d(strides[-1])};")
        if D.same(strides[-1], 0):
            return f"{name}[0]"
        return f"{name}[j]" if D.same(strides[-1], 1) else f"{name}[j * {ctx.d(strides[-1])}]"
