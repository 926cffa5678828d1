"""The quantized kernels on each instruction set they have a path for: AVX-512 (VNNI where the CPU has it),
AVX2 and plain C, built from quantized.c with the matching -march and run on weights laid out as the
compiler lays them out, against the reference implementations of the ops."""
from __future__ import annotations

import ctypes
import platform
import subprocess

import numpy as np
import pytest

from leptonc.codegen.cpu.build import cpu_features, find_compiler
from leptonc.codegen.cpu.quantized import QUANTIZED_SOURCE, lay_out_i4, lay_out_i8, lay_out_scale
from leptonc.ir import DType
from leptonc.ir.ops.quant import matmul_w8a8, matmul_wq
from leptonc.passes.quantize import quantize_weight

HARNESS = """
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <omp.h>
""" + QUANTIZED_SOURCE + """
void wq8(const float* x, const void* w, const float* s, int64_t M, int64_t N, int64_t K, int64_t G, float* y,
         void* scratch)
{ lep_matmul_wq8(x, w, s, M, N, K, G, y, scratch, NULL, NULL); }
void wq4(const float* x, const void* w, const float* s, int64_t M, int64_t N, int64_t K, int64_t G, float* y,
         void* scratch)
{ lep_matmul_wq4(x, w, s, M, N, K, G, y, scratch, NULL, NULL); }
void w8a8(const float* x, const void* w, const float* s, int64_t M, int64_t N, int64_t K, float* y, void* scratch)
{ lep_matmul_w8a8(x, w, s, M, N, K, y, scratch, NULL, NULL); }
"""

# -march per path; a path runs only where this CPU can execute its instructions
ISAS = {"native": ("-march=native", ()), "avx2": ("-march=haswell", ("avx2", "fma")), "plain": ("-march=x86-64", ())}

pytestmark = pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or find_compiler() is None,
                                reason="needs an x86-64 C compiler")

_libs: dict[str, ctypes.CDLL] = {}


def library(isa: str, tmp_path_factory) -> ctypes.CDLL:
    march, needs = ISAS[isa]
    if any(f not in cpu_features() for f in needs):
        pytest.skip(f"this CPU lacks {needs}")
    if isa not in _libs:
        folder = tmp_path_factory.mktemp(f"isa-{isa}")
        src, lib = folder / "q.c", folder / "q.so"
        src.write_text(HARNESS)
        subprocess.run([find_compiler(), "-O3", march, "-fopenmp", "-fPIC", "-shared", "-std=gnu11",
                        "-Wno-unused-function", str(src), "-o", str(lib), "-lm"], check=True)
        _libs[isa] = ctypes.CDLL(str(lib))
    return _libs[isa]


def _ptr(a: np.ndarray):
    return a.ctypes.data_as(ctypes.c_void_p)


def _i64(*values):
    return [ctypes.c_int64(v) for v in values]


SHAPES = [(1, 37, 20), (3, 64, 128), (7, 96, 100), (1, 4, 300), (2, 17, 33), (1, 64, 512)]  # (M, N, K)


