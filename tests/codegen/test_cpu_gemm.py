"""The packed GEMM of the cpu target (gemm.c, matmul.py): its C contract called directly (edge tiles, K
blocks, M = 1, strides, the epilogue's blocks), the compile-time packing, and matmul kernels with fused
epilogues against the reference interpreter (broadcast operands, symbolic rows, in-place results)."""
from __future__ import annotations

import ctypes
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import leptonc
from leptonc.codegen.cpu.build import FLAGS, blas_paths, build_library, find_compiler
from leptonc.codegen.cpu.matmul import GEMM_NR, GEMM_SOURCE, pack_b
from leptonc.codegen.cpu.program import PRELUDE, generate
from leptonc.ir import DType, Graph, TensorType
from leptonc.runtime.compiled import CompiledModel
from leptonc.runtime.executor import load_blas
from tests.codegen.cpu_check import assert_matches_reference, compile_and_check

RNG = np.random.default_rng(0)

# Each epilogue call counts the elements of its block and applies C = 2C + 1, so that a test sees both that the
# blocks partition C and that each ran once, after its block was final.
HARNESS = r"""
struct lep_test_ep { int32_t* hits; int64_t n; };
static void lep_test_epilogue(const void* ctx, float* C, int64_t ldc, int64_t i0, int64_t i1, int64_t j0,
                              int64_t j1) {
    const struct lep_test_ep* e = (const struct lep_test_ep*)ctx;
    for (int64_t i = i0; i < i1; ++i)
        for (int64_t j = j0; j < j1; ++j) {
            e->hits[i * e->n + j] += 1;
            C[i * ldc + j] = 2.0f * C[i * ldc + j] + 1.0f;
        }
}
void lep_test_gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* Bp, float* C,
                   int64_t ldc, int32_t* hits, int threads) {
    struct lep_test_ep e = {hits, N};
    omp_set_num_threads(threads);
    lep_gemm_packed(M, N, K, A, lda, Bp, C, ldc, hits ? lep_test_epilogue : NULL, &e);
}
void lep_test_gemm_in_place(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* Bp,
                            const float* bias, const float* clamp, float* C, int64_t ldc, int threads) {
    const lep_a_rows a = {A, lda, NULL, lep_view_matrix, NULL};
    omp_set_num_threads(threads);
    lep_gemm_a(M, N, K, &a, Bp, bias, clamp, C, ldc, NULL, NULL);
}
void lep_test_pack(int64_t K, int64_t N, const float* B, int64_t ldb, float* Bp) { lep_pack_b(K, N, B, ldb, Bp); }
"""


# the micro-kernel each ISA gets: the machine's own (AVX-512 here), AVX2 + FMA, and plain C
ISA_FLAGS = {"native": [], "avx2": ["-mno-avx512f"], "plain": ["-mno-avx512f", "-mno-avx2", "-mno-fma"]}


def _build(source: str, extra: list[str], out: Path) -> Path:
    cc = find_compiler()
    inc, lib_dir, _ = blas_paths()
    src = out.with_suffix(".c")
    src.write_text(source)
    subprocess.run([cc, *FLAGS, *extra, f"-I{inc}", str(src), "-o", str(out), "-lm"], check=True,
                   capture_output=True)
    return out


@pytest.fixture(scope="module", params=list(ISA_FLAGS))
def lib(request, tmp_path_factory):
    load_blas()
    if request.param == "native":
        path, _ = build_library(PRELUDE + GEMM_SOURCE + HARNESS)
    else:
        path = _build(PRELUDE + GEMM_SOURCE + HARNESS, ISA_FLAGS[request.param],
                      tmp_path_factory.mktemp("gemm") / f"gemm_{request.param}.so")
    lib = ctypes.CDLL(str(path))
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    lib.lep_test_gemm.argtypes = [i64, i64, i64, ptr, i64, ptr, ptr, i64, ptr, ctypes.c_int]
    lib.lep_test_gemm_in_place.argtypes = [i64, i64, i64, ptr, i64, ptr, ptr, ptr, ptr, i64, ctypes.c_int]
    lib.lep_test_pack.argtypes = [i64, i64, ptr, i64, ptr]
    return lib


