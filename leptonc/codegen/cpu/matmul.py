"""C bodies of matmul kernels.

A matmul whose B is a weight (a constant matrix, f32) runs as our packed GEMM (gemm.c): the weight is
packed into panels at compile time (`pack_b`, stored in meta["weights"] under its name plus PACKED)
and the kernel's fused elementwise ops run as a tile epilogue, on each block of the output as soon as it
is final. Other matmuls (f64, activation x activation, batched weights) call BLAS through lep_sgemm /
lep_dgemm, with the fused ops as a loop over the whole output afterwards.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...ir import dims as D
from ...ir.dims import contiguous_strides
from ...ir.dtypes import DType
from ...ir.graph import Graph, Node, Value
from .cexpr import UnsupportedError, cdim, cnumel, ctype
from .kernels import KernelContext

GEMM_SOURCE = Path(__file__).with_name("gemm.c").read_text()
GEMM_NR = 32       # columns per packed panel: LEP_GEMM_NR in gemm.c
TRANSPOSED = "^T"  # suffix of a weight stored transposed (not a valid IR name, so it never collides)
PACKED = "^P"      # suffix of a weight packed into GEMM panels


def uses_gemm(graph: Graph) -> bool:
    """Whether the model's source needs gemm.c (matmul and conv kernels may call it)."""
    return any(n.op in ("matmul", "conv") for n in graph.nodes)


