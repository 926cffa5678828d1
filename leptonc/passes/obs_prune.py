"""Calibrated pruning: SparseGPT (masks chosen and remaining weights updated by the OBS reconstruction) and
Wanda (|w| times the input's L2 norm, no update), for prune{method=sparsegpt|wanda}.

    prune{method=sparsegpt,sparsity=0.5}                 unstructured
    prune{method=wanda,pattern=nm,n=2,m=4}               2 of every 4 inputs of an output kept
    prune{method=sparsegpt,pattern=block,block=1x8,sparsity=0.9}

Both read the layer's inputs on the calibration data (require_calibration): SparseGPT accumulates the
Hessian H = X^T X of the layer's reconstruction error ||XW^T - XW'^T||^2 over every row of x, Wanda the
squared L2 norm of each input (H's diagonal). Layers are pruned wave by wave (calibration.waves), each
observed through the graph with the layers before it already pruned, so that a layer's reconstruction sees
the errors of the ones before it; sequential=false observes every layer on the unpruned graph in one run
of the calibration data (blind to the errors of the layers before).

SparseGPT (Frantar & Alistarh, 2023), per layer with W [N, K]: H is dampened (1% of its mean diagonal),
inverted, and the upper Cholesky factor U of H^-1 taken; columns are visited in blocks of 128. At the start
of a block the mask of its columns is chosen on the weights as updated so far, dropping the lowest
w^2 / U_jj^2 (N:M: at the start of each group of m columns); then each column j in turn is set to its masked
value and its error (w - q) / U_jj is spread over the columns after it (times U's row j), within the block
at once and beyond it once per block. Block patterns score a block by the sum of its entries' scores.
Inputs that are zero on every calibration sample score 0 (their weights go first).

A convolution's W [O, C / group * kernel] multiplies its input's windows (prune_conv.py): its Hessian is
that of the im2col rows, one per group, and each group's rows of W are pruned against their group's
(the pruned count is exact per group).

The pruned count is exact: round(sparsity * entries) per layer (blocks for block patterns), shared out over
SparseGPT's column blocks and over Wanda's output rows (Wanda compares weights within an output row, or a
row of blocks) by cumulative rounding. A layer whose weight already holds that many zeros in the pattern
is kept as it is (no reconstruction): compiling a model that was pruned and then fine-tuned with its mask
fixed (leptonc.recover) gives back its own weights.
"""
from __future__ import annotations

import math

import numpy as np

from ..ir.graph import Graph
from .calibration import column_squares, gram, waves
from .registry import PassError

COLUMN_BLOCK = 128      # SparseGPT's lazy-update block of columns
DAMP = 0.01             # dampening added to H's diagonal, a fraction of its mean


