"""GPTQ: quantize a linear layer's weight column by column, each column's rounding error spread over the
columns not yet quantized so that the layer's output on real inputs moves as little as possible
(Frantar et al., "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers", 2022).

    quantize{weights=int4,group=128,method=gptq}     with compile(..., calibration=data)

For a layer y = x @ W.T (W stored [N, K], one row per output) the error on calibration inputs X is
||X W.T - X Q.T||^2 = sum over rows of (w - q) H (w - q)^T / 2 with H = 2 X^T X. GPTQ quantizes the
columns of W in order; after column j is rounded, the remaining columns absorb its error through the
inverse Hessian (the optimal brain surgeon update), read from the upper Cholesky factor of H^-1 so that
one factorisation serves every column. H is dampened by 1% of its mean diagonal. Updates are applied
within blocks of columns and pushed to the later columns once per block (the same result, fewer passes
over W). A group's scale (max|w| / qmax, symmetric, the same grid as round-to-nearest) is taken when the
group's first column comes up, from the weights as the earlier columns' errors left them; per-channel
scales are taken from the original weights. The result is the same integers and scales that
`matmul_wq` stores for round-to-nearest, so kernels need nothing new.

The layers are quantized sequentially: each wave holds the layers whose inputs no unquantized layer
feeds, their Hessians come from running the calibration samples through the graph as it stands (with
the earlier waves already quantized), so later layers correct for the earlier layers' errors.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..ir.dtypes import DType
from ..ir.graph import Graph, Node
from ..ir.ops.quant import RANGES
from .calibration import gram, waves
from .registry import PassError

PERCDAMP = 0.01
BLOCK = 128


def _inverse_cholesky(h: np.ndarray) -> np.ndarray:
    """The upper Cholesky factor U of (H + damp I)^-1 (H^-1 = U^T U); H's dead columns (an input that was
    always 0) get a unit diagonal. The damping grows tenfold while H stays numerically singular."""
    h = h.copy()
    diag = np.arange(h.shape[0])
    dead = h[diag, diag] == 0
    h[dead, dead] = 1.0
    damp = PERCDAMP * float(np.mean(h[diag, diag]))
    for _ in range(6):
        try:
            lower = np.linalg.cholesky(h + damp * np.eye(h.shape[0]))
            lower_inv = np.linalg.inv(lower)
            return np.linalg.cholesky(lower_inv.T @ lower_inv).T
        except np.linalg.LinAlgError:
            damp *= 10
    raise PassError("quantize{method=gptq}: the calibration Hessian of a layer is not positive definite "
                    "even with dampening")


def _scale(w: np.ndarray, qmax: int) -> np.ndarray:
    """Symmetric f32 scales max|w| / qmax of the rows of w (1 where a row is all zero)."""
    amax = np.abs(w).max(axis=1)
    return np.where(amax > 0, amax / qmax, 1.0).astype(np.float32)


def gptq_weight(w: np.ndarray, h: np.ndarray, dtype: DType, group: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(quantized weight [N, K], f32 scale [N] or [N, K / group]) of a weight stored [N, K] whose layer
    saw inputs with Hessian h [K, K]; the same layout as quantize.quantize_weight."""
    n, k = w.shape
    lo, hi = RANGES[dtype]  # scales map max|w| to hi (symmetric)
    u = _inverse_cholesky(h)
    W = w.astype(np.float64)
    q = np.zeros((n, k), np.int32)
    scale = np.zeros((n, k // group), np.float32) if group else _scale(W, hi)
    s = None if group else scale.astype(np.float64)
    block = group * -(-BLOCK // group) if group else BLOCK
    for b1 in range(0, k, block):
        b2 = min(b1 + block, k)
        wb = W[:, b1:b2].copy()
        err = np.zeros_like(wb)
        ub = u[b1:b2, b1:b2]
        for i in range(b2 - b1):
            j = b1 + i
            if group and j % group == 0:
                scale[:, j // group] = _scale(wb[:, i:i + group], hi)
                s = scale[:, j // group].astype(np.float64)
            col = wb[:, i]
            qc = np.clip(np.rint(col / s), lo, hi)
            q[:, j] = qc
            e = (col - qc * s) / ub[i, i]
            wb[:, i:] -= np.outer(e, ub[i, i:])
            err[:, i] = e
        W[:, b2:] -= err @ u[b1:b2, b2:]
    return q.astype(dtype.numpy), scale


def output_error(w: np.ndarray, wq: np.ndarray, h: np.ndarray) -> float:
    """The layer's output error on the calibration inputs relative to its output:
    ||X (W - Wq)^T||^2 / ||X W^T||^2 from H = 2 X^T X (w, wq [N, K])."""
    d = (w - wq).astype(np.float64)
    w64 = w.astype(np.float64)
    total = float(np.einsum("nk,kl,nl->", w64, h, w64))
    return float(np.einsum("nk,kl,nl->", d, h, d)) / total if total > 0 else 0.0


def quantize_sequentially(graph: Graph, layers: list[Node], quantize_layer: Callable[[Node, np.ndarray], None]) \
        -> None:
    """GPTQ the linear layers `layers` of graph wave by wave (calibration.waves): `quantize_layer(node, h)`
    rewrites each layer given its input's Hessian H = 2 X^T X on the calibration data."""
    for wave in waves(graph, layers, gram, pass_name="quantize{method=gptq}"):
        for node, xtx in wave:
            quantize_layer(node, 2.0 * xtx)
