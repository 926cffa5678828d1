"""The cpu target's sparse matmul kernels against the reference interpreter: random sparsity patterns
(empty rows, empty and fully dense matrices), every way through sparse.c (GEMV and GEMM, vector and scalar
paths; AVX-512, AVX2 and plain C), int8 values, fused epilogues, symbolic batch, and the artifact round trip
of sparse weights."""
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import leptonc
from leptonc.codegen.cpu import build
from leptonc.ir import DType, Graph, TensorType
from leptonc.ir import sparse as S
from tests.codegen.cpu_check import compile_and_check
from tests.ir.test_sparse import nm_matrix, sparse_matrix

# block shapes that take each path of sparse.c: along the width (1x8 pairs, 1x16, 2x8), down one column
# (8x1, 16x1), 16 values of 2- or 4-wide blocks (4x4, 8x2), gathers (1x1 = CSR), scalar (3x5, 64x1), and
# tall blocks past the GEMM way's output buffer (80x1)
BLOCKS = [(1, 8), (1, 16), (2, 8), (8, 1), (16, 1), (1, 1), (3, 5), (4, 4), (8, 2), (64, 1), (80, 1)]
ROWS = [1, 2, 3, 5, 8, 20, 130]  # GEMV way in groups of 1-4 rows, GEMM way with 1 to 2 tiles


def _quantized(w, rng):
    scale = (np.abs(w).max(axis=1) / 127 + rng.random(w.shape[0]) * 1e-3).astype(np.float32)
    return np.clip(np.rint(w / scale[:, None]), -127, 127).astype(np.int8), scale


def bsr_graph(w, block, rows, *, i8=False, wide_index=False, epilogue=True, seed=0):
    """y = relu(x @ W.T + b) with W in BSR (CSR for 1x1 blocks)."""
    rng = np.random.default_rng(seed)
    g = Graph("bsr")
    x = g.add_input("x", TensorType(DType.f32, tuple(rows) + (w.shape[1],)))
    scale = None
    if i8:
        w, scale = _quantized(w, rng)
    v, c, r = S.bsr_from_dense(w, block)
    if wide_index:
        c = c.astype(np.int32)
    if block == (1, 1):
        op, v = "matmul_csr", v.reshape(-1)
    else:
        op = "matmul_bsr"
    operands = [g.add_constant(v, "w.values"), g.add_constant(c, "w.cols"), g.add_constant(r, "w.rows")]
    if i8:
        operands.append(g.add_constant(scale, "w.scale"))
    y = g.add(op, x, *operands)
    if epilogue:
        y = g.add("relu", g.add("add", y, g.add_constant(rng.standard_normal(w.shape[0]).astype(np.float32), "b")))
    g.set_outputs([y])
    return g


def nm_graph(w, n, m, rows, *, i8=False, seed=0):
    rng = np.random.default_rng(seed)
    g = Graph("nm")
    x = g.add_input("x", TensorType(DType.f32, tuple(rows) + (w.shape[1],)))
    extra = []
    if i8:
        w, scale = _quantized(w, rng)
        extra = [g.add_constant(scale, "w.scale")]
    v, meta = S.nm_from_dense(w, n, m)
    y = g.add("matmul_nm", x, g.add_constant(v, "w.values"), g.add_constant(meta, "w.meta"), *extra, n=n, m=m)
    g.set_outputs([g.add("mul", y, g.add_constant(np.float32(0.5), "half"))])
    return g


def _x(rows, k, seed):
    return np.random.default_rng(seed).standard_normal(tuple(rows) + (k,)).astype(np.float32)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(BLOCKS), st.integers(1, 4), st.integers(1, 6), st.sampled_from(ROWS),
       st.sampled_from([0.0, 0.15, 0.6, 1.0]), st.integers(0, 3), st.booleans(), st.booleans(), st.integers(0, 99))
def test_bsr_kernels_match_the_reference(block, block_rows, block_cols, rows, density, empty, i8, wide, seed):
    bh, bw = block
    if bh * block_rows > 160:
        block_rows = 2
    w = sparse_matrix(np.random.default_rng(seed), bh * block_rows, bw * block_cols, block, density, empty)
    g = bsr_graph(w, block, (rows,), i8=i8, wide_index=wide, seed=seed)
    compile_and_check(g, [_x((rows,), w.shape[1], seed)])


@settings(max_examples=20, deadline=None)
@given(st.sampled_from([(2, 4), (1, 4), (4, 8), (3, 8)]), st.integers(1, 40), st.sampled_from([2, 9, 20]),
       st.sampled_from(ROWS), st.booleans(), st.integers(0, 99))
def test_nm_kernels_match_the_reference(nm, out, groups, rows, i8, seed):
    """2:4 rows of 16 kept values take the permute path (groups >= 8), the rest the scalar one."""
    n, m = nm
    w = nm_matrix(np.random.default_rng(seed), out, m * groups, n, m)
    g = nm_graph(w, n, m, (rows,), i8=i8, seed=seed)
    compile_and_check(g, [_x((rows,), w.shape[1], seed)])


def test_one_kernel_holds_the_sparse_matmul_and_its_epilogue():
    w = sparse_matrix(np.random.default_rng(0), 64, 64, (8, 1), 0.3)
    cm = compile_and_check(bsr_graph(w, (8, 1), (4,)), [_x((4,), 64, 0)])
    kernels = cm.manifest["program"]["kernels"]
    assert [k["kind"] for k in kernels] == ["matmul_bsr"]
    assert kernels[0]["name"].endswith("matmul_bsr_add_relu")
    assert "LEP_BSR_MATMUL(" in cm.source and "8, 1);" in cm.source


