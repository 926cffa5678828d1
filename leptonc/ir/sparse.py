"""Sparse weight formats: how a sparse matrix W [N, K] is stored as dense component arrays.

A sparse constant is a few ordinary named constants, one per component, that
a sparse matmul op reads together (ir/ops/sparse.py). W has one row per
output and one column per input (a linear layer's weight, as torch stores it).

  CSR    values [nnz], cols [nnz], rows [N + 1]:
         row n holds values[rows[n]:rows[n + 1]], at columns cols[...].
  BSR    values [nnzb, BH, BW], cols [nnzb], rows [N / BH + 1]:
         W cut into BH x BW blocks; block row r holds blocks rows[r]:rows[r + 1],
         block b covers W[r*BH:(r+1)*BH, cols[b]*BW:(cols[b]+1)*BW]. CSR is BSR with 1 x 1 blocks.
  N:M    values [N, K / M * N_], meta u8 [N, ceil(K / M * N_ * bits / 8)]:
         each run of M inputs of a row keeps N_ values; kept value j of a row
         (group j // N_) sits at column (j // N_) * M + index_j, where index_j is
         the j-th `bits`-bit field of the row's meta bytes (little-endian: field
         j starts at bit j * bits). bits = 2 for M <= 4, 4 for M <= 16, else 8.

Column indices are u16 when they fit (fewer than 65536 block columns), else
i32; row offsets are i32. Within a row, columns (and N:M indices within a
group) strictly increase. Values are f32, or i8 with one f32 scale per row of
W (a quantized sparse weight: W[n, :] = values * scale[n]).

This module is the one place that knows the layouts: encoders from a dense
array, decoders back to it, and `check_*`, which name what is malformed.
"""
from __future__ import annotations

import numpy as np

from .errors import ShapeError


def index_dtype(count: int) -> np.dtype:
    """The dtype of column indices below `count`: u16 when they fit, else i32."""
    return np.dtype(np.uint16) if count <= 65536 else np.dtype(np.int32)


def nm_bits(m: int) -> int:
    """Bits of one N:M index field: 2 for M <= 4, 4 for M <= 16, 8 for M <= 256."""
    if not 1 <= m <= 256:
        raise ShapeError(f"N:M sparsity needs 1 <= M <= 256, got M = {m}")
    return 2 if m <= 4 else 4 if m <= 16 else 8


def nm_meta_width(kept: int, m: int) -> int:
    """Bytes of meta per row for `kept` values per row."""
    return (kept * nm_bits(m) + 7) // 8


# ---------------------------------------------------------------- BSR (and CSR, its 1 x 1 case)