def run_weight_only(lib, bits: int, x: np.ndarray, q: np.ndarray, scale: np.ndarray, group: int) -> np.ndarray:
    m, k = x.shape
    n = q.shape[0]
    laid = lay_out_i8(q, group) if bits == 8 else lay_out_i4(q)
    groups = -(-k // group) if group else 1
    scratch = np.zeros(m * (4 + 12 * groups + -(-k // 8) * 24), np.uint8)
    y = np.full((m, n), np.nan, np.float32)
    getattr(lib, f"wq{bits}")(_ptr(x), _ptr(laid), _ptr(lay_out_scale(scale)), *_i64(m, n, k, group or k), _ptr(y),
                              _ptr(scratch))
    return y


@pytest.mark.parametrize("isa", list(ISAS))
@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("group", [0, 4, 32, 10])
def test_weight_only(isa, bits, shape, group, tmp_path_factory):
    """Groups on whole steps take the fixed-point path where the CPU has VNNI; groups of 4 and 10 (int4) and
    of 10 (int8) cut steps and take the float path."""
    m, n, k = shape
    if group and k % group:
        pytest.skip("K is not a multiple of the group")
    lib = library(isa, tmp_path_factory)
    rng = np.random.default_rng(m * n + k + group)
    q, scale = quantize_weight(rng.standard_normal((n, k)).astype(np.float32), DType.i8 if bits == 8 else DType.i4,
                               group)
    x = rng.standard_normal((m, k)).astype(np.float32)
    x[0, ::3] *= 1e-3  # small and large values in one row: the fixed-point digits keep both
    want = matmul_wq(x, q, scale, group=group)
    y = run_weight_only(lib, bits, x, q, scale, group)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(want).max())))


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("special", [np.inf, np.nan, 0.0, 1e-35])
def test_weight_only_special_rows(bits, special, tmp_path_factory):
    """A row with inf or NaN (the float path), all zeros, or tiny values gives what the reference gives."""
    lib = library("native", tmp_path_factory)
    rng = np.random.default_rng(7)
    q, scale = quantize_weight(rng.standard_normal((40, 64)).astype(np.float32), DType.i8 if bits == 8 else DType.i4,
                               32)
    x = rng.standard_normal((3, 64)).astype(np.float32)
    x[1] = special if special in (0.0, 1e-35) else x[1]
    x[1, 5] = special
    with np.errstate(invalid="ignore"):  # inf * 0 in the reference
        want = matmul_wq(x, q, scale, group=32)
    y = run_weight_only(lib, bits, x, q, scale, 32)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want))
    finite = np.isfinite(want)
    np.testing.assert_array_equal(y[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)])
    np.testing.assert_allclose(y[finite], want[finite], rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(want[finite]).max())))


@pytest.mark.parametrize("isa", list(ISAS))
@pytest.mark.parametrize("shape", SHAPES + [(13, 70, 131)])
def test_w8a8_is_exact(isa, shape, tmp_path_factory):
    """int32 sums are exact on every path, and the rescaling rounds as the reference does."""
    m, n, k = shape
    lib = library(isa, tmp_path_factory)
    rng = np.random.default_rng(m + n + k)
    q, scale = quantize_weight(rng.standard_normal((n, k)).astype(np.float32), DType.i8)
    x = (rng.standard_normal((m, k)) * 3).astype(np.float32)
    x[0, : k // 2] = 0.0  # rows and runs of zeros too
    if m > 1:
        x[1] = 0.0
    laid, scales = lay_out_i8(q, 0), lay_out_scale(scale)
    scratch = np.zeros(m * (4 * -(-k // 4) + 4), np.uint8)
    y = np.full((m, n), np.nan, np.float32)
    lib.w8a8(_ptr(x), _ptr(laid), _ptr(scales), *_i64(m, n, k), _ptr(y), _ptr(scratch))
    np.testing.assert_array_equal(y, matmul_w8a8(x, q, scale))


def test_extreme_weights_do_not_saturate(tmp_path_factory):
    """w = +-127 against x at the ends of its range: the pair sums of vpmaddubsw stay below 2^15."""
    for isa in ISAS:
        lib = library(isa, tmp_path_factory)
        k, n = 64, 16
        q = np.where(np.arange(n * k).reshape(n, k) % 3 == 0, -127, 127).astype(np.int8)
        scale = np.ones(n, np.float32)
        x = np.where(np.arange(2 * k).reshape(2, k) % 2 == 0, 1.0, -1.0).astype(np.float32)
        y = np.zeros((2, n), np.float32)
        scratch = np.zeros(2 * (k + 4), np.uint8)
        lib.w8a8(_ptr(x), _ptr(lay_out_i8(q, 0)), _ptr(lay_out_scale(scale)), *_i64(2, n, k), _ptr(y), _ptr(scratch))
        np.testing.assert_array_equal(y, matmul_w8a8(x, q, scale), err_msg=isa)


@pytest.mark.parametrize("isa, feature, instruction", [("native", "avx512_vnni", "vpdpbusd"),
                                                        ("avx2", "avx2", "vpmaddubsw"),
                                                        ("native", "avx512f", "vpermps")])
def test_paths_use_their_instructions(isa, feature, instruction, tmp_path_factory):
    """The W8A8 path is VNNI's vpdpbusd (or AVX2's vpmaddubsw); int4 weights widen by a vpermps lookup."""
    import shutil

    if feature not in cpu_features() or shutil.which("objdump") is None:
        pytest.skip(f"needs {feature} and objdump")
    lib = library(isa, tmp_path_factory)
    text = subprocess.run(["objdump", "-d", lib._name], capture_output=True, text=True, check=True).stdout
    assert instruction in text