class Pattern:
    """What a mask must look like: `kind` unstructured (sparsity of entries), nm (n kept of every m inputs of an
    output) or block (sparsity of BH x BW blocks of W [N, K])."""

    def __init__(self, kind: str, sparsity: float = 0.0, n: int = 2, m: int = 4, block: tuple[int, int] = (1, 1)):
        self.kind, self.sparsity, self.n, self.m = kind, sparsity, n, m
        self.block = block if kind == "block" else (1, 1)

    def drops(self, units: int) -> int:
        """How many of `units` entries or blocks are pruned."""
        return int(round(self.sparsity * units))

    def block_scores(self, scores: np.ndarray) -> np.ndarray:
        """Per-entry scores [N, K] summed over the pattern's blocks, [N / BH, K / BW]."""
        bh, bw = self.block
        n, k = scores.shape
        return scores.reshape(n // bh, bh, k // bw, bw).sum(axis=(1, 3))

    def expand(self, keep: np.ndarray) -> np.ndarray:
        bh, bw = self.block
        return np.repeat(np.repeat(keep, bh, axis=0), bw, axis=1)

    def is_met(self, w: np.ndarray) -> bool:
        """Whether w's zeros already make a mask of this pattern with the pruned count (or more)."""
        zero = w == 0
        if self.kind == "nm":
            rows, k = w.shape
            return bool((zero.reshape(rows, k // self.m, self.m).sum(axis=2) >= self.m - self.n).all())
        blocks = self.block_scores(zero.astype(np.int64)) == self.block[0] * self.block[1]
        return int(blocks.sum()) >= self.drops(blocks.size)


# ---------------------------------------------------------------- masks from scores

def _lowest(scores: np.ndarray, drop: int) -> np.ndarray:
    """Keep-mask of `scores` (any shape) dropping its `drop` lowest (ties to the lower index)."""
    keep = np.ones(scores.size, bool)
    if drop:
        keep[np.argsort(scores, axis=None, kind="stable")[:drop]] = False
    return keep.reshape(scores.shape)


def _shares(total: int, parts: list[int], fraction: float) -> list[int]:
    """`fraction` of each part by cumulative rounding, so that the shares add up to round(fraction * total)."""
    out, at = [], 0
    for p in parts:
        out.append(int(round(fraction * (at + p))) - int(round(fraction * at)))
        at += p
    assert at == total
    return out


def _nm_keep(scores: np.ndarray, n: int, m: int) -> np.ndarray:
    """Keep the n highest scores of each run of m columns of a row (ties to the lower index)."""
    rows, k = scores.shape
    groups = scores.reshape(rows, k // m, m)
    order = np.argsort(-groups, axis=2, kind="stable")[:, :, :n]
    keep = np.zeros(groups.shape, bool)
    np.put_along_axis(keep, order, True, axis=2)
    return keep.reshape(rows, k)


# ---------------------------------------------------------------- Wanda

def wanda_mask(w: np.ndarray, sq_norms: np.ndarray, pattern: Pattern) -> np.ndarray:
    """Keep-mask of W [N, K] by Wanda's score |w_ij| * ||x_j||_2 (`sq_norms`: sum of x_j^2 over the
    calibration rows), compared within each output row (N:M: each group of m; blocks: each row of blocks,
    scored by the sum of their entries' scores)."""
    scores = np.abs(w.astype(np.float64)) * np.sqrt(np.maximum(sq_norms.astype(np.float64), 0.0))[None, :]
    if pattern.kind == "nm":
        return _nm_keep(scores, pattern.n, pattern.m)
    blocks = pattern.block_scores(scores)
    drops = _shares(blocks.size, [blocks.shape[1]] * blocks.shape[0], pattern.sparsity)
    keep = np.stack([_lowest(row, d) for row, d in zip(blocks, drops)])
    return pattern.expand(keep)


# ---------------------------------------------------------------- SparseGPT

def inverse_hessian_factor(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(upper Cholesky factor U of (H + damp I)^-1, the inputs that are zero on all calibration data)."""
    h = np.array(h, np.float64)
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    h[np.diag_indices_from(h)] += DAMP * float(np.mean(np.diag(h)))
    try:
        hinv = np.linalg.inv(h)
        return np.linalg.cholesky((hinv + hinv.T) / 2).T, dead
    except np.linalg.LinAlgError:
        raise PassError("prune{method=sparsegpt}: the calibration inputs' Hessian is not positive definite "
                        "after dampening (inputs of inf or nan?)") from None


def sparsegpt(w: np.ndarray, h: np.ndarray, pattern: Pattern) -> np.ndarray:
    """W [N, K] pruned to `pattern` with SparseGPT's OBS reconstruction against the Hessian h = X^T X [K, K]
    of the layer's inputs; the kept weights are updated (float64 inside, W's dtype out)."""
    n_out, k = w.shape
    u, dead = inverse_hessian_factor(h)
    W = w.astype(np.float64)
    step = math.lcm(COLUMN_BLOCK, pattern.m if pattern.kind == "nm" else pattern.block[1])
    starts = list(range(0, k, step))
    widths = [min(step, k - s) for s in starts]
    if pattern.kind == "nm":
        drops = [0] * len(starts)
    else:
        bh, bw = pattern.block
        total = (n_out // bh) * (k // bw)
        drops = _shares(total, [(n_out // bh) * (c // bw) for c in widths], pattern.sparsity)
    for i1, count, drop in zip(starts, widths, drops):
        i2 = i1 + count
        W1, U1 = W[:, i1:i2].copy(), u[i1:i2, i1:i2]
        d = np.diag(U1)
        score = lambda cols: np.where(dead[i1:i2][cols], 0.0, W1[:, cols] ** 2 / d[cols] ** 2)  # noqa: E731
        keep = np.ones_like(W1, bool)
        if pattern.kind != "nm":
            keep = pattern.expand(_lowest(pattern.block_scores(score(slice(None))), drop))
        err = np.zeros_like(W1)
        for i in range(count):
            if pattern.kind == "nm" and i % pattern.m == 0:
                cols = slice(i, i + pattern.m)
                keep[:, cols] = _nm_keep(score(cols), pattern.n, pattern.m)
            col = W1[:, i]
            q = np.where(keep[:, i], col, 0.0)
            e = (col - q) / d[i]
            W1[:, i:] -= np.outer(e, U1[i, i:])
            W1[:, i] = q
            err[:, i] = e
        W[:, i1:i2] = W1
        W[:, i2:] -= err @ u[i1:i2, i2:]
    return W.astype(w.dtype)


# ---------------------------------------------------------------- the pass

def prune_calibrated(graph: Graph, layers: list, method: str, pattern: Pattern, apply, sequential: bool = True) \
        -> None:
    """Prune `layers` (sparse_layers.LinearLayer, prune_conv.ConvLayer; graph order) by `method` (sparsegpt or
    wanda) on the calibration data; `apply(layer, w)` gives a layer its pruned f32 weight W [N, K]. Sequential:
    wave by wave (calibration.waves), each layer observed with the layers before it pruned; else all on the
    unpruned graph's activations, in one run."""
    todo = []
    for layer in layers:
        if pattern.is_met(layer.effective):
            apply(layer, layer.effective)
        else:
            todo.append(layer)
    statistic = gram if method == "sparsegpt" else column_squares
    for wave in waves(graph, todo, statistic, pass_name=f"prune{{method={method}}}", sequential=sequential,
                      node=lambda layer: layer.node, unfold=lambda layer: getattr(layer, "unfold", None)):
        for layer, stats in wave:
            w = layer.effective
            if isinstance(stats, list):  # a conv: its groups' rows of W, each against its group's windows
                parts = np.split(w, len(stats))
                apply(layer, np.concatenate([_pruned(p, s, method, pattern) for p, s in zip(parts, stats)]))
            else:
                apply(layer, _pruned(w, stats, method, pattern))


def _pruned(w: np.ndarray, stats: np.ndarray, method: str, pattern: Pattern) -> np.ndarray:
    if method == "sparsegpt":
        return sparsegpt(w, stats, pattern)
    return np.where(wanda_mask(w, stats, pattern), w, np.zeros((), w.dtype))
