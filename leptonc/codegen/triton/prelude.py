"""The head of every generated Triton module: imports, block-size choices and the combine functions of reductions.

`PRELUDE` is Triton source text (the generated module starts with it), kept
here as a string so that the module is self-contained: an artifact's
`kernels.py` imports only triton and torch.
"""

PRELUDE = '''\
import functools
import os

import torch
import triton
import triton.language as tl

# "ieee": exact fp32 products in tl.dot; "tf32": tensor cores on GPUs that have them (see TF32_TOLERANCE)
DOT_PRECISION = "ieee"
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
# the interpreter holds bf16 tiles as raw 16-bit patterns that its tl.dot cannot multiply: widen them first
WIDEN_BF16_DOT = tl.constexpr(INTERPRETED)


@functools.lru_cache(maxsize=None)
def dot_blocks(m, n, k, itemsize):
    """(BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages) for a tl.dot kernel of this shape, from our own table.

    Small M (batch-1 inference) takes 16-row tiles so that the N dimension
    spreads over more programs; large problems take 128x128 (fp16) or 64x128
    tiles (fp32). Under the interpreter, where every program costs Python
    time, tiles cover as much as they can.
    """
    def fit(x, lo, hi):
        return max(lo, min(hi, triton.next_power_of_2(max(x, 1))))
    if INTERPRETED:
        return fit(m, 16, 128), fit(n, 16, 128), fit(k, 16, 64), 4, 1
    bk = 64 if itemsize <= 2 else 32
    if m <= 16:
        return 16, fit(n, 16, 128), fit(k, 16, 128), 4, 4
    if m <= 64:
        return fit(m, 16, 64), fit(n, 16, 128), fit(k, 16, bk), 4, 4
    if itemsize <= 2:
        return 128, fit(n, 16, 128), fit(k, 16, bk), 8, 3
    return 64, fit(n, 16, 128), fit(k, 16, bk), 4, 3


def row_block(n):
    """The tile of a row kernel: the whole row, rounded up to a power of two."""
    return triton.next_power_of_2(max(int(n), 1))


# Combine functions of tl.reduce. Sum, max and min are Triton's own (those of tl.sum, tl.max and tl.min,
# which the interpreter runs as numpy reductions); max and min ignore NaN, as on the GPU.
lep_add = tl.standard._sum_combine
lep_max = tl.standard._elementwise_max
lep_min = tl.standard._elementwise_min


@triton.jit
def lep_mul(a, b):
    return a * b
'''
