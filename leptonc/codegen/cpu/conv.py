"""C bodies of convolution and pooling, channels-last (the `channels-last` pass runs before codegen).

Input x[N, H, W, C], output y[N, OH, OW, O], weight w[KH, KW, C / group, O]
(1-d ops as 2-d with a unit height):

- a depthwise conv (one filter per channel) runs directly, vectorized along
  the channels (conv.c, lep_depthwise_nhwc), bias included;
- any other conv is a GEMM per group, y[P, O] = A[P, K] @ w[K, O] + bias with
  P the output pixels and K = KH * KW * C / group, on lep_gemm_a (gemm.c) with
  the weight packed at compile time (`pack_conv_weight`), the bias added by the
  micro-kernel and the kernel's fused ops applied to each finished tile
  (lep_conv_epilogue). A is read in place where it can be: a 1x1 conv with
  unit strides and no padding reads x itself; others read, per output pixel
  and kernel row, its run of KW * C input floats (lep_conv_view_a; runs that
  touch the padding are copied with their zeros), or, when the runs are not
  contiguous (groups, dilation), pack A from x (implicit im2col,
  lep_conv_pack_a, a tap's CG channels at a time); with many pixels each task
  takes a block of them, so that its part of A stays in cache, and a grouped
  conv's tasks are (a block of pixels, a group), in one parallel loop. A
  conv over few input channels (an image) reads its input channels-first,
  through the transpose into channels-last that the fusion plan lets it
  absorb (`reads_channels_first`): the transpose is never computed, and A
  is packed straight from the NCHW input (lep_conv_pack_a_cf), its K ordered
  (channel, kernel row, kernel column) so that 8 neighbouring output pixels
  read 8 evenly spaced floats of one input row;
- pooling loops over output pixels with the channels innermost (vectorized).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .. import window_2d
from ...ir import dims as D
from ...ir.dtypes import DType
from ...ir.graph import Graph, Node, Value
from ...ir.ops.nn import channels_last_perm
from .cexpr import UnsupportedError, ctype, literal
from .kernels import KernelContext
from .matmul import GEMM_NR, aligned_empty, pack_b

CONV_SOURCE = Path(__file__).with_name("conv.c").read_text()
CONV_PACKED = "^C"      # suffix (then the group count) of a conv weight packed for lep_gemm_packed
CHANNELS_FIRST = "f"    # after the group count: packed in K order (channel, kernel...), for a channels-first input
CHANNELS_FIRST_MAX = 4  # input channels up to which a conv reads its input channels-first
BLOCK_ROWS = 256        # output pixels of one task, when a conv splits its pixels over the threads
BLOCKED_MIN_ROWS = 512  # pixels per thread from which it does, rather than the GEMM splitting its threads
POOL_CHANNELS = 64      # channels of one pooling task


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


def _window(ctx: KernelContext, node: Node, x: Value, out: Value, kernel: tuple) -> tuple[list[str], tuple, tuple]:
    """C statements declaring `lep_window win` for a channels-last conv/pool, its strides and its pads."""
    nsp = x.type.rank - 2
    (sh, sw), (dh, dw), pads = window_2d(node, nsp, ctx.where, "cpu", UnsupportedError, channels_last=True)
    (H, W), (OH, OW) = _hw(x.shape, nsp), _hw(out.shape, nsp)
    KH, KW = kernel
    d = ctx.d
    return [f"const lep_window win = {{{d(x.shape[0])}, {d(H)}, {d(W)}, {d(x.shape[-1])}, {d(OH)}, {d(OW)}, "
            f"{KH}, {KW}, {sh}, {sw}, {dh}, {dw}, {pads[0]}, {pads[1]}}};"], (sh, sw), pads


def is_depthwise(node: Node) -> bool:
    """One filter per channel (group = C = O): computed directly rather than as a GEMM."""
    x, w, y = node.inputs[0], node.inputs[1], node.outputs[0]
    return node.attrs["group"] > 1 and D.same(w.shape[-2], 1) and D.same(y.shape[-1], x.shape[-1])


def fused_clamp(ctx: KernelContext, node: Node) -> tuple[float, float, Value] | None:
    """(lo, hi, the clamped value) when the kernel's fused ops only clamp the conv's result (relu, or max and
    min with a scalar constant, one after the other, nothing else reading the values between); else None."""
    v, lo, hi = node.outputs[0], -math.inf, math.inf
    outputs = {id(o) for o in ctx.graph.outputs}
    for n in ctx.fused:
        if id(v) in outputs or len(v.uses) != 1 or v.uses[0][0] is not n or n.outputs[0].type != v.type:
            return None
        if n.op == "relu":
            lo = max(lo, 0.0)
        elif n.op in ("max", "min") and len(n.inputs) == 2:
            c = ctx.graph.constant_of(n.inputs[1] if n.inputs[0] is v else n.inputs[0])
            if c is None or c.size != 1 or np.isnan(c).any():
                return None
            lo, hi = (max(lo, float(c.flat[0])), hi) if n.op == "max" else (lo, min(hi, float(c.flat[0])))
        else:
            return None
        v = n.outputs[0]
    return (lo, hi, v) if ctx.fused and lo <= hi else None


def _gemm_conv_with_weight(graph: Graph, node: Node) -> bool:
    """A conv computed as a GEMM whose weight is a constant (packed at compile time)."""
    return not is_depthwise(node) and node.outputs[0].dtype is DType.f32 and graph.constant_of(node.inputs[1]) is not None


def _narrow_width_step(conv: Node) -> bool:
    """A width stride of 1 or 2 and no width dilation: what lep_conv_cf_tile computes straight from a
    channels-first input (a wider step, as a patch embedding's, reads better channels-last)."""
    strides, dilations = tuple(conv.attrs["strides"]) or (1,), tuple(conv.attrs["dilations"]) or (1,)
    return strides[-1] <= 2 and dilations[-1] == 1


def reads_channels_first(t: Node) -> bool:
    """A transpose into channels-last of few channels (at most CHANNELS_FIRST_MAX: an image) that every user, a
    1-d or 2-d GEMM conv with a constant weight and a narrow width step, reads as its input in place instead
    (the plan absorbs the transpose)."""
    if t.op != "transpose" or t.graph is None or t.inputs[0].type.rank not in (3, 4) or not t.output.uses:
        return False
    x = t.inputs[0]
    channels = x.shape[1]
    if tuple(t.attrs["perm"]) != channels_last_perm(x.type.rank) or not isinstance(channels, int) \
            or channels > CHANNELS_FIRST_MAX or x.dtype is not DType.f32 or any(o is t.output for o in t.graph.outputs):
        return False
    return all(u.op == "conv" and i == 0 and u.attrs["channels_last"] and _gemm_conv_with_weight(t.graph, u)
               and _narrow_width_step(u) for u, i in t.output.uses)


def _channels_first_input(node: Node) -> Value | None:
    """The channels-first value a conv reads in place of its input (reads_channels_first), else None."""
    t = node.inputs[0].producer
    return t.inputs[0] if t is not None and reads_channels_first(t) else None


def conv_weight_layout(graph: Graph, node: Node) -> list[tuple[Value, str]]:
    """The weight of a GEMM conv, stored packed (name + CONV_PACKED + group [+ CHANNELS_FIRST] in
    meta["weights"]) when it is a constant; a computed weight is packed at run time."""
    if not _gemm_conv_with_weight(graph, node):
        return []
    order = CHANNELS_FIRST if _channels_first_input(node) is not None else ""
    return [(node.inputs[1], f"{CONV_PACKED}{node.attrs['group']}{order}")]


def laid_out_conv_weight(w: np.ndarray, layout: str) -> np.ndarray:
    """A channels-last weight packed as conv_weight_layout's suffix (after CONV_PACKED) says."""
    if layout.endswith(CHANNELS_FIRST):
        return pack_conv_weight(np.moveaxis(w, -2, 0), int(layout[:-len(CHANNELS_FIRST)]))
    return pack_conv_weight(w, int(layout))


def pack_conv_weight(w: np.ndarray, group: int) -> np.ndarray:
    """A weight [..., O] whose leading dims are K's (channels-last: [kernel..., C / group, O]) as
    lep_gemm_packed's B for each group: [K, O / group] matrices packed one after the other (pack_b's layout;
    each starts 64-byte aligned)."""
    out_channels = w.shape[-1]
    b = np.asarray(w, np.float32).reshape(-1, out_channels)
    og = out_channels // group
    parts = [pack_b(b[:, g * og:(g + 1) * og]) for g in range(group)]
    out = aligned_empty(sum(p.size for p in parts))
    np.concatenate(parts, out=out)
    return out


def emit_conv(ctx: KernelContext, node: Node) -> list[str]:
    """A conv kernel: depthwise directly, any other as a GEMM per group (see the module docstring)."""
    _require_channels_last(ctx, node)
    x, w = node.inputs[0], node.inputs[1]
    out = node.outputs[0]
    if out.dtype is not DType.f32:
        raise UnsupportedError(f"{ctx.where}: conv in {out.dtype} is not supported by the cpu target (f32 is)")
    nsp = x.type.rank - 2
    kernel = (1, w.shape[0]) if nsp == 1 else (w.shape[0], w.shape[1])
    if not all(isinstance(k, int) for k in kernel):
        raise UnsupportedError(f"{ctx.where}: conv with a symbolic kernel size is not supported by the cpu target")
    lines, (sh, sw), pads = _window(ctx, node, x, out, kernel)
    bias = ctx.ptr(node.inputs[2]) if len(node.inputs) > 2 else "NULL"
    clamp = fused_clamp(ctx, node)
    channels_first = _channels_first_input(node)
    xp = ctx.ptr(x if channels_first is None else channels_first)
    if clamp is None:
        ep, ep_ctx = ctx.tile_epilogue().split(", ")
        yp, clamp_p = ctx.ptr(out), "NULL"
    else:  # the fused ops only clamp: the kernels clamp each tile before they store it, into the clamped value
        lo, hi, clamped = clamp
        ctx.fused_done = True
        ep = ep_ctx = "NULL"
        yp, clamp_p = ctx.ptr(clamped), "clamp"
        lines.append(f"const float clamp[2] = {{{literal(lo, DType.f32)}, {literal(hi, DType.f32)}}};")
    lines.append(f"const int64_t C = {ctx.d(x.shape[-1])}, O = {ctx.d(out.shape[-1])}, G = {node.attrs['group']}, "
                 f"CG = C / G, OG = O / G, K = {kernel[0] * kernel[1]} * CG, P = win.N * win.OH * win.OW;")
    if is_depthwise(node):  # a task per output row and chunk of channels: a 7x7 map still splits evenly
        lines += ["/* depthwise: one filter per channel, vectorized along the channels */",
                  "const int64_t CT = (C + LEP_DW_CHUNK - 1) / LEP_DW_CHUNK;",
                  "#pragma omp parallel for schedule(static)",
                  "for (int64_t t = 0; t < win.N * win.OH * CT; ++t) {",
                  "  const int64_t r = t / CT, c0 = t % CT * LEP_DW_CHUNK, c1 = c0 + LEP_DW_CHUNK < C ? "
                  "c0 + LEP_DW_CHUNK : C;",
                  f"  lep_depthwise_nhwc({yp}, {xp}, {ctx.ptr(w)}, {bias}, {clamp_p}, &win, r, c0, c1);"]
        if ep != "NULL":
            # the fused ops, on the task's part of the row while it is in cache
            lines.append(f"  {ep}({ep_ctx}, {yp}, C, r * win.OW, (r + 1) * win.OW, c0, c1);")
        return lines + ["}"]
    # a GEMM per group: y[:, the group's channels] = A[P, K] @ B[K, OG], B packed, the epilogue on each tile
    layout = conv_weight_layout(ctx.graph, node)
    packed = ctx.names[(layout[0][1], id(w))] if layout else "bp"
    if not layout:  # a computed weight: packed here
        ctx.scratch_bytes = D.mul(_packed_floats(ctx, w, out, node.attrs["group"]), 4)
        lines += ["float* bp = scratch;",
                  "for (int64_t gi = 0; gi < G; ++gi)",
                  f"  lep_pack_b(K, OG, {ctx.ptr(w)} + gi * OG, O, bp + gi * lep_packed_size(K, OG));"]
    pointwise = kernel == (1, 1) and (sh, sw) == (1, 1) and not any(pads) and channels_first is None
    bias_g = f"{bias} + gi * OG" if bias != "NULL" else "NULL"

    def gemm(indent: str, rows: str, row0: str) -> list[str]:
        """The GEMM of group gi for output rows [row0, row0 + rows), A read in place where it can be."""
        if pointwise:  # x itself is A
            a = f"const lep_a_rows a = {{{xp} + {row0} * C + gi * CG, C, NULL, lep_view_matrix, NULL}};"
        else:
            a = (f"const lep_conv_rows rows = {{{xp}, &win, gi * CG, CG, {row0}}}; "
                 "const lep_a_rows a = {NULL, 0, lep_conv_pack_a, lep_conv_view_a, &rows};")
        tile = [] if ep == "NULL" else [f"{indent}const lep_conv_tile tile = {{{ep}, {ep_ctx}, {row0}, gi * OG}};"]
        fused = "NULL, NULL" if ep == "NULL" else "lep_conv_epilogue, &tile"
        return [f"{indent}{a}", *tile,
                f"{indent}lep_gemm_a({rows}, OG, K, &a, {packed} + gi * lep_packed_size(K, OG), {bias_g}, {clamp_p}, "
                f"{yp} + {row0} * O + gi * OG, O, {fused});"]
    if channels_first is not None:  # lep_conv_cf_rows on a block of pixels per task
        lines += [f"const int64_t MB = lep_conv_task_pixels(P, {BLOCK_ROWS});",
                  "#pragma omp parallel for schedule(static)",
                  "for (int64_t p0 = 0; p0 < P; p0 += MB)",
                  "  for (int64_t gi = 0; gi < G; ++gi) {",
                  f"    const lep_conv_rows rows = {{{xp}, &win, gi * CG, CG, p0}};",
                  f"    lep_conv_cf_rows(&rows, p0 + MB < P ? MB : P - p0, {packed} + gi * lep_packed_size(K, OG), OG, K, "
                  f"{bias_g}, {clamp_p}, {yp} + p0 * O + gi * OG, O, {ep}, {ep_ctx}, gi * OG);",
                  "  }"]
        return lines
    if node.attrs["group"] > 1:  # a task per block of pixels and group: one parallel loop, not one per group
        return lines + [
            f"const int64_t MB = lep_conv_group_task_pixels(P, G, {BLOCK_ROWS});",
            "#pragma omp parallel for collapse(2) schedule(static)",
            "for (int64_t p0 = 0; p0 < P; p0 += MB)",
            "  for (int64_t gi = 0; gi < G; ++gi) {",
            *gemm("    ", "(p0 + MB < P ? MB : P - p0)", "p0"),
            "  }"]
    return lines + [
        f"if (P < {BLOCKED_MIN_ROWS} * omp_get_max_threads()) {{  /* few pixels: the GEMM splits the threads */",
        "  for (int64_t gi = 0; gi < G; ++gi) {",
        *gemm("    ", "P", "0"),
        "  }",
        "} else {  /* many pixels: a block of rows per task, its packed A in cache */",
        f"  const int64_t MB = lep_conv_task_pixels(P, {BLOCK_ROWS});",
        "  #pragma omp parallel for schedule(static)",
        "  for (int64_t p0 = 0; p0 < P; p0 += MB)",
        "    for (int64_t gi = 0; gi < G; ++gi) {",
        *gemm("      ", "(p0 + MB < P ? MB : P - p0)", "p0"),
        "    }",
        "}"]


def _packed_floats(ctx: KernelContext, w: Value, out: Value, group: int) -> int:
    """Floats of a computed weight packed at run time: per group, K rows by O / group columns in whole panels."""
    if not all(isinstance(d, int) for d in w.shape):
        raise UnsupportedError(f"{ctx.where}: conv with a computed weight of symbolic shape is not supported by the "
                               "cpu target")
    og = out.shape[-1] // group
    return group * int(np.prod(w.shape[:-1])) * (-(-og // GEMM_NR) * GEMM_NR)


def emit_pool(ctx: KernelContext, node: Node) -> list[str]:
    """Max or average pooling channels-last: a task per output pixel and block of POOL_CHANNELS channels (so
    that a global pool, one output pixel over the whole input, still splits over the threads), its loops over
    the taps inside the input only (lep_taps_within: a window wider than the input costs no more than the
    input), the channels innermost."""
    _require_channels_last(ctx, node)
    x, out = node.inputs[0], node.outputs[0]
    if not x.dtype.is_float and (node.op != "max_pool" or x.dtype not in (DType.u8, DType.i8)):
        raise UnsupportedError(f"{ctx.where}: {node.op} over {x.dtype} is not supported by the cpu target")
    t = ctype(x.dtype, ctx.where)
    lowest = "-INFINITY" if x.dtype.is_float else str(np.iinfo(x.dtype.numpy).min)
    nsp = x.type.rank - 2
    kernel = tuple(node.attrs["kernel"])
    lines, _, (_, _, phe, pwe) = _window(ctx, node, x, out, (1, kernel[0]) if nsp == 1 else kernel)
    is_max = node.op == "max_pool"
    lines += [f"const int64_t C = {ctx.d(x.shape[-1])}, CB = (C + {POOL_CHANNELS - 1}) / {POOL_CHANNELS}, "
              "P = win.N * win.OH * win.OW;",
              "const int64_t taps = (win.KH < win.H ? win.KH : win.H) * (win.KW < win.W ? win.KW : win.W);",
              "#pragma omp parallel for schedule(static) if (P * C * taps > 65536)",
              "for (int64_t task = 0; task < P * CB; ++task) {",
              f"  const int64_t p = task / CB, c0 = task % CB * {POOL_CHANNELS}, "
              f"c1 = c0 + {POOL_CHANNELS} < C ? c0 + {POOL_CHANNELS} : C;",
              "  const int64_t n = p / (win.OH * win.OW), oh = p / win.OW % win.OH, ow = p % win.OW;",
              f"  {t}* yp = {ctx.ptr(out)} + p * C;",
              f"  for (int64_t c = c0; c < c1; ++c) yp[c] = {lowest if is_max else '0'};",
              "  int64_t i0, i1, j0, j1;  /* the taps inside the input */",
              "  lep_taps_within(oh, win.sh, win.ph, win.dh, win.KH, 0, win.H, &i0, &i1);",
              "  lep_taps_within(ow, win.sw, win.pw, win.dw, win.KW, 0, win.W, &j0, &j1);",
              "  for (int64_t ki = i0; ki < i1; ++ki)",
              "    for (int64_t kj = j0; kj < j1; ++kj) {",
              f"      const {t}* xp = {ctx.ptr(x)} + ((n * win.H + oh * win.sh - win.ph + ki * win.dh) * win.W "
              "+ ow * win.sw - win.pw + kj * win.dw) * C;",
              "      #pragma omp simd",
              "      for (int64_t c = c0; c < c1; ++c) "
              + ("yp[c] = (xp[c] > yp[c] || xp[c] != xp[c]) ? xp[c] : yp[c];" if is_max else "yp[c] += xp[c];"),
              "    }"]
    if not is_max:
        if node.attrs["count_include_pad"]:  # the taps inside the padded input (not past it, in ceil mode)
            lines += ["  int64_t pi0, pi1, pj0, pj1;",
                      f"  lep_taps_within(oh, win.sh, win.ph, win.dh, win.KH, -win.ph, win.H + {phe}, &pi0, &pi1);",
                      f"  lep_taps_within(ow, win.sw, win.pw, win.dw, win.KW, -win.pw, win.W + {pwe}, &pj0, &pj1);",
                      "  const int64_t cnt = (pi1 - pi0) * (pj1 - pj0);"]
        else:
            lines.append("  const int64_t cnt = (i1 - i0) * (j1 - j0);")
        lines += [f"  const {t} count = ({t})(cnt > 0 ? cnt : 1);",
                  "  #pragma omp simd",
                  "  for (int64_t c = c0; c < c1; ++c) yp[c] /= count;"]
    lines.append("}")
    return lines


CONV_EMITTERS = {"max_pool": emit_pool, "avg_pool": emit_pool}