def bsr_from_dense(w: np.ndarray, block: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values [nnzb, BH, BW], cols, rows) of W [N, K]: every block with a nonzero entry is stored."""
    bh, bw = block
    n, k = w.shape
    if n % bh or k % bw:
        raise ShapeError(f"a [{n}, {k}] weight does not divide into {bh}x{bw} blocks")
    tiles = w.reshape(n // bh, bh, k // bw, bw).transpose(0, 2, 1, 3)      # [block rows, block cols, BH, BW]
    nonzero = np.any(tiles != 0, axis=(2, 3))
    brow, bcol = np.nonzero(nonzero)                                        # row-major: sorted by (row, col)
    rows = np.zeros(n // bh + 1, np.int32)
    np.cumsum(np.bincount(brow, minlength=n // bh), out=rows[1:])
    values = np.ascontiguousarray(tiles[brow, bcol])
    return values, bcol.astype(index_dtype(k // bw)), rows


def bsr_to_dense(values: np.ndarray, cols: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """W [N, K] from its BSR components (in the values' dtype)."""
    nnzb, bh, bw = values.shape
    nbr = rows.shape[0] - 1
    brow = np.repeat(np.arange(nbr), np.diff(rows.astype(np.int64)))
    tiles = np.zeros((nbr, k // bw, bh, bw), values.dtype)
    tiles[brow, cols.astype(np.int64)] = values
    return tiles.transpose(0, 2, 1, 3).reshape(nbr * bh, k)


def check_bsr(values: np.ndarray, cols: np.ndarray, rows: np.ndarray, k: int) -> None:
    """ShapeError naming the first rule the BSR components break (W has K = k columns)."""
    nnzb, bh, bw = values.shape
    if rows.ndim != 1 or rows.shape[0] < 1:
        raise ShapeError("row offsets must be 1-D with one entry per block row plus one")
    r = rows.astype(np.int64)
    if r[0] != 0 or r[-1] != nnzb:
        raise ShapeError(f"row offsets must run from 0 to the block count {nnzb}, got {r[0]} .. {r[-1]}")
    if np.any(np.diff(r) < 0):
        raise ShapeError(f"row offsets decrease at block row {int(np.argmax(np.diff(r) < 0))}")
    c = cols.astype(np.int64)
    if c.size and (c.min() < 0 or c.max() >= k // bw):
        raise ShapeError(f"a block column index is outside [0, {k // bw}) (K = {k}, block width {bw})")
    first = np.zeros(nnzb, bool)
    first[r[:-1][r[:-1] < nnzb]] = True
    bad = (np.diff(c) <= 0) & ~first[1:]
    if np.any(bad):
        b = int(np.argmax(bad)) + 1
        raise ShapeError(f"block columns of a row must strictly increase; block {b} repeats or goes back")


# ---------------------------------------------------------------- N:M

def nm_from_dense(w: np.ndarray, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """(values, meta) of W [N, K] that has at most n nonzeros in each run of m inputs of a row. Where a
    run has fewer, zeros fill the kept slots (the lowest free indices)."""
    rows, k = w.shape
    if k % m:
        raise ShapeError(f"a weight with K = {k} inputs does not divide into groups of {m}")
    groups = w.reshape(rows, k // m, m)
    count = np.count_nonzero(groups, axis=2)
    if np.any(count > n):
        r, g = np.argwhere(count > n)[0]
        raise ShapeError(f"row {r}, inputs {g * m}..{g * m + m - 1} hold {count[r, g]} nonzeros, more than {n}")
    # nonzeros first, then the lowest zero positions; then sorted by position
    order = np.argsort(np.where(groups != 0, 0, 1) * m + np.arange(m), axis=2, kind="stable")[:, :, :n]
    index = np.sort(order, axis=2)
    values = np.take_along_axis(groups, index, axis=2).reshape(rows, -1)
    return np.ascontiguousarray(values), pack_fields(index.reshape(rows, -1), nm_bits(m))


def nm_to_dense(values: np.ndarray, meta: np.ndarray, n: int, m: int, k: int) -> np.ndarray:
    """W [N, K] from its N:M components."""
    rows, kept = values.shape
    index = unpack_fields(meta, nm_bits(m), kept).astype(np.int64)
    cols = (np.arange(kept) // n) * m + index
    w = np.zeros((rows, k), values.dtype)
    np.put_along_axis(w, cols, values, axis=1)
    return w


def check_nm(values: np.ndarray, meta: np.ndarray, n: int, m: int, k: int) -> None:
    """ShapeError naming the first rule the N:M components break."""
    if not 1 <= n <= m:
        raise ShapeError(f"N:M sparsity needs 1 <= N <= M, got {n}:{m}")
    rows, kept = values.shape
    if k % m or kept != k // m * n:
        raise ShapeError(f"{n}:{m} values of K = {k} inputs have {k // m * n} entries per row, got {kept}")
    if meta.shape != (rows, nm_meta_width(kept, m)):
        raise ShapeError(f"{n}:{m} meta for values {list(values.shape)} must be u8 "
                         f"[{rows}, {nm_meta_width(kept, m)}], got {list(meta.shape)}")
    index = unpack_fields(meta, nm_bits(m), kept).reshape(rows, k // m, n).astype(np.int64)
    if np.any(index >= m):
        raise ShapeError(f"an N:M index is not below M = {m}")
    if n > 1 and np.any(np.diff(index, axis=2) <= 0):
        r, g = np.argwhere(np.any(np.diff(index, axis=2) <= 0, axis=2))[0]
        raise ShapeError(f"row {r}, group {g}: N:M indices must strictly increase within a group")


def pack_fields(fields: np.ndarray, bits: int) -> np.ndarray:
    """Rows of small unsigned integers as u8 bytes, `bits` bits each, little-endian within a byte."""
    rows, count = fields.shape
    per = 8 // bits
    pad = (-count) % per
    f = np.concatenate([fields.astype(np.uint8), np.zeros((rows, pad), np.uint8)], axis=1)
    f = f.reshape(rows, -1, per)
    out = np.zeros(f.shape[:2], np.uint8)
    for i in range(per):
        out |= (f[:, :, i] << (i * bits)).astype(np.uint8)
    return out


def unpack_fields(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """The first `count` `bits`-bit fields of each row of `packed` (inverse of pack_fields)."""
    per = 8 // bits
    p = packed.astype(np.uint8)
    f = np.stack([(p >> (i * bits)) & ((1 << bits) - 1) for i in range(per)], axis=2)
    return f.reshape(p.shape[0], -1)[:, :count]