def pack_b(b: np.ndarray) -> np.ndarray:
    """B[K, N] (any strides; leading dims of size 1 allowed) in lep_gemm_packed's layout (see gemm.c): ceil(N / 32)
    panels of K rows x 32 columns, columns past N zero, as a flat float32 array whose data is 64-byte aligned."""
    b = np.asarray(b, dtype=np.float32)
    if b.ndim < 2 or any(d != 1 for d in b.shape[:-2]):
        raise ValueError(f"pack_b takes a matrix [K, N], not an array of shape {list(b.shape)}")
    b = b.reshape(b.shape[-2:])
    K, N = b.shape
    P = -(-N // GEMM_NR)
    out = aligned_empty(P * K * GEMM_NR)
    panels = out.reshape(P, K, GEMM_NR)
    full = N // GEMM_NR
    panels[:full] = b[:, :full * GEMM_NR].reshape(K, full, GEMM_NR).transpose(1, 0, 2)
    if full < P:
        panels[full] = 0.0
        panels[full, :, :N - full * GEMM_NR] = b[:, full * GEMM_NR:]
    return out


def aligned_empty(n: int, align: int = 64) -> np.ndarray:
    """An uninitialized float32 array of n elements whose data starts on an `align`-byte boundary."""
    raw = np.empty(n + align // 4, dtype=np.float32)
    shift = (-raw.ctypes.data) % align // 4
    return raw[shift:shift + n]


def stored_transposed(graph: Graph, v: Value) -> bool:
    """A weight whose array is the transpose (last two axes) of a contiguous array: BLAS reads that array
    with a transpose flag, so the weight needs no copy to be laid out."""
    arr = graph.constant_of(v)
    return arr is not None and arr.ndim >= 2 and not arr.flags.c_contiguous and \
        arr.swapaxes(-1, -2).flags.c_contiguous


def packed_weight(graph: Graph, node: Node, absorbed: list[Node]) -> Value | None:
    """B of a matmul that runs as lep_gemm_packed: f32, B a constant matrix (batch dims of size 1) and A read
    in place (not an absorbed transpose); None for any other matmul."""
    a, b = node.inputs
    if node.outputs[0].dtype is not DType.f32 or graph.constant_of(b) is None or min(a.type.rank, b.type.rank) < 2:
        return None
    if any(d != 1 for d in b.shape[:-2]) or any(a.producer is t for t in absorbed if a.producer is not None):
        return None
    return b


def operand_view(ctx: KernelContext, v: Value, absorbed: list[Node]) -> tuple[str, list, list, bool]:
    """(pointer, logical shape, logical element strides, plain) of a matmul operand: absorbed transposes
    and transposed weights are read through strides; plain means contiguous in its own shape."""
    p = v.producer
    if p is not None and any(p is t for t in absorbed):
        src = p.inputs[0]
        cs = contiguous_strides(src.shape)
        return ctx.ptr(src), list(v.shape), [cs[i] for i in p.attrs["perm"]], False
    if (TRANSPOSED, id(v)) in ctx.names:
        shape = list(v.shape)
        cs = contiguous_strides(shape[:-2] + [shape[-1], shape[-2]])
        return ctx.names[(TRANSPOSED, id(v))], shape, cs[:-2] + [cs[-1], cs[-2]], False
    return ctx.ptr(v), list(v.shape), contiguous_strides(v.shape), True


def emit_matmul(ctx: KernelContext, node: Node, absorbed: list[Node]) -> list[str]:
    out = node.outputs[0]
    if (PACKED, id(node.inputs[1])) in ctx.names:
        a, b = node.inputs
        # one GEMM: A's batch dims fold into its rows; the fused ops run on each finished block
        return [f"const int64_t M = {cnumel(a.shape[:-1], ctx.where)}, K = {ctx.d(a.shape[-1])}, "
                f"N = {ctx.d(b.shape[-1])};",
                f"lep_gemm_packed(M, N, K, {ctx.ptr(a)}, K, {ctx.names[(PACKED, id(b))]}, {ctx.ptr(out)}, N, "
                f"{ctx.tile_epilogue()});"]
    a_ptr, a_shape, a_str, a_plain = operand_view(ctx, node.inputs[0], absorbed)
    b_ptr, b_shape, b_str, _ = operand_view(ctx, node.inputs[1], absorbed)
    if len(a_shape) < 2 or len(b_shape) < 2:
        raise UnsupportedError(f"{ctx.where}: matmul of a 1-D operand should have been reshaped by the fuse pass")
    dt = out.dtype
    ctype(dt, ctx.where)  # rejects a dtype the target lacks
    d = ctx.d
    M, K, N = a_shape[-2], a_shape[-1], b_shape[-1]
    batch = list(out.shape[:-2])
    lines = [f"const int64_t M = {d(M)}, K = {d(K)}, N = {d(N)};"]
    b_flat = all(x == 1 for x in b_shape[:-2])
    if a_plain and b_flat:
        # one GEMM: A's batch dims fold into M
        lines.append(f"const int64_t MB = {cnumel(a_shape[:-1], ctx.where)};")
        lines += _gemm(dt, a_ptr, "0", "MB", "K", False, "K", b_ptr, "0", (b_shape[-2:], b_str[-2:]),
                       ctx.ptr(out), "0", "N")
        return lines
    rank = len(batch)
    a_b = [1] * (rank - (len(a_shape) - 2)) + a_shape[:-2]
    b_b = [1] * (rank - (len(b_shape) - 2)) + b_shape[:-2]
    a_bs = [0] * (rank - (len(a_shape) - 2)) + a_str[:-2]
    b_bs = [0] * (rank - (len(b_shape) - 2)) + b_str[:-2]
    lines.append(f"const int64_t NB = {cnumel(batch, ctx.where)};")
    lines.append("#pragma omp parallel for schedule(static) if (NB > 1)")
    lines.append("for (int64_t bi = 0; bi < NB; ++bi) {")
    lines.append("  int64_t rem = bi, aoff = 0, boff = 0;")
    for i in reversed(range(rank)):
        lines.append(f"  {{ const int64_t ix = rem % {d(batch[i])}; rem /= {d(batch[i])};"
                     f" aoff += {'0' if a_b[i] == 1 else 'ix * ' + d(a_bs[i])};"
                     f" boff += {'0' if b_b[i] == 1 else 'ix * ' + d(b_bs[i])}; }}")
    a_trans, lda = _layout(a_shape[-2:], a_str[-2:])
    lines += ["  " + s for s in _gemm(dt, a_ptr, "aoff", "M", "K", a_trans, lda,
                                       b_ptr, "boff", (b_shape[-2:], b_str[-2:]), ctx.ptr(out), "bi * M * N", "N")]
    lines.append("}")
    return lines


def _layout(shape, strides) -> tuple[bool, str]:
    """(transposed, leading dimension) of a [rows, cols] operand with these element strides.

    A dim of size 1 has no meaningful stride; the leading dimension then falls back to what BLAS accepts.
    """
    (rows, cols), (rs, cs) = shape, strides
    if D.same(cs, 1):
        return False, f"({cdim(rows)} == 1 ? lep_max1({cdim(cols)}) : {cdim(rs)})"
    return True, f"({cdim(cols)} == 1 ? lep_max1({cdim(rows)}) : {cdim(cs)})"


def _gemm(dt: DType, a, aoff, m, k, a_trans, lda, b, boff, b_layout, c, coff, ldc) -> list[str]:
    b_trans, ldb = _layout(*b_layout)
    t = ctype(dt)
    if dt in (DType.f32, DType.f64):
        fn = "lep_sgemm" if dt is DType.f32 else "lep_dgemm"
        return [f"{fn}({int(a_trans)}, {int(b_trans)}, {m}, N, {k}, {a} + {aoff}, {lda}, {b} + {boff}, {ldb}, "
                f"{c} + {coff}, {ldc});"]
    a_idx = f"(i * {lda} + p)" if not a_trans else f"(p * {lda} + i)"
    b_idx = f"(p * {ldb} + jj)" if not b_trans else f"(jj * {ldb} + p)"
    return [f"#pragma omp parallel for schedule(static) if ({m} * N * {k} > 65536)",
            f"for (int64_t i = 0; i < {m}; ++i)",
            "  for (int64_t jj = 0; jj < N; ++jj) {",
            f"    {t} acc = 0;",
            f"    for (int64_t p = 0; p < {k}; ++p) acc += ({a} + {aoff})[{a_idx}] * ({b} + {boff})[{b_idx}];",
            f"    ({c} + {coff})[i * {ldc} + jj] = acc;",
            "  }"]
