"""Lowering of tfidf_vectorizer: every (gram length, skip) pair compares the token windows with the
pool's n-grams of that length at once; the matches, summed over start positions, go to their
output columns through a constant one-hot matrix."""
from __future__ import annotations

import numpy as np

from ...ir.dtypes import DType
from ...ir.ops.text import _grams
from ...ir.types import TensorType
from .builder import Builder, Val
from .layout import slice_axis
from .linalg import dot
from .rules import lowers


def _windows(min_n: int, max_n: int, max_skip: int, length: int):
    """The (n, skip) pairs the reference counts: unigrams once, longer grams at every skip."""
    first = min_n
    for skip in range(1, max_skip + 2):
        for n in range(max(first, 1), max_n + 1):
            if (n - 1) * skip < length:
                yield n, skip
        if first == 1:
            first = 2
            if first > max_n:
                break


def _count(b: Builder, rows: Val, grams: np.ndarray, skip: int) -> Val:
    """(rows, len(grams)) counts of the n-grams `grams` (G, n) with token gap `skip`, as f32."""
    g, n = grams.shape
    length = rows.shape[1]
    starts = length - (n - 1) * skip
    shape = (rows.shape[0], starts, g)
    match = None
    for j in range(n):
        token = slice_axis(b, rows, 1, j * skip, j * skip + starts)
        same = b.compare(b.broadcast_in_dim(token, shape, [0, 1]),
                         b.broadcast_in_dim(b.constant(grams[:, j].astype(rows.dtype.numpy)), shape, [2]), "EQ")
        match = same if match is None else b.binary("and", match, same)
    hits = b.convert(match, DType.f32)
    return b.reduce(hits, b.scalar(0, DType.f32), [1], "add")


@lowers("tfidf_vectorizer")
def tfidf_vectorizer(b: Builder, node, args, out, attrs):
    x = args[0]
    rows = b.reshape(x, (1,) + tuple(x.shape)) if len(x.shape) == 1 else x
    size = max(attrs["ngram_indexes"]) + 1
    table = _grams(attrs["pool"], attrs["ngram_counts"], attrs["min_gram_length"], attrs["max_gram_length"])
    freq = b.full(0, TensorType(DType.f32, (rows.shape[0], size)))
    for n, skip in _windows(attrs["min_gram_length"], attrs["max_gram_length"], attrs["max_skip_count"],
                            rows.shape[1]):
        entries = [(gram, gid) for gram, gid in table.items() if len(gram) == n]
        if not entries:
            continue
        grams = np.array([gram for gram, _ in entries], np.int64).reshape(len(entries), n)
        columns = np.zeros((len(entries), size), np.float32)
        for i, (_, gid) in enumerate(entries):
            columns[i, attrs["ngram_indexes"][gid - 1]] = 1
        counts = _count(b, rows, grams, skip)
        freq = b.binary("add", freq, dot(b, counts, b.constant(columns), ([], []), ([1], [0]), freq.shape))
    weights = np.asarray(attrs["weights"], np.float32)
    if attrs["mode"] == "IDF":
        present = b.compare(freq, b.full(0, freq.type), "GT")
        w = b.broadcast_in_dim(b.constant(weights), freq.shape, [1]) if weights.size else b.full(1, freq.type)
        freq = b.select(present, w, b.full(0, freq.type))
    elif attrs["mode"] == "TFIDF" and weights.size:
        freq = b.binary("multiply", freq, b.broadcast_in_dim(b.constant(weights), freq.shape, [1]))
    return b.reshape(freq, out[0].shape)
