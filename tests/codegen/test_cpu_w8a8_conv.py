"""The static W8A8 kernels (qlinear_conv, qlinear_matmul) against the reference ops, bit for bit: on each
instruction set they have a path for (AVX-512 VNNI where the CPU has it, AVX2, plain C), built from
quantized.c with the matching -march on weights laid out as the compiler lays them out, over odd shapes,
groups, strides, padding and dilation, with any int8 weights and with weights in [-64, 64] (the AVX2 path that
sums pairs of products in int16, at its bounds: x 255 by w -64 or 64); and through leptonc.compile on the cpu
target."""
from __future__ import annotations

import ctypes
import platform
import subprocess

import numpy as np
import pytest

import leptonc
from leptonc.codegen.cpu.build import cpu_features, find_compiler
from leptonc.codegen.cpu.quantized import QUANTIZED_SOURCE, lay_out_conv, lay_out_i8
from leptonc.ir import DType, Graph, TensorType
from leptonc.ir.errors import LeptoncError
from leptonc.ir.ops.qlinear import qlinear_conv, qlinear_matmul
from tests.codegen.cpu_check import compile_and_check

HARNESS = "#include <math.h>\n#include <stdint.h>\n#include <string.h>\n#include <omp.h>\n" + QUANTIZED_SOURCE + """
void qconv(const uint8_t* x, const float* xs, const uint8_t* xz, const void* w, const float* ws, const int32_t* bias,
           const float* ys, const uint8_t* yz, void* y, int64_t B, int64_t H, int64_t W, int64_t C, int64_t OH,
           int64_t OW, int64_t O, int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t dh, int64_t dw, int64_t ph,
           int64_t pw, int64_t G, int pairs, uint8_t* scratch)
{ lep_qlinear_conv(x, xs, xz, w, ws, bias, ys, yz, y, B, H, W, C, OH, OW, O, KH, KW, sh, sw, dh, dw, ph, pw, G,
                   pairs, scratch); }
void qmatmul(const uint8_t* x, const float* xs, const uint8_t* xz, const void* w, const float* ws,
             const int32_t* bias, const float* ys, const uint8_t* yz, void* y, int64_t M, int64_t N, int64_t K,
             int pairs, void* scratch)
{ lep_qlinear_matmul(x, xs, xz, w, ws, bias, ys, yz, y, M, N, K, pairs, scratch); }
"""

ISAS = {"native": ("-march=native", ()), "avx2": ("-march=haswell", ("avx2", "fma")), "plain": ("-march=x86-64", ())}

pytestmark = pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or find_compiler() is None,
                                reason="needs an x86-64 C compiler")

_libs: dict[str, ctypes.CDLL] = {}


@pytest.fixture(params=list(ISAS))
def lib(request, tmp_path_factory) -> ctypes.CDLL:
    march, needs = ISAS[request.param]
    if any(f not in cpu_features() for f in needs):
        pytest.skip(f"this CPU lacks {needs}")
    if request.param not in _libs:
        folder = tmp_path_factory.mktemp(f"w8a8-{request.param}")
        src, so = folder / "q.c", folder / "q.so"
        src.write_text(HARNESS)
        subprocess.run([find_compiler(), "-O3", march, "-fopenmp", "-fPIC", "-shared", "-std=gnu11",
                        "-fno-math-errno", "-fno-trapping-math", "-Wno-unused-function", "-Wno-psabi", str(src),
                        "-o", str(so), "-lm"], check=True)
        _libs[request.param] = ctypes.CDLL(str(so))
    return _libs[request.param]


def _p(a: np.ndarray):
    return a.ctypes.data_as(ctypes.c_void_p)


def _i64(*values):
    return [ctypes.c_int64(int(v)) for v in values]


def _params(rng, o: int, f32_result: np.ndarray | None):
    """x scale and zero point, w scale [o], bias [o]; y scale and zero point spread over f32_result's range."""
    xs, xz = np.array(0.02, np.float32), np.array(rng.integers(0, 256), np.uint8)
    ws = rng.uniform(0.001, 0.01, o).astype(np.float32)
    bias = rng.integers(-3000, 3000, o).astype(np.int32)
    if f32_result is None:
        return xs, xz, ws, bias
    lo, hi = min(float(f32_result.min()), 0.0), max(float(f32_result.max()), 0.0)
    ys = np.array((hi - lo) / 255 * 0.8, np.float32)  # a little clipping at both ends too
    return ys, np.array(np.clip(np.rint(-lo / ys), 0, 255), np.uint8)


