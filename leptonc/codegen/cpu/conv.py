"""C bodies of convolution and pooling, channels-last (the `channels-last` pass runs before codegen).

Input x[N, H, W, C], output y[N, OH, OW, O], weight w[KH, KW, C / group, O]
(1-d ops as 2-d with a unit height):

- a depthwise conv (one filter per channel) runs directly, vectorized along
  the channels (conv.c, lep_depthwise_nhwc), bias included;
- any other conv is a GEMM per group, y[P, O] = A[P, K] @ w[K, O] with P the
  output pixels and K = KH * KW * C / group: a 1x1 conv with unit strides and
  no padding reads x itself as A; others build A's rows (im2col: runs of C
  contiguous floats per tap, conv.c, lep_im2col_nhwc) in scratch memory;
- pooling loops over output pixels with the channels innermost (vectorized).
"""
from __future__ import annotations

from pathlib import Path

from .. import window_2d
from ...ir import dims as D
from ...ir.dtypes import DType
from ...ir.graph import Graph, Node, Value
from .cexpr import UnsupportedError, ctype
from .kernels import KernelContext

CONV_SOURCE = Path(__file__).with_name("conv.c").read_text()
IM2COL_ROWS = 64  # rows of the column matrix one task builds


def uses_conv(graph: Graph) -> bool:
    """Whether the model's source needs conv.c."""
    return any(n.op in ("conv", "max_pool", "avg_pool") for n in graph.nodes)


def _require_channels_last(ctx: KernelContext, node: Node) -> None:
    if not node.attrs["channels_last"]:
        raise UnsupportedError(f"{ctx.where}: the cpu target computes {node.op} channels-last; run the "
                               "channels-last pass before code generation (the cpu lowering pipeline does)")


def _hw(shape, nsp: int) -> tuple:
    """(height, width) of a channels-last N, spatial..., C shape (1-d: a unit height)."""
    return (1, shape[1]) if nsp == 1 else (shape[1], shape[2])


def _window(ctx: KernelContext, node: Node, x: Value, out: Value, kernel: tuple) -> tuple[list[str], tuple]:
    """C statements declaring `lep_window win` for a channels-last conv/pool, and its (end pads)."""
    nsp = x.type.rank - 2
    (sh, sw), (dh, dw), (ph, pw, phe, pwe) = window_2d(node, nsp, ctx.where, "cpu", UnsupportedError, channels_last=True)
    (H, W), (OH, OW) = _hw(x.shape, nsp), _hw(out.shape, nsp)
    KH, KW = kernel
    d = ctx.d
    return [f"const lep_window win = {{{d(x.shape[0])}, {d(H)}, {d(W)}, {d(x.shape[-1])}, {d(OH)}, {d(OW)}, "
            f"{KH}, {KW}, {sh}, {sw}, {dh}, {dw}, {ph}, {pw}}};"], (phe, pwe)


