"""C bodies of dft and stft (ONNX layout: a last dim of 1 for real values, 2 for complex ones).

Both are direct sums in double over a table of the length's twiddles, cos and sin of 2 pi m / L for m < L
(the phase j * k is reduced mod L first, so that it stays exact): O(L^2) per transform, which the sizes of
audio frames and the ONNX cases afford, as accurate as the reference's double FFT. One task per output
line. dft along any axis but the last: zero-padded or truncated to its length; inverse divides by it;
onesided keeps the first L / 2 + 1 frequencies, and inverse reads them as a Hermitian spectrum to a real
signal (numpy's irfft: the imaginary parts of the zero and Nyquist frequencies do not count).
"""
from __future__ import annotations

from ...ir.dtypes import DType
from ...ir.graph import Node
from .cexpr import UnsupportedError, cnumel, ctype
from .kernels import KernelContext

# the twiddles of length L in a scratch table tw[2 * L]: cos, sin of 2 pi m / L
_TWIDDLES = ["double* tw = (double*)lep_scratch((size_t)(2 * L) * sizeof(double));",
             "for (int64_t m = 0; m < L; ++m) {",
             "  const double a = 6.283185307179586476925 * (double)m / (double)L;",
             "  tw[2 * m] = cos(a); tw[2 * m + 1] = sin(a);",
             "}"]


def _float_only(ctx: KernelContext, node: Node) -> None:
    if node.outputs[0].dtype not in (DType.f32, DType.f64):
        raise UnsupportedError(f"{ctx.where}: {node.op} over {node.outputs[0].dtype} is not supported by the cpu "
                               "target (f32 and f64 are)")


def emit_dft(ctx: KernelContext, node: Node) -> list[str]:
    _float_only(ctx, node)
    x, y = node.inputs[0], node.outputs[0]
    axis = node.attrs["axis"] % (x.type.rank - 1)
    inverse, onesided = node.attrs["inverse"], node.attrs["onesided"]
    length = node.attrs["length"]
    if length <= 0:
        length = f"2 * ({ctx.d(x.shape[axis])} - 1)" if inverse and onesided else ctx.d(x.shape[axis])
    t = ctype(y.dtype, ctx.where)
    xp, yp = ctx.ptr(x), ctx.ptr(y)
    lines = [f"const int64_t OUTER = {cnumel(x.shape[:axis], ctx.where)}, N = {ctx.d(x.shape[axis])}, "
             f"INNER = {cnumel(x.shape[axis + 1:-1], ctx.where)}, CX = {ctx.d(x.shape[-1])}, "
             f"K = {ctx.d(y.shape[axis])}, CY = {ctx.d(y.shape[-1])}, L = {length};",
             *_TWIDDLES,
             "#pragma omp parallel for schedule(static) if (OUTER * INNER * K * N > 16384)",
             "for (int64_t line = 0; line < OUTER * K * INNER; ++line) {",
             "  const int64_t o = line / (K * INNER), k = line / INNER % K, i = line % INNER;",
             f"  const {t}* xl = {xp} + (o * N * INNER + i) * CX;",
             "  double re = 0, im = 0;"]
    if inverse and onesided:   # a real signal from the first L / 2 + 1 frequencies, extended as Hermitian
        lines += ["  for (int64_t f = 0; f < L; ++f) {",
                  "    const int64_t src = f <= L / 2 ? f : L - f;",
                  "    if (src >= N) continue;",
                  "    const double zr = (double)xl[src * INNER * CX], "
                  "zi = CX == 2 ? (f <= L / 2 ? 1.0 : -1.0) * (double)xl[src * INNER * CX + 1] : 0.0;",
                  "    const int64_t m = (f * k) % L;",
                  "    re += zr * tw[2 * m] - zi * tw[2 * m + 1];",
                  "  }"]
    else:
        sign = "" if inverse else "-"
        lines += ["  for (int64_t j = 0; j < (N < L ? N : L); ++j) {",
                  "    const double zr = (double)xl[j * INNER * CX], "
                  "zi = CX == 2 ? (double)xl[j * INNER * CX + 1] : 0.0;",
                  "    const int64_t m = (j * k) % L;",
                  f"    const double c = tw[2 * m], s = {sign}tw[2 * m + 1];",
                  "    re += zr * c - zi * s; im += zr * s + zi * c;",
                  "  }"]
    scale = "1.0 / (double)L" if inverse else "1.0"
    lines += [f"  {t}* yl = {yp} + ((o * K + k) * INNER + i) * CY;",
              f"  yl[0] = ({t})(re * {scale});",
              f"  if (CY == 2) yl[1] = ({t})(im * {scale});",
              "}",
              "free(tw);"]
    return lines


def emit_stft(ctx: KernelContext, node: Node) -> list[str]:
    _float_only(ctx, node)
    x, y = node.inputs[0], node.outputs[0]
    window = node.inputs[1] if len(node.inputs) > 1 else None
    length = node.attrs["length"] if node.attrs["length"] > 0 else ctx.d(window.shape[0])
    t = ctype(y.dtype, ctx.where)
    weight = f"(double){ctx.ptr(window)}[j]" if window is not None else "1.0"
    return [f"const int64_t NB = {ctx.d(x.shape[0])}, N = {ctx.d(x.shape[1])}, CX = {ctx.d(x.shape[2])}, "
            f"F = {ctx.d(y.shape[1])}, K = {ctx.d(y.shape[2])}, L = {length}, STEP = {node.attrs['step']};",
            "(void)N;",
            *_TWIDDLES,
            "#pragma omp parallel for schedule(static) if (NB * F * K * L > 16384)",
            "for (int64_t line = 0; line < NB * F * K; ++line) {",
            "  const int64_t b = line / (F * K), f = line / K % F, k = line % K;",
            f"  const {t}* xl = {ctx.ptr(x)} + (b * N + f * STEP) * CX;",
            "  double re = 0, im = 0;",
            "  for (int64_t j = 0; j < L; ++j) {",
            f"    const double w = {weight}, zr = w * (double)xl[j * CX], "
            "zi = CX == 2 ? w * (double)xl[j * CX + 1] : 0.0;",
            "    const int64_t m = (j * k) % L;",
            "    const double c = tw[2 * m], s = -tw[2 * m + 1];",
            "    re += zr * c - zi * s; im += zr * s + zi * c;",
            "  }",
            f"  {ctx.ptr(y)}[line * 2] = ({t})re; {ctx.ptr(y)}[line * 2 + 1] = ({t})im;",
            "}",
            "free(tw);"]


SIGNAL_EMITTERS = {"dft": emit_dft, "stft": emit_stft}
