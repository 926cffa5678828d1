"""sparsify: run linear layers whose weights are already sparse on sparse kernels, values unchanged.

    sparsify                       every layer with at least half its weights zero, where faster
    sparsify{min_sparsity=0.3,kernels=sparse}

A weight pruned before export (torch.nn.utils.prune, or any training-time
sparsity) reaches the compiler as a dense constant full of zeros. For each
linear layer with at least `min_sparsity` zeros, the pass encodes the weight
in every format that holds it exactly: N:M when each group of m inputs holds
at most n nonzeros (2:4, 1:4, 4:8), BSR for the block shapes that tile it,
CSR, and picks the one the cost model predicts fastest; the layer moves to
that kernel if it is predicted faster than the dense one (kernels=auto, else
the pass warns once naming the layer) or in any case (kernels=sparse). Zeros
inside a stored block are stored as zeros: every value is kept, so the
outputs equal the dense layer's (the pass is exact).
"""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph
from .prune import ROWS, SKIP
from .registry import Option, PassError, register_pass
from .sparse_cost import sparse_seconds
from .sparse_layers import Encoding, LinearLayer, encode_bsr, encode_nm, linear_layers, lower_layer, select_layers, \
    sparsity

BLOCKS = ((1, 1), (1, 4), (1, 8), (1, 16), (2, 8), (4, 1), (8, 1), (16, 1), (4, 4), (8, 8))
NM_PATTERNS = ((2, 4), (1, 4), (4, 8))


@register_pass("sparsify", "move linear layers whose weights are mostly zeros to sparse kernels (exact)",
               options={
                   "min_sparsity": Option(float, 0.5, "fraction of zeros from which a layer is considered"),
                   "skip": Option(str, "none", SKIP.help),
                   "kernels": Option(str, "auto", "sparse kernels where faster (auto) or always (sparse)",
                                     choices=("auto", "sparse")),
                   "rows": ROWS,
               })
def sparsify(graph: Graph, min_sparsity: float, skip: str, kernels: str, rows: int) -> bool:
    if not 0.0 <= min_sparsity <= 1.0:
        raise PassError(f"sparsify: min_sparsity must be in [0, 1], got {min_sparsity}")
    if rows < 0:
        raise PassError(f"sparsify: rows must be 0 (the graph's) or positive, got {rows}")
    changed = False
    for layer in select_layers(linear_layers(graph), skip, "sparsify"):
        if layer.stored.size == 0 or sparsity(layer.stored) < min_sparsity:
            continue
        changed |= lower_layer(graph, layer, best_encoding(layer, rows or layer.rows), kernels, "sparsify", rows)
    return changed


def best_encoding(layer: LinearLayer, rows: int) -> Encoding:
    """The exact encoding of the layer's weight that the cost model predicts fastest for `rows` rows of x."""
    w = layer.stored
    n_out, k_in = w.shape
    candidates = [encode_bsr(w, b) for b in BLOCKS if n_out % b[0] == 0 and k_in % b[1] == 0]
    for n, m in NM_PATTERNS:
        if k_in % m == 0 and _holds_nm(w, n, m):
            candidates.append(encode_nm(w, n, m))
    return min(candidates, key=lambda e: sparse_seconds(e.layout, rows))


def _holds_nm(w: np.ndarray, n: int, m: int) -> bool:
    rows, k = w.shape
    return bool(np.all(np.count_nonzero(w.reshape(rows, k // m, m), axis=2) <= n))