def test_symbolic_batch_runs_at_every_size():
    w = sparse_matrix(np.random.default_rng(1), 48, 64, (4, 4), 0.3)
    g = bsr_graph(w, (4, 4), ("B",))
    cm = leptonc.compile(g, quiet=True)
    for b in (1, 3, 8, 33, 200):
        x = _x((b,), 64, b)
        np.testing.assert_allclose(cm(x), leptonc.run_reference(g, x)[0], rtol=1e-4, atol=1e-4)


def test_batched_rows_fold_into_the_product():
    """x [2, 5, K]: the rows of every batch are rows of one product."""
    w = nm_matrix(np.random.default_rng(2), 24, 64, 2, 4)
    compile_and_check(nm_graph(w, 2, 4, (2, 5)), [_x((2, 5), 64, 2)])


def test_nonzeros_concentrated_in_a_few_rows():
    """Threads share block rows by nonzeros: one thread may get a single heavy row, the other all the rest."""
    w = np.zeros((256, 128), np.float32)
    w[7] = 1.0
    w[200:202, :64] = np.random.default_rng(3).standard_normal((2, 64))
    for rows in (1, 40):
        compile_and_check(bsr_graph(w, (1, 8), (rows,)), [_x((rows,), 128, rows)])


def test_artifact_round_trip_keeps_sparse_weights_compressed(tmp_path):
    rng = np.random.default_rng(4)
    w = sparse_matrix(rng, 512, 512, (1, 8), 0.1)
    g = bsr_graph(w, (1, 8), (1,))
    x = _x((1,), 512, 4)
    cm = compile_and_check(g, [x])
    path = tmp_path / "sparse.lep"
    cm.save(path)
    loaded = leptonc.load(path)
    np.testing.assert_array_equal(loaded(x), cm(x))
    assert set(loaded.weights) >= {"w.values", "w.cols", "w.rows"}
    assert loaded.weights["w.values"].shape[1:] == (1, 8) and loaded.weights["w.cols"].dtype == np.uint16
    assert path.stat().st_size < 0.2 * w.nbytes  # a tenth of the values, and a u16 index per 8 of them


@pytest.mark.parametrize("rows", [1, 16])
def test_an_empty_weight_gives_the_epilogue_of_zero(rows):
    w = np.zeros((32, 64), np.float32)
    compile_and_check(bsr_graph(w, (2, 8), (rows,)), [_x((rows,), 64, 5)])


def every_path_graph(rows: int, seed: int = 0) -> Graph:
    """One x [rows, 64] through a sparse layer of each kernel path: 1x8 pairs, 8x1 columns, 4x4 and 8x2 in
    16-value steps, CSR gathers, 3x5 scalar loops (f32 and i8), and 2:4 permutes; one output each."""
    rng = np.random.default_rng(seed)
    g = Graph("paths")
    x = g.add_input("x", TensorType(DType.f32, (rows, 64)))
    outs = []
    for i, (block, i8) in enumerate([((1, 8), False), ((8, 1), True), ((4, 4), False), ((8, 2), False),
                                     ((1, 1), True), ((3, 4), False)]):
        w = sparse_matrix(rng, 48, 64, block, 0.4, empty_rows=1)
        sub = bsr_graph(w, block, (rows,), i8=i8, epilogue=False, seed=seed + i)
        outs.append(_inline(g, x, sub, f"l{i}"))
    outs.append(_inline(g, x, nm_graph(nm_matrix(rng, 40, 64, 2, 4), 2, 4, (rows,), seed=seed), "nm"))
    g.set_outputs(outs)
    return g


def _inline(g: Graph, x, sub: Graph, prefix: str):
    """The one-input graph `sub`'s nodes added to g, reading x; its output."""
    env = {id(sub.inputs[0]): x}
    for node in sub.nodes:
        if node.op == "const":
            env[id(node.output)] = g.add_constant(sub.constants[node.attrs["name"]], f"{prefix}.{node.attrs['name']}")
        else:
            env[id(node.output)] = g.add_node(node.op, [env[id(v)] for v in node.inputs], node.attrs).output
    return env[id(sub.outputs[0])]


@pytest.mark.parametrize("march", ["x86-64-v3", "x86-64"])
@pytest.mark.parametrize("rows", [3, 20])
def test_avx2_and_plain_c_paths(monkeypatch, march, rows):
    monkeypatch.setattr(build, "FLAGS", [f"-march={march}" if f == "-march=native" else f for f in build.FLAGS])
    compile_and_check(every_path_graph(rows), [_x((rows,), 64, rows)])


@pytest.mark.skipif(shutil.which("objdump") is None or "avx512f" not in build.cpu_features(),
                    reason="needs objdump and AVX-512")
def test_avx512_paths_use_their_instructions():
    """2:4 gathers a group's inputs with vpermt2ps, CSR with vgatherdps; products are 512-bit FMAs."""
    cm = compile_and_check(every_path_graph(3), [_x((3,), 64, 3)])
    text = subprocess.run(["objdump", "-d", cm.executor.lib._name], capture_output=True, text=True,
                          check=True).stdout
    for instruction in ("vpermt2ps", "vgatherdps", "vfmadd231ps %zmm"):
        assert instruction in text, instruction
