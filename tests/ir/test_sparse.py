"""Sparse weight formats and the sparse matmul ops: encodings round trip, malformed components are clear
errors (verifier and reference interpreter), the text form round trips, the reference is the dense product."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import leptonc
from leptonc.ir import DType, Graph, ShapeError, TensorType, VerifyError, parse_ir, print_ir, verify
from leptonc.ir import sparse as S


def sparse_matrix(rng, n, k, block=(1, 1), density=0.3, empty_rows=0):
    """A random W [n, k] whose nonzeros come in whole blocks; the first `empty_rows` block rows are zero."""
    bh, bw = block
    keep = rng.random((n // bh, k // bw)) < density
    keep[:empty_rows] = False
    w = rng.standard_normal((n, k)).astype(np.float32)
    return w * np.kron(keep, np.ones(block, np.float32))


def nm_matrix(rng, n_out, k, n, m):
    w = rng.standard_normal((n_out, k)).astype(np.float32).reshape(n_out, k // m, m)
    drop = np.argsort(rng.random(w.shape), axis=2)[:, :, n:]
    np.put_along_axis(w, drop, 0, axis=2)
    return w.reshape(n_out, k)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([(1, 1), (1, 8), (2, 4), (4, 1), (3, 5), (8, 8)]), st.integers(1, 5), st.integers(1, 6),
       st.floats(0, 1), st.integers(0, 2), st.integers(0, 2**31))
def test_bsr_round_trip(block, rows, cols, density, empty, seed):
    w = sparse_matrix(np.random.default_rng(seed), block[0] * rows, block[1] * cols, block, density, empty)
    values, c, r = S.bsr_from_dense(w, block)
    S.check_bsr(values, c, r, w.shape[1])
    assert values.shape[1:] == block and c.dtype == np.uint16 and r.dtype == np.int32
    assert np.count_nonzero(np.any(values != 0, axis=(1, 2))) == values.shape[0]  # every stored block holds a nonzero
    np.testing.assert_array_equal(S.bsr_to_dense(values, c, r, w.shape[1]), w)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([(2, 4), (1, 4), (4, 8), (3, 8), (1, 2), (2, 32)]), st.integers(1, 4), st.integers(1, 9),
       st.integers(0, 2**31))
def test_nm_round_trip(nm, rows, groups, seed):
    n, m = nm
    w = nm_matrix(np.random.default_rng(seed), rows, m * groups, n, m)
    values, meta = S.nm_from_dense(w, n, m)
    S.check_nm(values, meta, n, m, w.shape[1])
    assert values.shape == (rows, groups * n) and meta.shape == (rows, S.nm_meta_width(groups * n, m))
    np.testing.assert_array_equal(S.nm_to_dense(values, meta, n, m, w.shape[1]), w)


def test_nm_refuses_a_group_with_too_many_nonzeros():
    w = np.ones((2, 8), np.float32)
    with pytest.raises(ShapeError, match=r"row 0, inputs 0..3 hold 4 nonzeros, more than 2"):
        S.nm_from_dense(w, 2, 4)


def test_wide_matrices_get_i32_column_indices():
    w = np.zeros((1, 70000), np.float32)
    w[0, 69999] = 1
    _, cols, _ = S.bsr_from_dense(w, (1, 1))
    assert cols.dtype == np.int32 and cols[0] == 69999


def _bsr_graph(w, block, rows=("B",)):
    g = Graph("sparse")
    x = g.add_input("x", TensorType(DType.f32, tuple(rows) + (w.shape[1],)))
    v, c, r = S.bsr_from_dense(w, block)
    y = g.add("matmul_bsr", x, g.add_constant(v, "w.values"), g.add_constant(c, "w.cols"), g.add_constant(r, "w.rows"))
    g.set_outputs([y])
    return g


def test_reference_is_the_dense_product_exactly():
    rng = np.random.default_rng(0)
    w = sparse_matrix(rng, 16, 24, (2, 4), 0.4)
    g = _bsr_graph(w, (2, 4))
    x = rng.standard_normal((5, 24)).astype(np.float32)
    np.testing.assert_array_equal(leptonc.run_reference(g, x)[0], np.matmul(x, w.T))
    scale = rng.random(16).astype(np.float32)
    g2 = Graph("q")
    xv = g2.add_input("x", TensorType(DType.f32, (5, 24)))
    vals, meta = S.nm_from_dense(nm_matrix(rng, 16, 24, 2, 4).astype(np.int8) * 3, 2, 4)
    wq = S.nm_to_dense(vals, meta, 2, 4, 24)
    g2.set_outputs([g2.add("matmul_nm", xv, g2.add_constant(vals, "v"), g2.add_constant(meta, "m"),
                           g2.add_constant(scale, "s"), n=2, m=4)])
    want = np.matmul(x, (wq.astype(np.float32) * scale[:, None]).T)
    np.testing.assert_allclose(leptonc.run_reference(g2, x)[0], want, rtol=1e-6)


def test_text_form_round_trips():
    rng = np.random.default_rng(1)
    g = _bsr_graph(sparse_matrix(rng, 8, 16, (1, 8), 0.5), (1, 8))
    text = print_ir(g)
    assert "matmul_bsr(%x, %w.values, %w.cols, %w.rows) : f32[B, 8]" in text
    assert "u16[" in text and ": f32[" in text
    assert print_ir(parse_ir(text, constants=g.constants)) == text


@pytest.mark.parametrize("break_it, message", [
    (lambda c, r: (c[::-1].copy(), r), "block columns of a row must strictly increase"),
    (lambda c, r: (c + 100, r), "a block column index is outside"),
    (lambda c, r: (c, r[::-1].copy()), "row offsets must run from 0"),
    (lambda c, r: (c, np.where(np.arange(r.size) == 3, 1, r).astype(np.int32)), "row offsets decrease at block row 2"),
])
def test_malformed_components_are_named_errors(break_it, message):
    w = np.eye(8, 16, dtype=np.float32) + np.eye(8, 16, 3, dtype=np.float32)
    g = _bsr_graph(w, (1, 1))
    cols, rows = break_it(g.constants["w.cols"], g.constants["w.rows"])
    g.constants["w.cols"], g.constants["w.rows"] = cols, rows
    with pytest.raises(VerifyError, match=f"matmul_bsr.*{message}"):
        verify(g)
    with pytest.raises(ShapeError, match=message):
        leptonc.run_reference(g, np.ones((1, 16), np.float32))


def test_type_errors_name_the_operand():
    g = Graph("bad")
    x = g.add_input("x", TensorType(DType.f32, (1, 12)))
    v = g.add_constant(np.ones((2, 1, 8), np.float32), "v")
    c = g.add_constant(np.zeros(2, np.uint16), "c")
    r = g.add_constant(np.array([0, 2], np.int32), "r")
    with pytest.raises(ShapeError, match="K = 12 is not a multiple of the block width 8"):
        g.add("matmul_bsr", x, v, c, r)
    q = g.add_constant(np.ones((4, 8), np.int8), "q")
    meta = g.add_constant(np.zeros((4, 2), np.uint8), "meta")
    x8 = g.add_input("x8", TensorType(DType.f32, (1, 16)))
    with pytest.raises(ShapeError, match="i8 values needs a scale"):
        g.add("matmul_nm", x8, q, meta, n=2, m=4)
