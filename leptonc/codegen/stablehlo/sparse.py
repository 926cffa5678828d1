"""Lowering of the sparse matmuls (matmul_csr, matmul_bsr, matmul_nm): XLA has no sparse kernels, so the
weight is scattered into a dense W [N, K] (zeros elsewhere) and multiplied with one dot_general.

The positions of the stored values come from the weight's index components
(column indices and row offsets, or N:M metadata), which must be constants:
they are expanded here, at lowering time, into one index pair per stored
value; the values themselves may be constants or weight arguments.
"""
from __future__ import annotations

import numpy as np

from ...ir import sparse as S
from ...ir.dtypes import DType
from ...ir.errors import LeptoncError
from ...ir.types import TensorType
from .builder import Builder, Val
from .layout import scatter
from .linalg import dot
from .rules import lowers


def _constants(node, first: int, count: int) -> list[np.ndarray]:
    arrays = [node.graph.constant_of(v) for v in node.inputs[first:first + count]]
    if any(a is None for a in arrays):
        raise LeptoncError(f"node {node.label}: the stablehlo target lowers {node.op} only when the weight's "
                           "indices are constants")
    return arrays


def _dense(b: Builder, values: Val, positions: np.ndarray, n_out: int, k_in: int) -> Val:
    """W [N, K] in f32 with values[i] at positions[i] = (row, col), zeros elsewhere."""
    flat = b.reshape(b.convert(values, DType.f32), (positions.shape[0],))
    zeros = b.full(0, TensorType(DType.f32, (n_out, k_in)))
    numbers = ("#stablehlo.scatter<update_window_dims = [], inserted_window_dims = [0, 1], "
               "scatter_dims_to_operand_dims = [0, 1], index_vector_dim = 1>")
    return scatter(b, zeros, b.constant(positions.astype(np.int64)), flat, "none", numbers)


def _product(b: Builder, x: Val, w: Val, scale: Val | None, out) -> Val:
    """x @ W.T, times the scale per output for i8 values."""
    if scale is not None:
        w = b.binary("multiply", w, b.broadcast_in_dim(b.convert(scale, DType.f32), w.shape, [0]))
    y = dot(b, b.convert(x, DType.f32), w, ([], []), ([len(x.shape) - 1], [1]), out[0].shape)
    return b.convert(y, out[0].dtype)


@lowers("matmul_csr", "matmul_bsr")
def matmul_blocks(b: Builder, node, args, out, attrs):
    x, values = args[0], args[1]
    cols, rows = _constants(node, 2, 2)
    bh, bw = values.shape[1:] if node.op == "matmul_bsr" else (1, 1)
    n_out, k_in = out[0].shape[-1], x.shape[-1]
    brow = np.repeat(np.arange(rows.shape[0] - 1), np.diff(rows.astype(np.int64)))
    # value (b, i, j) of a block sits at row brow[b] * BH + i, column cols[b] * BW + j
    r = (brow[:, None, None] * bh + np.arange(bh)[None, :, None]) + np.zeros((1, 1, bw), np.int64)
    c = (cols.astype(np.int64)[:, None, None] * bw + np.arange(bw)[None, None, :]) + np.zeros((1, bh, 1), np.int64)
    positions = np.stack([r.reshape(-1), c.reshape(-1)], axis=1)
    w = _dense(b, values, positions, n_out, k_in)
    return _product(b, x, w, args[4] if len(args) > 4 else None, out)


@lowers("matmul_nm")
def matmul_nm(b: Builder, node, args, out, attrs):
    x, values = args[0], args[1]
    (meta,) = _constants(node, 2, 1)
    n, m = attrs["n"], attrs["m"]
    n_out, kept = values.shape
    index = S.unpack_fields(meta, S.nm_bits(m), kept).astype(np.int64)
    cols = (np.arange(kept) // n) * m + index
    rows = np.repeat(np.arange(n_out), kept).reshape(n_out, kept)
    positions = np.stack([rows.reshape(-1), cols.reshape(-1)], axis=1)
    w = _dense(b, values, positions, n_out, x.shape[-1])
    return _product(b, x, w, args[3] if len(args) > 3 else None, out)
