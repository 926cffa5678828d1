"""tfidf_vectorizer on the cpu target against the reference interpreter: random pools (repeated n-grams
included) and token rows, every mode, with and without weights, gaps up to max_skip_count, 1-D and 2-D
input, i32 and i64 tokens."""
from __future__ import annotations

import numpy as np
import pytest

import leptonc
from leptonc.ir import DType, Graph, TensorType


MODES = [("TF", False), ("IDF", False), ("IDF", True), ("TFIDF", True)]


@pytest.mark.parametrize("low, high, skip", [(1, 1, 0), (1, 3, 2), (2, 3, 4), (3, 3, 1)])
def test_tfidf_vectorizer_matches_the_reference(low, high, skip):
    """Every mode of one pool, as outputs of one graph."""
    rng = np.random.default_rng(low * 10 + high + skip)
    counts, pool = [], []
    for n in range(1, high + 1):   # 6 grams of each length, of tokens 0..4 (so that rows hold many)
        counts.append(len(pool))
        pool += rng.integers(0, 5, 6 * n).tolist()
    columns = rng.permutation(6 * high).tolist()
    weights = tuple(rng.uniform(0.5, 3, len(columns)).round(3))
    for tokens in (rng.integers(0, 6, (3, 17)).astype(np.int64), rng.integers(0, 6, 23).astype(np.int32)):
        g = Graph("tfidf")
        x = g.add_input("x", TensorType(DType.from_numpy(tokens.dtype), tokens.shape))
        g.set_outputs([g.add("tfidf_vectorizer", x, min_gram_length=low, max_gram_length=high,
                             max_skip_count=skip, mode=mode, ngram_counts=tuple(counts),
                             ngram_indexes=tuple(columns), pool=tuple(pool), weights=weights if weighted else ())
                       for mode, weighted in MODES])
        got, want = leptonc.compile(g, quiet=True).run(tokens), leptonc.run_reference(g, tokens)
        for a, b in zip(got, want):
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(a, b)
