"""Sparse matmuls: x [..., K] times a sparse weight W [N, K] stored compressed, y = x @ W.T [..., N].

    matmul_csr(x, values [nnz], cols [nnz], rows [N + 1] [, scale [N]])
    matmul_bsr(x, values [nnzb, BH, BW], cols [nnzb], rows [N / BH + 1] [, scale [N]])
    matmul_nm(x, values [N, K / M * N_], meta u8 [N, ...] [, scale [N]]) {n = N_, m = M}
    conv_bsr(x [N, C, spatial...], values, cols, rows [, bias [O]]) {kernel, strides, pads, dilations, group}

conv_bsr is a convolution (channels-first, as conv) whose weight [O, C / group, kernel...] is stored as
W [O, C / group * prod(kernel)] in BSR (the weight reshaped, K ordered channel, kernel...); a block row
lies within one group.

The weight's components are constants in practice (the sparsify and prune
passes make them), laid out as ir/sparse.py describes: CSR, BSR with the
block shape in the values' type, N:M with its index metadata. Values are f32,
or i8 with one f32 scale per output (W[n, :] = values * scale[n]). The
verifier checks the components' contents when they are constants (offsets,
indices in range and increasing); the reference implementation checks them
always, expands W to dense and multiplies, so a sparse matmul computes
exactly what the dense matmul of its weight computes.
"""
from __future__ import annotations

import numpy as np

from .. import dims as D
from .. import sparse as S
from ..dtypes import DType
from ..registry import PURE, Attr, define_op, get_op
from ..samples import op_samples
from ..types import TensorType
from .infer import require

INDEX_DTYPES = (DType.u16, DType.i32)
SPARSE_MATMULS = ("matmul_csr", "matmul_bsr", "matmul_nm")
SPARSE_CONVS = ("conv_bsr",)


def _common(op: str, x: TensorType, values: TensorType, scale: TensorType | None, n) -> TensorType:
    require(x.dtype is DType.f32 and x.rank >= 1, f"{op} takes f32 activations [..., K], got {x}")
    if values.dtype is DType.i8:
        require(scale is not None, f"{op} with i8 values needs a scale per output [{n}]")
    else:
        require(values.dtype is DType.f32, f"{op} values must be f32 (or i8 with a scale), got {values.dtype}")
        require(scale is None, f"{op}: a scale goes with i8 values only, the values are {values.dtype}")
    if scale is not None:
        require(scale.dtype is DType.f32 and scale.rank == 1 and D.compatible(scale.shape[0], n),
                f"{op} scale must be f32 [{n}] (one per output), got {scale}")
    return TensorType(DType.f32, tuple(x.shape[:-1]) + (n,))


def _offsets(op: str, cols: TensorType, rows: TensorType, count) -> None:
    require(cols.dtype in INDEX_DTYPES and cols.rank == 1 and D.compatible(cols.shape[0], count),
            f"{op} column indices must be u16 or i32 [{count}], got {cols}")
    require(rows.dtype is DType.i32 and rows.rank == 1 and isinstance(rows.shape[0], int) and rows.shape[0] >= 1,
            f"{op} row offsets must be i32 [rows + 1], got {rows}")


def _static_k(op: str, x: TensorType, multiple: int, what: str) -> int:
    k = x.shape[-1]
    require(isinstance(k, int), f"{op} needs a static input size K, got {k}")
    require(k % multiple == 0, f"{op}: K = {k} is not a multiple of the {what} {multiple}")
    return k


def _scaled(w: np.ndarray, scale) -> np.ndarray:
    if scale is None:
        return w
    return w.astype(np.float32) * scale.astype(np.float32)[:, None]


