"""tfidf_vectorizer: n-gram counts (with skips) of integer token sequences, as ONNX TfIdfVectorizer."""
from __future__ import annotations

import numpy as np

from ..dtypes import DType
from ..registry import PURE, define_op
from ..samples import op_samples
from ..types import TensorType
from .infer import require


def _grams(pool, counts, min_n, max_n):
    """{n-gram tuple: ngram id (1-based)} for the pool's segments of sizes min_n..max_n."""
    table, nid = {}, 1
    bounds = list(counts) + [len(pool)]
    for size, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:]), start=1):
        n = (hi - lo) // size
        if min_n <= size <= max_n:
            for k in range(n):
                table[tuple(pool[lo + k * size: lo + (k + 1) * size])] = nid + k
        nid += n
    return table


def _tfidf_infer(x: TensorType, **a) -> TensorType:
    require(x.dtype in (DType.i64, DType.i32) and x.rank in (1, 2), "tfidf_vectorizer needs 1-D or 2-D integer tokens")
    require(a["mode"] in ("TF", "IDF", "TFIDF"), f"unknown tfidf mode {a['mode']!r}")
    size = max(a["ngram_indexes"]) + 1
    return TensorType(DType.f32, ((x.shape[0], size) if x.rank == 2 else (size,)))


@define_op("tfidf_vectorizer", infer=_tfidf_infer,
           attrs={"min_gram_length": "int", "max_gram_length": "int", "max_skip_count": "int", "mode": "str",
                  "ngram_counts": "ints", "ngram_indexes": "ints", "pool": "ints", "weights": ("floats", ())},
           traits=PURE)
def tfidf_vectorizer(x, min_gram_length, max_gram_length, max_skip_count, mode, ngram_counts, ngram_indexes, pool,
                     weights):
    """Count each pool n-gram (lengths min..max, token gaps up to max_skip_count) per row; TF gives
    counts, IDF the weight (or 1) of each present n-gram, TFIDF counts times weights."""
    table = _grams(pool, ngram_counts, min_gram_length, max_gram_length)
    rows = x.reshape(1, -1) if x.ndim == 1 else x
    size = max(ngram_indexes) + 1
    freq = np.zeros((rows.shape[0], size), np.float64)
    for r, row in enumerate(rows.tolist()):
        first = min_gram_length
        for skip in range(1, max_skip_count + 2):
            for start in range(len(row)):
                for n in range(max(first, 1), max_gram_length + 1):
                    end = start + (n - 1) * skip
                    if end >= len(row):
                        break
                    gid = table.get(tuple(row[start:end + 1:skip]))
                    if gid is not None:
                        freq[r, ngram_indexes[gid - 1]] += 1
            if first == 1:
                first = 2
                if first > max_gram_length:
                    break
    w = np.asarray(weights, np.float64)
    if mode == "IDF":
        out = np.where(freq > 0, w if w.size else 1.0, 0.0)
    elif mode == "TFIDF":
        out = freq * w if w.size else freq
    else:
        out = freq
    return out.reshape((size,) if x.ndim == 1 else (rows.shape[0], size)).astype(np.float32)


@op_samples
def _samples(s):
    return {
        "tfidf_vectorizer": [
            s(np.array([[1, 1, 3, 3, 3, 7], [8, 6, 7, 5, 6, 8]], np.int32), min_gram_length=2, max_gram_length=2, max_skip_count=0, mode="TF", ngram_counts=(0, 4), ngram_indexes=(0, 1, 2, 3, 4, 5, 6), pool=(2, 3, 5, 4, 5, 6, 7, 8, 6, 7)),
            s(np.array([1, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8]), min_gram_length=1, max_gram_length=2, max_skip_count=3, mode="TFIDF", ngram_counts=(0, 4), ngram_indexes=(0, 1, 2, 3, 4, 5, 6), pool=(2, 3, 5, 4, 5, 6, 7, 8, 6, 7), weights=(2.0, 1.0, 3.0, 1.0, 0.5, 1.0, 4.0)),
            s(np.array([[1, 1, 3, 3, 3, 7], [8, 6, 7, 5, 6, 8]]), min_gram_length=1, max_gram_length=2, max_skip_count=1, mode="IDF", ngram_counts=(0, 4), ngram_indexes=(0, 1, 2, 3, 4, 5, 6), pool=(2, 3, 5, 4, 5, 6, 7, 8, 6, 7)),
        ],
    }