def _gemm(lib, A, B, *, lda_pad=0, ldc_pad=0, epilogue=True, threads=2):
    M, K = A.shape
    N = B.shape[1]
    Ap = np.zeros((M, K + lda_pad), np.float32)
    Ap[:, :K] = A
    Bp = pack_b(B)
    C = np.full((M, N + ldc_pad), 7.0, np.float32)
    hits = np.zeros((M, N), np.int32)
    lib.lep_test_gemm(M, N, K, Ap.ctypes.data, K + lda_pad, Bp.ctypes.data, C.ctypes.data, N + ldc_pad,
                      hits.ctypes.data if epilogue else None, threads)
    assert (C[:, N:] == 7.0).all(), "the GEMM wrote past N in a row of C"
    return C[:, :N], hits


SHAPES = [(1, 1, 1), (1, 4096, 64), (3, 33, 5), (8, 32, 256), (9, 31, 257), (17, 65, 300), (64, 512, 512),
          (128, 96, 1000), (197, 100, 770), (300, 40, 3), (5, 70, 0), (2, 1, 9)]


@pytest.mark.parametrize("M,N,K", SHAPES)
@pytest.mark.parametrize("threads", [1, 2])
def test_gemm_matches_numpy_and_epilogue_covers_each_element_once(lib, M, N, K, threads):
    A = RNG.standard_normal((M, K)).astype(np.float32)
    B = RNG.standard_normal((K, N)).astype(np.float32)
    C, hits = _gemm(lib, A, B, lda_pad=3, ldc_pad=5, threads=threads)
    ref = A.astype(np.float64) @ B.astype(np.float64)
    assert (hits == 1).all(), f"epilogue calls cover some elements {hits.max()} times and some {hits.min()}"
    np.testing.assert_allclose(C, 2 * ref + 1, rtol=1e-4, atol=1e-4 * max(1.0, K ** 0.5))


@settings(max_examples=30, deadline=None)
@given(M=st.integers(1, 70), N=st.integers(1, 200), K=st.integers(0, 600), threads=st.sampled_from([1, 2, 3]))
def test_gemm_random_shapes(lib, M, N, K, threads):
    A = RNG.standard_normal((M, K)).astype(np.float32)
    B = RNG.standard_normal((K, N)).astype(np.float32)
    C, hits = _gemm(lib, A, B, epilogue=False, threads=threads)
    np.testing.assert_allclose(C, A.astype(np.float64) @ B, rtol=1e-4, atol=1e-4 * max(1.0, K ** 0.5))
    assert (hits == 0).all()


@pytest.mark.parametrize("M,N,K", [(1, 1, 1), (3, 33, 5), (17, 65, 300), (197, 100, 1500), (5, 70, 0)])
@pytest.mark.parametrize("bias,clamp", [(True, None), (False, None), (True, (-0.5, 1.0))])
def test_gemm_reading_a_in_place_adds_the_bias_and_clamps(lib, M, N, K, bias, clamp):
    """A shown in place (lep_view_matrix: read by the micro-kernel on AVX-512, packed from the view elsewhere),
    K blocks accumulating, the bias added once, the clamp applied to the final sums (a NaN stays NaN)."""
    A = RNG.standard_normal((M, K + 3)).astype(np.float32)
    if K:
        A[0, 0] = np.nan
    B = RNG.standard_normal((K, N)).astype(np.float32)
    b = RNG.standard_normal(N).astype(np.float32)
    bounds = np.array(clamp or (0, 0), np.float32)
    Bp, C = pack_b(B), np.full((M, N + 2), 7.0, np.float32)
    lib.lep_test_gemm_in_place(M, N, K, A.ctypes.data, K + 3, Bp.ctypes.data, b.ctypes.data if bias else None,
                               bounds.ctypes.data if clamp else None, C.ctypes.data, N + 2, 2)
    assert (C[:, N:] == 7.0).all(), "the GEMM wrote past N in a row of C"
    ref = A[:, :K].astype(np.float64) @ B + (b if bias else 0)
    if clamp:
        ref = np.where(np.isnan(ref), ref, np.clip(ref, *clamp))
    np.testing.assert_allclose(C[:, :N], ref, rtol=1e-4, atol=1e-4 * max(1.0, K ** 0.5))


