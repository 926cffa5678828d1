"""The fp32 GEMM of the cpu target against OpenBLAS and ONNX Runtime, and against the machine's limits.

    python benchmarks/gemm.py [--threads 2] [--runs 30] [--hot]

  gemm  GFLOP/s of leptonc's packed GEMM (gemm.c, the weight packed as at compile time), OpenBLAS sgemm (as the
        cpu target called it before: single-threaded OpenBLAS on OpenMP's threads) and ONNX Runtime's MatMul
        (a one-node model, the weight an initializer) on the suite's linear layers (MLP at M=64, BERT M=128 and
        ViT M=197 with N, K in {768, 3072}, GPT-2 at M=64), each as % of the measured peak. Each call runs
        one shape over copies of its weight (96 MB of them), back to back, as a model's layers run: the weights
        come from memory (--hot: one weight, from the caches). ONNX Runtime runs them as one model of MatMul
        nodes on one thread pool.
  peak  fp32 FLOP/s of a loop of independent FMAs on all threads.
  gemv  4 x Linear(4096, 4096) at batch 1 (the suite's GEMV chain) with leptonc's GEMM, in GB/s of weights
        read, beside a STREAM-like read of as many bytes.

Timings are medians over calls taken in turns (one call of each system per round), so that the load of a
shared machine falls on all of them alike. Writes benchmarks/results/<date>-gemm-<cpu>.md.
"""
from __future__ import annotations

import argparse
import ctypes
import datetime
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from leptonc.bench import cpu_name  # noqa: E402
from leptonc.codegen.cpu.build import build_library  # noqa: E402
from leptonc.codegen.cpu.matmul import GEMM_SOURCE, pack_b  # noqa: E402
from leptonc.codegen.cpu.program import PRELUDE  # noqa: E402
from leptonc.runtime.executor import load_blas  # noqa: E402

SHAPES = [  # (model, layer, M, N, K)
    ("mlp", "fc1", 64, 2048, 512), ("mlp", "fc2", 64, 2048, 2048), ("mlp", "fc3", 64, 512, 2048),
    ("bert", "qkv/out", 128, 768, 768), ("bert", "ffn up", 128, 3072, 768), ("bert", "ffn down", 128, 768, 3072),
    ("vit", "qkv/out", 197, 768, 768), ("vit", "ffn up", 197, 3072, 768), ("vit", "ffn down", 197, 768, 3072),
    ("gpt2", "c_attn", 64, 2304, 768), ("gpt2", "c_proj", 64, 768, 768), ("gpt2", "c_fc", 64, 3072, 768),
    ("gpt2", "mlp c_proj", 64, 768, 3072),
]
COLD_BYTES = 96 << 20  # weights of each shape: three times the L3 cache of the machine this was tuned on
CALL_FLOPS = 8e9       # work of one timed call (tens of ms)

HARNESS = r"""
void bench_threads(int n) { omp_set_num_threads(n); }
/* C_i = A @ B_i for i < n, back to back (the layers of a model: each weight read from memory once) */
void bench_gemm(int64_t M, int64_t N, int64_t K, const float* A, const float* const* Bp, float* const* C, int n) {
    for (int i = 0; i < n; ++i) lep_gemm_packed(M, N, K, A, K, Bp[i], C[i], N, NULL, NULL);
}
void bench_sgemm(int64_t M, int64_t N, int64_t K, const float* A, const float* const* B, float* const* C, int n) {
    for (int i = 0; i < n; ++i) lep_sgemm(0, 0, M, N, K, A, K, B[i], N, C[i], N);
}
/* independent FMA chains on every thread; returns FLOPs done */
double bench_peak(int64_t iters) {
    double flops = 0;
    #pragma omp parallel reduction(+:flops)
    {
#if defined(__AVX512F__)
        __m512 c[12];
        for (int i = 0; i < 12; ++i) c[i] = _mm512_set1_ps(1e-3f * (float)i);
        const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
        for (int64_t it = 0; it < iters; ++it)
            for (int i = 0; i < 12; ++i) c[i] = _mm512_fmadd_ps(c[i], x, y);
        for (int i = 1; i < 12; ++i) c[0] = _mm512_add_ps(c[0], c[i]);
        flops = 12.0 * 32.0 * (double)iters + 0.0 * (double)_mm512_reduce_add_ps(c[0]);
#elif defined(__AVX2__) && defined(__FMA__)
        __m256 c[12];
        for (int i = 0; i < 12; ++i) c[i] = _mm256_set1_ps(1e-3f * (float)i);
        const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
        for (int64_t it = 0; it < iters; ++it)
            for (int i = 0; i < 12; ++i) c[i] = _mm256_fmadd_ps(c[i], x, y);
        float s[8];
        for (int i = 1; i < 12; ++i) c[0] = _mm256_add_ps(c[0], c[i]);
        _mm256_storeu_ps(s, c[0]);
        flops = 12.0 * 16.0 * (double)iters + 0.0 * (double)s[0];
#else
        float c[64];
        for (int i = 0; i < 64; ++i) c[i] = 1e-3f * (float)i;
        for (int64_t it = 0; it < iters; ++it)
            #pragma omp simd
            for (int i = 0; i < 64; ++i) c[i] = c[i] * 0.999999f + 1e-7f;
        flops = 128.0 * (double)iters + 0.0 * (double)c[7];
#endif
    }
    return flops;
}
/* STREAM-like read of n floats (a multiple of 64) on every thread; returns their sum */
float bench_read(const float* a, int64_t n) {
    float total = 0;
    #pragma omp parallel reduction(+:total)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        const int64_t lo = n / 64 * t / T * 64, hi = n / 64 * (t + 1) / T * 64;
        float acc[64] = {0};
        for (int64_t i = lo; i < hi; i += 64)
            #pragma omp simd
            for (int j = 0; j < 64; ++j) acc[j] += a[i + j];
        for (int j = 0; j < 64; ++j) total += acc[j];
    }
    return total;
}
"""