def _product(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.matmul(x.astype(np.float32), w.astype(np.float32).T).astype(np.float32)


# ---------------------------------------------------------------- CSR

def _csr_infer(x, values, cols, rows, scale=None) -> TensorType:
    require(values.rank == 1, f"matmul_csr values must be 1-D [nnz], got {values}")
    _offsets("matmul_csr", cols, rows, values.shape[0])
    _static_k("matmul_csr", x, 1, "block width")
    return _common("matmul_csr", x, values, scale, rows.shape[0] - 1)


def _csr_check(arrays, types, attrs) -> None:
    values, cols, rows = arrays[1:4]
    if values is not None and cols is not None and rows is not None:
        S.check_bsr(values.reshape(-1, 1, 1), cols, rows, types[0].shape[-1])


@define_op("matmul_csr", arity=(4, 5), infer=_csr_infer, check=_csr_check, traits=PURE | {"structured"},
           fusion="anchor")
def matmul_csr(x, values, cols, rows, scale=None):
    """x @ W.T for W [N, K] in CSR (values, column indices, row offsets); i8 values with a scale per row."""
    k = x.shape[-1]
    S.check_bsr(values.reshape(-1, 1, 1), cols, rows, k)
    return _product(x, _scaled(S.bsr_to_dense(values.reshape(-1, 1, 1), cols, rows, k), scale))


# ---------------------------------------------------------------- BSR

def _bsr_infer(x, values, cols, rows, scale=None) -> TensorType:
    require(values.rank == 3 and all(isinstance(d, int) and d > 0 for d in values.shape[1:]),
            f"matmul_bsr values must be [blocks, BH, BW] with a static block shape, got {values}")
    _offsets("matmul_bsr", cols, rows, values.shape[0])
    bh, bw = values.shape[1:]
    _static_k("matmul_bsr", x, bw, "block width")
    return _common("matmul_bsr", x, values, scale, (rows.shape[0] - 1) * bh)


def _bsr_check(arrays, types, attrs) -> None:
    values, cols, rows = arrays[1:4]
    if values is not None and cols is not None and rows is not None:
        S.check_bsr(values, cols, rows, types[0].shape[-1])


@define_op("matmul_bsr", arity=(4, 5), infer=_bsr_infer, check=_bsr_check, traits=PURE | {"structured"},
           fusion="anchor")
def matmul_bsr(x, values, cols, rows, scale=None):
    """x @ W.T for W [N, K] in blocks (values [blocks, BH, BW], block columns, block-row offsets)."""
    k = x.shape[-1]
    S.check_bsr(values, cols, rows, k)
    return _product(x, _scaled(S.bsr_to_dense(values, cols, rows, k), scale))


# ---------------------------------------------------------------- N:M

def _nm_infer(x, values, meta, scale=None, *, n, m) -> TensorType:
    require(1 <= n <= m, f"matmul_nm needs 1 <= n <= m, got {n}:{m}")
    require(values.rank == 2, f"matmul_nm values must be [N, kept], got {values}")
    k = _static_k("matmul_nm", x, m, "group size m")
    kept = k // m * n
    require(D.compatible(values.shape[1], kept), f"matmul_nm {n}:{m} values of K = {k} have {kept} entries per "
                                                 f"row, got {values}")
    require(meta.dtype is DType.u8 and meta.rank == 2 and D.compatible(meta.shape[0], values.shape[0])
            and D.compatible(meta.shape[1], S.nm_meta_width(kept, m)),
            f"matmul_nm meta must be u8 [{values.shape[0]}, {S.nm_meta_width(kept, m)}], got {meta}")
    return _common("matmul_nm", x, values, scale, values.shape[0])


def _nm_check(arrays, types, attrs) -> None:
    values, meta = arrays[1:3]
    if values is not None and meta is not None:
        S.check_nm(values, meta, attrs["n"], attrs["m"], types[0].shape[-1])


@define_op("matmul_nm", arity=(3, 4), infer=_nm_infer, check=_nm_check, attrs={"n": "int", "m": "int"},
           traits=PURE | {"structured"}, fusion="anchor")
def matmul_nm(x, values, meta, scale=None, *, n, m):
    """x @ W.T for W [N, K] keeping n of every m inputs of a row (values, packed index metadata)."""
    k = x.shape[-1]
    S.check_nm(values, meta, n, m, k)
    return _product(x, _scaled(S.nm_to_dense(values, meta, n, m, k), scale))


# ---------------------------------------------------------------- sparse convolution

def _conv_bsr_infer(x, values, cols, rows, *bias, kernel, strides, pads, dilations, group) -> TensorType:
    require(x.dtype is DType.f32 and x.rank == len(kernel) + 2 and len(kernel) >= 1,
            f"conv_bsr takes f32 activations [N, C, spatial...] of rank {len(kernel) + 2}, got {x}")
    require(values.dtype is DType.f32 and values.rank == 3 and all(isinstance(d, int) and d > 0
                                                                   for d in values.shape[1:]),
            f"conv_bsr values must be f32 [blocks, BH, BW] with a static block shape, got {values}")
    _offsets("conv_bsr", cols, rows, values.shape[0])
    bh, bw = values.shape[1:]
    c = x.shape[1]
    require(isinstance(c, int) and c % group == 0, f"conv_bsr: {c} input channels do not divide into {group} groups")
    k = c // group * int(np.prod(kernel))
    require(k % bw == 0, f"conv_bsr: K = {k} (C / group * kernel) is not a multiple of the block width {bw}")
    o = (rows.shape[0] - 1) * bh
    require(o % group == 0 and (o // group) % bh == 0,
            f"conv_bsr: {o} outputs in {group} groups do not divide into block rows of {bh}")
    if bias:
        require(bias[0].dtype is DType.f32 and bias[0].rank == 1 and D.compatible(bias[0].shape[0], o),
                f"conv_bsr bias must be f32 [{o}], got {bias[0]}")
    dense_w = TensorType(DType.f32, (o, c // group) + tuple(kernel))
    return get_op("conv").infer_fn(x, dense_w, *bias, strides=strides, pads=pads,
                                dilations=dilations, group=group)


def _conv_bsr_check(arrays, types, attrs) -> None:
    values, cols, rows = arrays[1:4]
    if values is not None and cols is not None and rows is not None:
        S.check_bsr(values, cols, rows, _conv_k(types[0].shape[1], attrs))


def _conv_k(channels: int, attrs) -> int:
    return channels // attrs["group"] * int(np.prod(attrs["kernel"]))


@define_op("conv_bsr", arity=(4, 5), infer=_conv_bsr_infer, check=_conv_bsr_check, traits=PURE | {"structured"},
           attrs={"kernel": Attr("ints", low=1), "strides": Attr("ints", (), low=1), "pads": Attr("ints", (), low=0),
                  "dilations": Attr("ints", (), low=1), "group": Attr("int", 1, low=1)},
           fusion="anchor")
def conv_bsr(x, values, cols, rows, *bias, kernel, strides, pads, dilations, group):
    """conv(x, W) for a weight W [O, C / group, kernel...] stored as BSR of W [O, C / group * prod(kernel)]."""
    k = _conv_k(x.shape[1], {"kernel": kernel, "group": group})
    S.check_bsr(values, cols, rows, k)
    w = S.bsr_to_dense(values, cols, rows, k).astype(np.float32)
    w = w.reshape((w.shape[0], x.shape[1] // group) + tuple(kernel))
    return get_op("conv").reference(x, w, *bias, strides=strides, pads=pads, dilations=dilations, group=group)


@op_samples
def _samples(s):
    return {
        "matmul_csr": [
            s(s.f32(2, 5), s.ints(5, dtype=np.int8), s.const(0, 3, 1, 2, 4, dtype=np.int32), s.const(0, 2, 2, 3, 5, dtype=np.int32), s.f32(4)),
        ],
        "matmul_bsr": [
            s(s.f32(5, 8), s.f32(3, 2, 4), s.const(1, 0, 1, dtype=np.uint16), s.const(0, 1, 1, 3, dtype=np.int32)),
        ],
        "matmul_nm": [s(s.f32(3, 8), s.f32(3, 4), s.constant(np.full((3, 1), 0b11011000, np.uint8)), n=2, m=4)],
        "conv_bsr": [
            s(s.f32(2, 2, 5, 6), s.f32(3, 2, 3), s.const(0, 1, 2, dtype=np.uint16), s.const(0, 1, 3, dtype=np.int32),
              s.f32(4), kernel=(3, 3), strides=(1, 2), pads=(1, 0, 1, 1), dilations=(), group=2),
        ],
    }