@pytest.mark.parametrize("K,N", [(5, 1), (7, 32), (3, 70), (64, 96)])
def test_pack_b_layout(lib, K, N):
    B = RNG.standard_normal((N, K)).astype(np.float32).T  # a transposed view, as torch's Linear weights are
    packed = pack_b(B)
    assert packed.ctypes.data % 64 == 0 and packed.dtype == np.float32
    panels = -(-N // GEMM_NR)
    assert packed.shape == (panels * K * GEMM_NR,)
    p = packed.reshape(panels, K, GEMM_NR)
    for j in range(N):
        np.testing.assert_array_equal(p[j // GEMM_NR, :, j % GEMM_NR], B[:, j])
    assert (p.transpose(1, 0, 2).reshape(K, -1)[:, N:] == 0).all()
    runtime = np.empty_like(packed)
    Bc = np.ascontiguousarray(B)
    lib.lep_test_pack(K, N, Bc.ctypes.data, N, runtime.ctypes.data)
    np.testing.assert_array_equal(runtime, packed)


def test_pack_b_rejects_a_batch():
    with pytest.raises(ValueError, match="matrix"):
        pack_b(np.zeros((2, 3, 4), np.float32))


# ---------------------------------------------------------------- matmul kernels through the compiler

def _graph(inputs: dict, build) -> tuple[Graph, list]:
    g = Graph("gemm")
    vals = [g.add_input(name, TensorType(DType.f32, shape)) for name, (_, shape) in inputs.items()]
    g.set_outputs(build(g, *vals))
    return g, [a for a, _ in inputs.values()]


def _rand(*shape):
    return RNG.uniform(-1, 1, shape).astype(np.float32)


def test_packed_weight_replaces_its_plain_layout():
    w = _rand(40, 70)
    g, _ = _graph({"x": (None, ("B", 40))}, lambda g, x: [g.add("matmul", x, g.add_constant(w, "w"))])
    program = generate(g)
    assert program.meta["weights"] == ["w^P"]
    assert "lep_gemm_packed(" in program.source


@pytest.mark.parametrize("rows", [1, 3, 8, 13, 64, 129])
def test_linear_bias_gelu_residual_with_symbolic_rows(rows):
    """One library for every row count: bias [N], GELU, a residual [B, S, N] and a per-row scale [B, S, 1]."""
    w, b = _rand(48, 70), _rand(70)
    x, res, s = _rand(rows, 2, 48), _rand(rows, 2, 70), _rand(rows, 2, 1)

    def build(g, x, res, s):
        h = g.add("add", g.add("matmul", x, g.add_constant(w, "w")), g.add_constant(b, "b"))
        h = g.add("mul", h, g.add("sigmoid", h))
        return [g.add("mul", g.add("add", h, res), s)]

    g, xs = _graph({"x": (x, ("B", 2, 48)), "res": (res, ("B", 2, 70)), "s": (s, ("B", 2, 1))}, build)
    cm = compile_and_check(g, xs)
    assert "_epilogue(const void* ctx" in cm.source
    other = [_rand(5, 2, 48), _rand(5, 2, 70), _rand(5, 2, 1)]
    assert_matches_reference(cm.run(*other), leptonc.run_reference(g, *other))


def test_operand_broadcast_over_leading_dims():
    """An epilogue operand [S, N] broadcast over the batch of a [B, S, N] output, and a scalar per batch [B, 1, 1]."""
    w = _rand(33, 40)
    x, pos, t = _rand(3, 5, 33), _rand(5, 40), _rand(3, 1, 1)
    g, xs = _graph({"x": (x, (3, 5, 33)), "pos": (pos, (5, 40)), "t": (t, (3, 1, 1))},
                   lambda g, x, pos, t: [g.add("sub", g.add("add", g.add("matmul", x, g.add_constant(w, "w")),
                                                            pos), t)])
    compile_and_check(g, xs)


def test_matmul_output_read_by_another_kernel_and_by_its_epilogue():
    """The GEMM's own result stays whole when a later kernel reads it, beside the epilogue's result."""
    w = _rand(20, 36)
    x = _rand(7, 20)

    def build(g, x):
        h = g.add("matmul", x, g.add_constant(w, "w"))
        return [g.add("relu", h), g.add("reduce_sum", h, axes=(1,), keepdims=False)]

    g, xs = _graph({"x": (x, (7, 20))}, build)
    compile_and_check(g, xs)


def test_residual_of_the_matmul_input_is_not_overwritten_while_tiles_read_it():
    """y = x @ W + x with x dying in the kernel: the epilogue must not write y over x while the GEMM still
    reads x (tiles finish at different times on different threads)."""
    w = _rand(256, 256)
    x0 = _rand(96, 256)

    def build(g, x):
        x = g.add("exp", x)  # an intermediate, so its buffer could be reused
        return [g.add("add", g.add("matmul", x, g.add_constant(w, "w")), x)]

    g, xs = _graph({"x": (x0, (96, 256))}, build)
    compile_and_check(g, xs)


def test_chain_of_linears_gemv():
    """Batch 1 through a chain of square layers with ReLU (the GEMV path)."""
    ws = [_rand(300, 300) * 0.1 for _ in range(3)]
    x = _rand(1, 300)

    def build(g, x):
        for i, w in enumerate(ws):
            x = g.add("relu", g.add("matmul", x, g.add_constant(w, f"w{i}")))
        return [x]

    g, xs = _graph({"x": (x, (1, 300))}, build)
    compile_and_check(g, xs)


@settings(max_examples=15, deadline=None)
@given(M=st.integers(1, 40), K=st.integers(1, 300), N=st.integers(1, 100),
       bias=st.sampled_from(["none", "col", "row", "full"]))
def test_random_linear_with_epilogue(M, K, N, bias):
    w = _rand(K, N)
    x = _rand(M, K)
    shapes = {"none": None, "col": (N,), "row": (M, 1), "full": (M, N)}
    inputs = {"x": (x, ("M", K))}
    if shapes[bias] is not None:
        sym = tuple("M" if d == M and i == 0 and len(shapes[bias]) == 2 else d for i, d in enumerate(shapes[bias]))
        inputs["b"] = (_rand(*shapes[bias]), sym)

    def build(g, x, b=None):
        y = g.add("matmul", x, g.add_constant(w, "w"))
        return [g.add("tanh", y if b is None else g.add("add", y, b))]

    g, xs = _graph(inputs, build)
    compile_and_check(g, xs)


def test_gemm_driver_is_built_once_and_linked_beside_each_model(tmp_path, monkeypatch):
    """A model's build links the GEMM driver's object (compiled on the first build, reused after); the same
    source built alone, as an artifact's is when its library is rebuilt, holds the driver and agrees."""
    monkeypatch.setenv("LEPTONC_CACHE_DIR", str(tmp_path))
    w, x = _rand(40, 70), _rand(9, 40)
    g, xs = _graph({"x": (x, (9, 40))}, lambda g, x: [g.add("relu", g.add("matmul", x, g.add_constant(w, "w")))])
    cm = compile_and_check(g, xs)
    assert generate(g).drivers == ("gemm",)
    (obj,) = tmp_path.glob("driver-gemm-*.o")
    stamp = obj.stat().st_mtime_ns
    g2, xs2 = _graph({"x": (x, (9, 40))}, lambda g, x: [g.add("matmul", x, g.add_constant(w, "w"))])
    compile_and_check(g2, xs2)
    assert obj.stat().st_mtime_ns == stamp and len(list(tmp_path.glob("driver-*.o"))) == 1
    alone, cached = build_library(cm.source)
    assert not cached
    whole = CompiledModel(cm.artifact, alone)
    np.testing.assert_array_equal(whole.run(*xs)[0], cm.run(*xs)[0])
