"""The cost model that decides where a sparse kernel beats the dense one (cpu target, 2 threads).

    faster, dense_s, sparse_s = compare(layout, rows)

A product is bound either by streaming its weight from memory (few rows of x:
a GEMV) or by its multiply-adds (many rows: a GEMM); its time is the larger
of the two. The rates are those of the kernels in codegen/cpu (dense: gemm.c
and the quantized kernels; sparse: sparse.c, per path through it), measured
on the machine the numbers below name. `benchmarks/sparsity.py build --parts
cost` then `time --parts cost` measures a grid of layers and prints the
model's predictions beside the measured speed-ups, and whether each decision
was right: run it after a kernel changes, and update the rates here from what
it prints (the last run: benchmarks/results/*-sparsity-*.md, 64 of 64 right).

The model errs toward the dense kernel: a sparse kernel is chosen only when
it is predicted `MARGIN` times faster.
"""
from __future__ import annotations

from dataclasses import dataclass

# AMD EPYC (Zen 4, AVX-512), 2 threads; measured with `benchmarks/sparsity.py build/time --parts cost`
STREAM_BYTES_PER_S = 33e9     # weights read from memory by a GEMV, dense or sparse
DENSE_MACS_PER_S = 105e9      # dense f32 GEMM (gemm.c)
DENSE_I8_MACS_PER_S = 60e9    # dense int8-weight GEMM (matmul_wq)
SPARSE_MACS_PER_S = 85e9      # the sparse GEMM way when 4 or more rows of a block share each load of x
GEMM_ROWS = 8                 # sparse.c takes the GEMM way from this many rows of x on
VECTOR = 16                   # floats per vector: a GEMM tile's rows round up to it
MARGIN = 1.1
OVERHEAD_S = 2e-6             # per kernel call, dense or sparse


@dataclass(frozen=True)
class SparseLayout:
    """A candidate storage of W [N, K]: 'csr', 'bsr' (block BH x BW) or 'nm' (n of every m inputs)."""

    format: str
    n_out: int                 # N
    k_in: int                  # K
    stored: int                # values stored (nonzeros, and the zeros inside stored blocks)
    block: tuple = (1, 1)      # BH x BW for csr/bsr; (n, m) for nm
    value_bytes: int = 4       # 4 for f32 values, 1 for i8
    index_bytes: int = 2       # bytes of a column index (u16 or i32)

    @property
    def blocks(self) -> int:
        return self.stored // (self.block[0] * self.block[1]) if self.format != "nm" else 0

    @property
    def nbytes(self) -> int:
        if self.format == "nm":
            n, m = self.block
            bits = 2 if m <= 4 else 4 if m <= 16 else 8
            return self.stored * self.value_bytes + (self.stored * bits + 7) // 8
        rows = self.n_out // self.block[0] + 1
        return self.stored * self.value_bytes + self.blocks * self.index_bytes + rows * 4

    def describe(self) -> str:
        if self.format == "nm":
            return f"{self.block[0]}:{self.block[1]}"
        if self.format == "bsr":
            return f"bsr {self.block[0]}x{self.block[1]}"
        return "csr"


def _gemv_macs_per_s(layout: SparseLayout, rows: int) -> float:
    """Multiply-adds per second of the GEMV way (up to 4 rows of x share each pass over W), by path."""
    bh, bw = layout.block
    share = min(rows, 4)
    if layout.format == "nm":
        rate = 40e9 if layout.block == (2, 4) else 2.5e9   # 2:4 permutes; other patterns run scalar
    elif bw % 8 == 0 or (bw == 1 and bh % 8 == 0 and bh <= 32):
        rate = 60e9                                         # vectors along a block row or down a block column
    elif (bh, bw) == (1, 1):
        rate = 15e9                                         # CSR: gathers
    elif bw in (2, 4) and bh * bw % 16 == 0 and bh * bw <= 64:
        rate = 30e9                                         # 16 values of a narrow block at a time
    else:
        rate = 2.5e9                                        # scalar loops
    return rate * share


def _gemm_macs_per_s(layout: SparseLayout) -> float:
    """Multiply-adds per second of the GEMM way: each load of a vector of x serves the RB rows of a block
    that share its registers; below 4 of them, loads of x bound the kernel. Wide blocks (8 columns or more)
    go through more of x per block and lose a third."""
    bh, bw = layout.block
    rb = 1 if layout.format == "nm" else next(d for d in (6, 5, 4, 3, 2, 1) if bh % d == 0)
    rate = {1: 40e9, 2: 60e9, 3: 75e9}.get(rb, SPARSE_MACS_PER_S)
    return rate * (0.65 if bw >= 8 and rb > 1 else 1.0)


def dense_seconds(n_out: int, k_in: int, rows: int, value_bytes: int = 4) -> float:
    stream = n_out * k_in * value_bytes / STREAM_BYTES_PER_S
    rate = DENSE_MACS_PER_S if value_bytes == 4 else DENSE_I8_MACS_PER_S
    return OVERHEAD_S + max(stream, rows * n_out * k_in / rate)


def sparse_seconds(layout: SparseLayout, rows: int) -> float:
    stream = layout.nbytes / STREAM_BYTES_PER_S
    if rows < GEMM_ROWS:
        compute = rows * layout.stored / _gemv_macs_per_s(layout, rows)
    else:
        padded = -(-rows // VECTOR) * VECTOR
        compute = padded * layout.stored / _gemm_macs_per_s(layout)
    return OVERHEAD_S + max(stream, compute)


def compare(layout: SparseLayout, rows: int) -> tuple[bool, float, float]:
    """(sparse kernel chosen, predicted dense seconds, predicted sparse seconds) for `rows` rows of x."""
    dense = dense_seconds(layout.n_out, layout.k_in, rows, layout.value_bytes)
    sparse = sparse_seconds(layout, rows)
    return sparse * MARGIN < dense, dense, sparse