def emit_conv(ctx: KernelContext, node: Node) -> list[str]:
    _require_channels_last(ctx, node)
    x, w = node.inputs[0], node.inputs[1]
    out = node.outputs[0]
    if out.dtype is not DType.f32:
        raise UnsupportedError(f"{ctx.where}: conv in {out.dtype} is not supported by the cpu target (f32 is)")
    nsp = x.type.rank - 2
    kernel = (1, w.shape[0]) if nsp == 1 else (w.shape[0], w.shape[1])
    if not all(isinstance(k, int) for k in kernel):
        raise UnsupportedError(f"{ctx.where}: conv with a symbolic kernel size is not supported by the cpu target")
    lines, _ = _window(ctx, node, x, out, kernel)
    g = node.attrs["group"]
    d = ctx.d
    xp, wp, yp = ctx.ptr(x), ctx.ptr(w), ctx.ptr(out)
    bias = ctx.ptr(node.inputs[2]) if len(node.inputs) > 2 else "NULL"
    lines.append(f"const int64_t C = {d(x.shape[-1])}, O = {d(out.shape[-1])}, G = {g}, CG = C / G, OG = O / G, "
                 f"K = {kernel[0] * kernel[1]} * CG, P = win.N * win.OH * win.OW;")
    if g > 1 and D.same(w.shape[-2], 1) and D.same(out.shape[-1], x.shape[-1]):
        return lines + ["/* depthwise: one filter per channel, vectorized along the channels */",
                        "#pragma omp parallel for schedule(static)",
                        "for (int64_t r = 0; r < win.N * win.OH; ++r)",
                        f"  lep_depthwise_nhwc({yp}, {xp}, {wp}, {bias}, &win, r, r + 1);"]
    (sh, sw), _, pads = window_2d(node, nsp, ctx.where, "cpu", UnsupportedError, channels_last=True)
    pointwise = kernel == (1, 1) and (sh, sw) == (1, 1) and not any(pads)
    if not pointwise:
        ctx.scratch_bytes = D.mul(D.product([*out.shape[:-1], *kernel, w.shape[-2]]), 4)
    lines.append("for (int64_t gi = 0; gi < G; ++gi) {")
    if pointwise:
        lines.append(f"  const float* a = {xp} + gi * CG; const int64_t lda = C;  /* x itself is A */")
    else:
        lines += ["  #pragma omp parallel for schedule(static)",
                  f"  for (int64_t p0 = 0; p0 < P; p0 += {IM2COL_ROWS})",
                  f"    lep_im2col_nhwc(scratch + p0 * K, K, {xp}, &win, gi * CG, CG, p0, "
                  f"p0 + {IM2COL_ROWS} < P ? p0 + {IM2COL_ROWS} : P);",
                  "  const float* a = scratch; const int64_t lda = K;"]
    lines += [f"  lep_sgemm(0, 0, P, OG, K, a, lda, {wp} + gi * OG, O, {yp} + gi * OG, O);",
              "}"]
    if bias != "NULL":
        lines += ["#pragma omp parallel for schedule(static) if (P * O > 65536)",
                  "for (int64_t p = 0; p < P; ++p) {",
                  f"  float* yr = {yp} + p * O;",
                  "  #pragma omp simd",
                  f"  for (int64_t o = 0; o < O; ++o) yr[o] += {bias}[o];",
                  "}"]
    return lines


def emit_pool(ctx: KernelContext, node: Node) -> list[str]:
    _require_channels_last(ctx, node)
    x, out = node.inputs[0], node.outputs[0]
    if not x.dtype.is_float:
        raise UnsupportedError(f"{ctx.where}: {node.op} over {x.dtype} is not supported by the cpu target")
    t = ctype(x.dtype, ctx.where)
    nsp = x.type.rank - 2
    kernel = tuple(node.attrs["kernel"])
    lines, (phe, pwe) = _window(ctx, node, x, out, (1, kernel[0]) if nsp == 1 else kernel)
    is_max = node.op == "max_pool"
    lines += [f"const int64_t C = {ctx.d(x.shape[-1])};",
              "#pragma omp parallel for schedule(static) if (win.N * win.OH * win.OW * C > 16384)",
              "for (int64_t p = 0; p < win.N * win.OH * win.OW; ++p) {",
              "  const int64_t n = p / (win.OH * win.OW), oh = p / win.OW % win.OH, ow = p % win.OW;",
              f"  {t}* yp = {ctx.ptr(out)} + p * C;",
              f"  for (int64_t c = 0; c < C; ++c) yp[c] = {'-INFINITY' if is_max else '0'};",
              "  int64_t cnt = 0, cnt_pad = 0;",
              "  for (int64_t ki = 0; ki < win.KH; ++ki) {",
              "    const int64_t h = oh * win.sh - win.ph + ki * win.dh;",
              "    for (int64_t kj = 0; kj < win.KW; ++kj) {",
              "      const int64_t w = ow * win.sw - win.pw + kj * win.dw;",
              f"      if (h >= -win.ph && h < win.H + {phe} && w >= -win.pw && w < win.W + {pwe}) ++cnt_pad;",
              "      if (h < 0 || h >= win.H || w < 0 || w >= win.W) continue;",
              "      ++cnt;",
              f"      const {t}* xp = {ctx.ptr(x)} + ((n * win.H + h) * win.W + w) * C;",
              "      #pragma omp simd",
              "      for (int64_t c = 0; c < C; ++c) "
              + ("yp[c] = (xp[c] > yp[c] || xp[c] != xp[c]) ? xp[c] : yp[c];" if is_max else "yp[c] += xp[c];"),
              "    }",
              "  }"]
    if is_max:
        lines.append("  (void)cnt; (void)cnt_pad;")
    else:
        div = "cnt_pad" if node.attrs["count_include_pad"] else "cnt"
        lines += [f"  const {t} count = ({t})({div} > 0 ? {div} : 1);",
                  "  #pragma omp simd",
                  "  for (int64_t c = 0; c < C; ++c) yp[c] /= count;"]
    lines.append("}")
    return lines


CONV_EMITTERS = {"max_pool": emit_pool, "avg_pool": emit_pool}
