"""C kernels of the sparse matmuls (matmul_csr, matmul_bsr, matmul_nm) and the sparse convolution (conv_bsr):
calls into sparse.c.

The model's source includes sparse.c when one of these ops is in it
(`uses_sparse`). A sparse matmul is the anchor of its kernel, like a dense
matmul: its fused ops (bias, activation, residual add) run as a tile
epilogue on each block of the output as soon as it is finished, while it is
in cache. The weight's components are read as the IR stores
them (they are laid out for these kernels when the pass makes them); the
block shape and N:M pattern are literals of the call, so the C compiler
specializes the loops to them. conv_bsr (1-d or 2-d, channels-first) runs
directly on its input, its fused ops on each finished block row of an image
(a run of whole output rows); its window (kernel, strides, pads, dilations,
groups) is literals of the call too.
"""
from __future__ import annotations

from pathlib import Path

from ...ir import dims as D
from ...ir import sparse as S
from ...ir.dtypes import DType
from ...ir.graph import Graph, Node
from .. import spatial_hw, window_2d
from .cexpr import UnsupportedError, cnumel
from .kernels import KernelContext

SPARSE_SOURCE = Path(__file__).with_name("sparse.c").read_text()
GEMM_ROWS = 8      # LEP_SP_GEMM_ROWS: from this many rows of x on, the kernel packs x (scratch)
TILE_ROWS = 128    # LEP_SP_MV_MAX * 16: the most rows of x one packed tile holds


def _prologue(ctx: KernelContext, node: Node) -> list[str]:
    x, out = node.inputs[0], node.output
    rows = D.product(x.shape[:-1])
    if not (isinstance(rows, int) and rows < GEMM_ROWS):
        ctx.scratch_bytes = D.mul(D.mul(D.add(rows, TILE_ROWS), x.shape[-1]), 4)
    return [f"const int64_t M = {cnumel(x.shape[:-1], ctx.where)}, K = {ctx.d(x.shape[-1])}, "
            f"N = {ctx.d(out.shape[-1])};"]


def _scale(ctx: KernelContext, node: Node, first_optional: int) -> str:
    return ctx.ptr(node.inputs[first_optional]) if len(node.inputs) > first_optional else "NULL"


def _scratch(ctx: KernelContext) -> str:
    return "scratch" if ctx.scratch_bytes is not None else "NULL"


def emit_matmul_blocks(ctx: KernelContext, node: Node) -> list[str]:
    """matmul_bsr, and matmul_csr as BSR with 1 x 1 blocks."""
    x, values, cols, rows = node.inputs[:4]
    bh, bw = values.shape[1:] if node.op == "matmul_bsr" else (1, 1)
    lines = _prologue(ctx, node)
    i8 = int(values.dtype is DType.i8)
    i32 = int(cols.dtype is DType.i32)
    lines.append(f"LEP_BSR_MATMUL({ctx.ptr(x)}, M, K, N, {ctx.ptr(values)}, {i8}, {ctx.ptr(cols)}, {i32}, "
                 f"{ctx.ptr(rows)}, {_scale(ctx, node, 4)}, {ctx.ptr(node.output)}, {_scratch(ctx)}, "
                 f"{ctx.tile_epilogue()}, {bh}, {bw});")
    return lines


def emit_matmul_nm(ctx: KernelContext, node: Node) -> list[str]:
    x, values, meta = node.inputs[:3]
    n, m = node.attrs["n"], node.attrs["m"]
    lines = _prologue(ctx, node)
    lines.append(f"LEP_NM_MATMUL({ctx.ptr(x)}, M, K, N, {ctx.ptr(values)}, {int(values.dtype is DType.i8)}, "
                 f"{ctx.ptr(meta)}, {_scale(ctx, node, 3)}, {ctx.ptr(node.output)}, {_scratch(ctx)}, "
                 f"{ctx.tile_epilogue()}, {n}, {m}, {S.nm_bits(m)});")
    return lines


def emit_conv_bsr(ctx: KernelContext, node: Node) -> list[str]:
    x, values, cols, rows = node.inputs[:4]
    nsp = x.type.rank - 2
    (sh, sw), (dh, dw), pads = window_2d(node, nsp, ctx.where, "cpu", UnsupportedError)
    pt, pl, pb, pr = (pads[0], pads[1], pads[2], pads[3]) if nsp == 2 else pads
    kh, kw = (1, node.attrs["kernel"][0]) if nsp == 1 else node.attrs["kernel"]
    (h, w), (oh, ow) = spatial_hw(x.shape, nsp), spatial_hw(node.output.shape, nsp)
    bh, bw = values.shape[1:]
    group, c = node.attrs["group"], x.shape[1]
    k = c // group * kh * kw
    padded = D.mul(D.mul(D.mul(x.shape[0], c), D.add(h, pt + pb)), D.add(w, pl + pr)) if pt or pl or pb or pr else 0
    ctx.scratch_bytes = D.add(8 * k, D.mul(padded, 4))
    bias = ctx.ptr(node.inputs[4]) if len(node.inputs) > 4 else "NULL"
    return [f"const int64_t B = {ctx.d(x.shape[0])}, H = {ctx.d(h)}, W = {ctx.d(w)}, OH = {ctx.d(oh)}, "
            f"OW = {ctx.d(ow)};",
            f"LEP_CONV_BSR({ctx.ptr(x)}, B, {c}, H, W, {node.output.shape[1]}, OH, OW, {ctx.ptr(values)}, "
            f"{ctx.ptr(cols)}, {int(cols.dtype is DType.i32)}, {ctx.ptr(rows)}, {bias}, {ctx.ptr(node.output)}, "
            f"scratch, {ctx.tile_epilogue()}, {kh}, {kw}, {sh}, {sw}, {pt}, {pl}, {pb}, {pr}, {dh}, {dw}, {group}, "
            f"{bh}, {bw});"]


SPARSE_EMITTERS = {"matmul_csr": emit_matmul_blocks, "matmul_bsr": emit_matmul_blocks, "matmul_nm": emit_matmul_nm,
                   "conv_bsr": emit_conv_bsr}


def uses_sparse(graph: Graph) -> bool:
    return any(n.op in SPARSE_EMITTERS for n in graph.nodes)