def load_harness(threads: int):
    load_blas()
    path, _ = build_library(PRELUDE + GEMM_SOURCE + HARNESS)
    lib = ctypes.CDLL(str(path))
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    lib.bench_gemm.argtypes = [i64, i64, i64, ptr, ptr, ptr, ctypes.c_int]
    lib.bench_sgemm.argtypes = [i64, i64, i64, ptr, ptr, ptr, ctypes.c_int]
    lib.bench_peak.argtypes, lib.bench_peak.restype = [i64], ctypes.c_double
    lib.bench_read.argtypes, lib.bench_read.restype = [ptr, i64], ctypes.c_float
    lib.bench_threads.argtypes = [ctypes.c_int]
    lib.bench_threads(threads)
    return lib


def measure_peak(lib, repeats: int = 5) -> float:
    """GFLOP/s: best of `repeats` runs of the FMA loop (about 0.2 s each)."""
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        flops = lib.bench_peak(20_000_000)
        best = max(best, flops / (time.perf_counter() - t0) / 1e9)
    return best


def ort_matmuls(Bs: list[np.ndarray], M: int, threads: int):
    """A zero-argument function running ONNX Runtime on one model of len(Bs) MatMul nodes x @ B_i (the same
    input, the weights initializers), run one after another on one thread pool, as a model's layers run."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    K, N = Bs[0].shape
    distinct = {id(B): f"w{i}" for i, B in enumerate(Bs)}
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", distinct[id(B)]], [f"y{i}"]) for i, B in enumerate(Bs)], "matmuls",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [M, K])],
        [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, [M, N]) for i in range(len(Bs))],
        [numpy_helper.from_array(B, distinct[id(B)]) for B in {id(B): B for B in Bs}.values()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = os.path.join(tempfile.mkdtemp(prefix="leptonc-gemm-"), "matmuls.onnx")
    onnx.save(model, path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((M, K)).astype(np.float32)
    binding = session.io_binding()
    binding.bind_cpu_input("x", x)
    ys = [np.empty((M, N), np.float32) for _ in Bs]
    for i, y in enumerate(ys):
        binding.bind_output(f"y{i}", "cpu", element_type=np.float32, shape=y.shape, buffer_ptr=y.ctypes.data)
    return lambda x=x, ys=ys: session.run_with_iobinding(binding)  # x, ys live as long as the binding is used


def timed_in_turns(systems: dict, runs: int, warmup: int = 2, pause: float = 0.1) -> dict[str, float]:
    """Median seconds per call of each zero-argument function, one call of each per round, so that the load of
    a shared machine falls on all alike. A pause before each call lets the threads that the previous system
    leaves spinning (ONNX Runtime's for tens of ms, OpenMP's) go to sleep."""
    times = {name: [] for name in systems}
    for r in range(runs + warmup):
        for name, fn in systems.items():
            time.sleep(pause)
            t0 = time.perf_counter()
            fn()
            if r >= warmup:
                times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(t)) for name, t in times.items()}


def _pointers(arrays) -> ctypes.Array:
    return (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])


def bench_shape(lib, M: int, N: int, K: int, threads: int, runs: int, hot: bool) -> dict[str, float]:
    """GFLOP/s of each system on C[M, N] = A[M, K] @ B[K, N], over copies of the weight in turn (96 MB of them:
    from memory) or one weight (--hot: from the caches), each call long; checks ours against OpenBLAS."""
    rng = np.random.default_rng(0)
    copies = -(-COLD_BYTES // (K * N * 4))
    copies *= max(1, round(CALL_FLOPS / (2.0 * M * N * K * copies)))  # calls long enough to hide clock ramps
    one = rng.standard_normal((K, N)).astype(np.float32)
    distinct = [one] if hot else [one.copy() for _ in range(-(-COLD_BYTES // (K * N * 4)))]
    Bs = [distinct[i % len(distinct)] for i in range(copies)]
    packed = {id(B): pack_b(B) for B in Bs}
    Ps = [packed[id(B)] for B in Bs]
    A = rng.standard_normal((M, K)).astype(np.float32)
    Cs = [np.empty((M, N), np.float32) for _ in Bs]
    Rs = [np.empty((M, N), np.float32) for _ in Bs]
    ptr = {"A": A.ctypes.data, "B": _pointers(Bs), "P": _pointers(Ps), "C": _pointers(Cs), "R": _pointers(Rs)}
    lib.bench_gemm(M, N, K, ptr["A"], ptr["P"], ptr["C"], 1)
    lib.bench_sgemm(M, N, K, ptr["A"], ptr["B"], ptr["R"], 1)
    err = float(np.abs(Cs[0] - Rs[0]).max())
    assert err <= 1e-4 * max(1.0, float(np.abs(Rs[0]).max())), f"GEMM {M}x{N}x{K} differs from OpenBLAS by {err}"
    systems = {"leptonc": lambda: lib.bench_gemm(M, N, K, ptr["A"], ptr["P"], ptr["C"], copies),
               "openblas": lambda: lib.bench_sgemm(M, N, K, ptr["A"], ptr["B"], ptr["R"], copies),
               "onnxruntime": ort_matmuls(Bs, M, threads)}
    seconds = timed_in_turns(systems, runs)
    return {name: 2.0 * M * N * K * copies / s / 1e9 for name, s in seconds.items()}


def bench_gemv(lib, runs: int) -> tuple[float, float]:
    """(GB/s of the GEMV chain, GB/s of a STREAM-like read of as many bytes), medians taken in turns."""
    rng = np.random.default_rng(0)
    weights = [pack_b(rng.standard_normal((4096, 4096)).astype(np.float32) * 0.01) for _ in range(4)]
    x, y = rng.standard_normal((1, 4096)).astype(np.float32), np.empty((1, 4096), np.float32)
    flat = np.ones(4 * 4096 * 4096, np.float32)

    def chain():
        a, b = x, y
        for w in weights:
            lib.bench_gemm(1, 4096, 4096, a.ctypes.data, _pointers([w]), _pointers([b]), 1)
            a, b = b, a

    seconds = timed_in_turns({"gemv": chain, "read": lambda: lib.bench_read(flat.ctypes.data, flat.size)}, runs,
                             pause=0.0)
    nbytes = 4 * 4096 * 4096 * 4
    return nbytes / seconds["gemv"] / 1e9, nbytes / seconds["read"] / 1e9


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--hot", action="store_true", help="one weight for all the products: from the caches")
    args = p.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    lib = load_harness(args.threads)
    peak = measure_peak(lib)
    lines = [f"# fp32 GEMM, {args.threads} threads, weights {'in cache' if args.hot else 'from memory'}", "",
             f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}", f"- cpu: {cpu_name()}",
             f"- measured peak (FMA loop): {peak:.1f} GFLOP/s", "",
             "| model | layer | M | N | K | leptonc GFLOP/s | % peak | OpenBLAS | ONNX Runtime | leptonc / ORT |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    logs = {"leptonc": [], "openblas": [], "onnxruntime": []}
    for model, layer, M, N, K in SHAPES:
        r = bench_shape(lib, M, N, K, args.threads, args.runs, args.hot)
        for name in logs:
            logs[name].append(np.log(r[name]))
        lines.append(f"| {model} | {layer} | {M} | {N} | {K} | {r['leptonc']:.1f} | {100 * r['leptonc'] / peak:.0f}% "
                     f"| {r['openblas']:.1f} | {r['onnxruntime']:.1f} | {r['leptonc'] / r['onnxruntime']:.2f}x |")
        print(lines[-1], flush=True)
    geo = {name: float(np.exp(np.mean(v))) for name, v in logs.items()}
    lines.append(f"| geomean | | | | | {geo['leptonc']:.1f} | {100 * geo['leptonc'] / peak:.0f}% | "
                 f"{geo['openblas']:.1f} | {geo['onnxruntime']:.1f} | {geo['leptonc'] / geo['onnxruntime']:.2f}x |")
    gemv, read = bench_gemv(lib, max(10, args.runs // 3))
    lines += ["", f"GEMV chain 4 x Linear(4096, 4096), batch 1: {gemv:.1f} GB/s of weights; STREAM-like read of as "
              f"many bytes: {read:.1f} GB/s ({100 * gemv / read:.0f}%)"]
    text = "\n".join(lines) + "\n"
    print(text)
    cpu = "".join(c if c.isalnum() else "-" for c in cpu_name()).strip("-").lower()[:40]
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                       f"{datetime.date.today().isoformat()}-gemm-{cpu}.md")
    with open(out, "w") as f:
        f.write(text)
    print("written to", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
