"""Index semantics of the ops that read positions from a tensor, defined once for every target.

An index i into a dim of size n is valid when -n <= i < n; a negative one counts from the end (ONNX's
rule). Anything else is an error on every target, never a clamp: a run reports the first index out of
range in the index tensor's row-major order, as an `IndexRangeError` naming the op and its result
("gather %emb: index 30522 is out of range for dim 0 of size 30522"). The ops' numpy references check
with `check_indices` (so constant folding never folds a bad index), the reference interpreter names
the node, and each target checks in its own code.

The gathers and scatters take the data as their first operand and the indices as their second. Element p of
the flattened indices indexes data dim `dims[p % len(dims)]`: one dim (the axis) for gather,
gather_elements and scatter_elements, the dims of an index tuple (the last index dim) for gather_nd
and scatter_nd.

tensor_scatter (a cache, its update, write indices) writes update step t of batch entry b at position
idx[b] + t along its axis. In mode "linear" those positions must lie in [0, n), without wrapping, and
an error names the first one outside, in (b, t) order; in mode "circular" every position wraps.
"""
from __future__ import annotations

import numpy as np

from .errors import IndexRangeError

NO_INDEX_ERROR = 2**63 - 1  # the position a run's index record holds while no index was out of range
CHECKED_OPS = ("gather", "gather_elements", "scatter_elements", "gather_nd", "scatter_nd", "tensor_scatter")


def checks_indices(node) -> bool:
    """Whether a run checks the node's indices (every target, in graph order)."""
    return node.op in CHECKED_OPS and node.attrs.get("mode") != "circular"


def checked_sites(graph) -> tuple[str, ...]:
    """The nodes (as index errors name them) whose indices a run checks, in graph order."""
    return tuple(site(n) for n in graph.nodes if checks_indices(n))


def indexed_dims(op: str, attrs: dict, data_rank: int, index_shape) -> tuple[int, ...]:
    """The data dims that the index elements address, in the order they repeat along the flattened indices."""
    if op in ("gather_nd", "scatter_nd"):
        first = attrs.get("batch_dims", 0)
        return tuple(range(first, first + int(index_shape[-1])))
    return (attrs["axis"] % data_rank,)


def site(node) -> str:
    """How an index error names its node: op and first result, e.g. 'gather %emb'."""
    return f"{node.op} %{node.outputs[0].name}"


def write_positions(idx: np.ndarray, steps: int) -> np.ndarray:
    """tensor_scatter's write positions: [b, t] = idx[b] + t."""
    return idx.reshape(-1, 1).astype(np.int64) + np.arange(steps, dtype=np.int64)


def check_indices(where: str, idx: np.ndarray, dims: tuple[int, ...], data_shape, wraps: bool = True) -> None:
    """Raise IndexRangeError for the first element of `idx` outside its dim of `data_shape` ([-n, n) when
    negative indices wrap, else [0, n))."""
    if not dims or idx.size == 0:
        return
    sizes = np.array([data_shape[d] for d in dims], dtype=np.int64)
    flat = idx.reshape(-1, len(dims)).astype(np.int64)
    bad = ((flat < (-sizes if wraps else 0)) | (flat >= sizes)).ravel()
    if bad.any():
        p = int(np.argmax(bad))
        j = p % len(dims)
        raise IndexRangeError(where, int(flat.ravel()[p]), dims[j], int(sizes[j]))