# (batch, channels, height, width, outputs, kernel, strides, pads [top, left, bottom, right], dilations, group)
CONVS = [
    (2, 3, 7, 5, 5, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    (1, 6, 9, 8, 9, (3, 2), (2, 1), (0, 1, 2, 0), (1, 2), 3),
    (1, 20, 5, 5, 70, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),      # 1x1: reads x as it is; 2 units of panels
    (2, 6, 4, 5, 10, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),       # the same, rows of x ending mid-step
    (3, 8, 6, 6, 8, (3, 3), (2, 2), (1, 1, 1, 1), (2, 2), 8),        # depthwise
    (1, 5, 4, 7, 17, (2, 2), (1, 2), (1, 0, 0, 1), (1, 1), 1),       # K = 20: whole steps; 17 outputs
    (1, 1, 8, 8, 16, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),       # one input channel: K = 9
    (3, 16, 8, 8, 32, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),      # 192 windows: several chunks of rows
    (2, 4, 9, 7, 12, (3, 3), (2, 1), (1, 0, 2, 1), (2, 1), 1),       # kernel rows of 12 bytes: read in place
    (1, 8, 6, 9, 20, (2, 2), (1, 2), (0, 1, 1, 0), (1, 1), 1),       # the same, strided columns
]


def _weights(rng, shape, pairs: bool) -> np.ndarray:
    """int8 weights: any (pairs False), or in [-64, 64] with output 0 all at -64 and output 1 at 64 (pairs
    True: the pair sums' bounds where x is 255)."""
    if not pairs:
        return rng.integers(-127, 128, shape).astype(np.int8)
    w = rng.integers(-64, 65, shape).astype(np.int8)
    w[0], w[1 % shape[0]] = -64, 64
    return w


def _conv_case(case, seed: int = 0, pairs: bool = False):
    b, c, h, w, o, kernel, strides, pads, dilations, group = case
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (b, h, w, c)).astype(np.uint8)  # channels-last
    if pairs:  # the extremes too: a row of 255s by the weight bounds
        x[0, 0] = 255
    wq = _weights(rng, (o, c // group, *kernel), pairs)
    attrs = dict(strides=strides, pads=pads, dilations=dilations, group=group, channels_last=True)
    xs, xz, ws, bias = _params(rng, o, None)
    f32 = qlinear_conv(x, xs, xz, wq, ws, bias, **attrs)
    return (x, xs, xz, wq, ws, bias, *_params(rng, o, f32)), attrs, f32


def _run_conv(lib, operands, attrs, u8: bool, pairs: bool = False) -> np.ndarray:
    x, xs, xz, wq, ws, bias, ys, yz = operands
    b, h, w, c = x.shape
    o, _, kh, kw = wq.shape
    ref = qlinear_conv(*operands[:6], *((ys, yz) if u8 else ()), **attrs)
    _, oh, ow, _ = ref.shape
    channels = attrs["group"] * -(-(o // attrs["group"]) // 16) * 16 * 8  # each group's off and mul
    pads = attrs["pads"]  # then the gathered windows, or x padded
    rows = max(b * oh * ow * kh * -(-(kw * c // attrs["group"]) // 4) * 4,
               b * (h + pads[0] + pads[2]) * (w + pads[1] + pads[3]) * c + 4)
    scratch = np.full(channels + rows, 0xA5, np.uint8)  # as an arena: not zeros
    y = np.zeros(ref.shape, ref.dtype)
    laid = lay_out_conv(wq, attrs["group"])
    (sh, sw), (dh, dw), pads = attrs["strides"], attrs["dilations"], attrs["pads"]
    lib.qconv(_p(x), _p(xs), _p(xz), _p(laid), _p(ws), _p(bias), _p(ys) if u8 else None,
                         _p(yz) if u8 else None, _p(y), *_i64(b, h, w, c, oh, ow, o, kh, kw, sh, sw, dh, dw,
                                                               pads[0], pads[1], attrs["group"]),
              ctypes.c_int(pairs), _p(scratch))
    return y, ref


@pytest.mark.parametrize("pairs", [False, True], ids=["any-weights", "weights-64"])
@pytest.mark.parametrize("case", CONVS, ids=lambda c: f"{c[1]}x{c[2]}x{c[3]}-o{c[4]}-k{c[5]}-s{c[6]}-g{c[9]}")
def test_qlinear_conv_kernel_matches_the_reference(lib, case, pairs):
    operands, attrs, f32 = _conv_case(case, pairs=pairs)
    for u8 in (True, False):
        y, ref = _run_conv(lib, operands, attrs, u8, pairs)
        np.testing.assert_array_equal(y, ref)
    assert len(np.unique(_run_conv(lib, operands, attrs, True, pairs)[0])) > 50  # the results spread out


@pytest.mark.parametrize("pairs", [False, True], ids=["any-weights", "weights-64"])
@pytest.mark.parametrize("m,k,n", [(7, 13, 33), (1, 4, 16), (5, 300, 70), (3, 1, 5), (61, 9, 20)])
def test_qlinear_matmul_kernel_matches_the_reference(lib, m, k, n, pairs):
    rng = np.random.default_rng(m * k * n)
    x = rng.integers(0, 256, (m, k)).astype(np.uint8)
    x[0] = 255
    wq = rng.integers(-128, 128, (n, k)).astype(np.int8) if not pairs else _weights(rng, (n, k), True)
    xs, xz, ws, bias = _params(rng, n, None)
    f32 = qlinear_matmul(x, xs, xz, wq, ws, bias)
    ys, yz = _params(rng, n, f32)
    laid = lay_out_i8(wq, 0)
    for y_params in ((ys, yz), ()):
        ref = qlinear_matmul(x, xs, xz, wq, ws, bias, *y_params)
        y = np.zeros(ref.shape, ref.dtype)
        lib.qmatmul(_p(x), _p(xs), _p(xz), _p(laid), _p(ws), _p(bias),
                   *((_p(ys), _p(yz)) if y_params else (None, None)), _p(y), *_i64(m, n, k),
                   ctypes.c_int(pairs), _p(np.zeros(-(-n // 16) * 16 * 8, np.uint8)))
        np.testing.assert_array_equal(y, ref)


def _qlinear_graph() -> tuple[Graph, list[np.ndarray]]:
    """Channels-first qlinear convs (grouped, strided, padded, dilated; u8 and f32 results) and a rank-3
    qlinear_matmul side by side, their operands constants, as the quantize pass leaves them."""
    g = Graph("qlinear")
    inputs, outs = [], []
    for i, case in enumerate(CONVS[:2] + CONVS[3:4]):
        operands, attrs, _ = _conv_case(case, seed=i)
        x = np.ascontiguousarray(np.transpose(operands[0], (0, 3, 1, 2)))
        xv = g.add_input(f"x{i}", TensorType(DType.u8, x.shape))
        consts = [g.add_constant(a, f"c{i}_{j}") for j, a in enumerate(operands[1:])]
        attrs = {**attrs, "channels_last": False}
        outs.append(g.add("qlinear_conv", xv, *consts, **attrs))              # u8 result
        outs.append(g.add("qlinear_conv", xv, *consts[:5], **attrs))          # f32 result
        inputs.append(x)
    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, (2, 3, 10)).astype(np.uint8)
    xs, xz, ws, bias = _params(rng, 6, None)
    ys, yz = np.array(0.5, np.float32), np.array(9, np.uint8)
    xv = g.add_input("xm", TensorType(DType.u8, x.shape))
    wq = rng.integers(-127, 128, (6, 10)).astype(np.int8)
    consts = [g.add_constant(a, f"m{j}") for j, a in enumerate((xs, xz, wq, ws, bias, ys, yz))]
    outs.append(g.add("qlinear_matmul", xv, *consts))
    inputs.append(x)
    g.set_outputs(outs)
    return g, inputs


def test_qlinear_ops_compile_for_the_cpu_target_bit_exactly():
    graph, inputs = _qlinear_graph()
    compile_and_check(graph, inputs)


def test_sums_that_could_leave_int32_are_a_clear_error():
    g = Graph("big_bias")
    x = g.add_input("x", TensorType(DType.u8, (1, 8)))
    consts = [g.add_constant(a, f"c{j}") for j, a in enumerate((
        np.array(0.1, np.float32), np.array(0, np.uint8), np.ones((4, 8), np.int8), np.ones(4, np.float32),
        np.full(4, 2**31 - 10, np.int32)))]
    g.set_outputs([g.add("qlinear_matmul", x, *consts)])
    with pytest.raises(LeptoncError, match="int32"):
        leptonc.compile(g, quiet=True)
