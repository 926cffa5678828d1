"""C bodies of the window ops beside conv: conv_transpose (1 to 3 spatial dims; groups, strides, pads,
dilations, output padding), col2im (any number of spatial dims) and deform_conv (2-d).

Input x[N, C, in...], weight w[C, O / group, k...], output y[N, O, out...], channels first. First a GEMM
per batch entry and group (lep_sgemm/lep_dgemm over BLAS, its threads splitting it): cols[o', t, i] =
sum over the group's input channels c of w[c, o', t] * x[n, c, i], every input pixel's contribution to
each output channel through each kernel tap; then each output plane (one thread's) starts from the bias
and adds, per tap t, cols[o, t, i] at output position i * stride + t * dilation - pad of every input
position i that lands inside it (the innermost range of i computed, not tested). One thread per (n, o)
plane: no two write one element. Accumulation is in the element type's own precision (f32 or f64), as
the reference does; auto_pad and output_shape arrive as pads and output_padding from the importer.

col2im gathers: y[n, c, p] sums x[n, c * B + b, l] over the block offsets b and the block
positions l that put offset b on image position p; it accumulates in double, as the reference does.
"""
from __future__ import annotations

from ...ir import dims as D
from ...ir.dtypes import DType
from ...ir.graph import Node
from .cexpr import UnsupportedError, c_itemsize, cnumel, ctype
from .kernels import KernelContext

MAX_SPATIAL = 3


def emit_conv_transpose(ctx: KernelContext, node: Node) -> list[str]:
    x, w, y = node.inputs[0], node.inputs[1], node.outputs[0]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    if y.dtype not in (DType.f32, DType.f64):
        raise UnsupportedError(f"{ctx.where}: conv_transpose over {y.dtype} is not supported by the cpu target "
                               "(f32 and f64 are)")
    nsp = x.type.rank - 2
    if nsp > MAX_SPATIAL:
        raise UnsupportedError(f"{ctx.where}: conv_transpose over {nsp} spatial dims is not supported by the cpu "
                               f"target (1 to {MAX_SPATIAL} are)")
    strides = node.attrs["strides"] or (1,) * nsp
    pads = node.attrs["pads"] or (0,) * (2 * nsp)
    dilations = node.attrs["dilations"] or (1,) * nsp
    unit = MAX_SPATIAL - nsp   # leading spatial dims of size 1 make every conv_transpose a 3-d one

    def dims3(values, fill):
        return ", ".join([str(fill)] * unit + [str(v) for v in values])

    t = ctype(y.dtype, ctx.where)
    gemm = "lep_sgemm" if y.dtype is DType.f32 else "lep_dgemm"
    ctx.scratch_bytes = D.mul(D.product([x.shape[0], y.shape[1], *w.shape[2:], *x.shape[2:]]), c_itemsize(y.dtype))
    return [f"const int64_t NB = {ctx.d(x.shape[0])}, C = {ctx.d(x.shape[1])}, O = {ctx.d(y.shape[1])}, "
            f"G = {node.attrs['group']}, CG = C / G, OG = O / G;",
            f"const int64_t IN[3] = {{{dims3([ctx.d(d) for d in x.shape[2:]], 1)}}};",
            f"const int64_t OUT[3] = {{{dims3([ctx.d(d) for d in y.shape[2:]], 1)}}};",
            f"const int64_t K[3] = {{{dims3([ctx.d(d) for d in w.shape[2:]], 1)}}};",
            f"const int64_t S[3] = {{{dims3(strides, 1)}}}, D[3] = {{{dims3(dilations, 1)}}}, "
            f"P[3] = {{{dims3(pads[:nsp], 0)}}};",
            "const int64_t IP = IN[0] * IN[1] * IN[2], OP = OUT[0] * OUT[1] * OUT[2], KP = K[0] * K[1] * K[2];",
            f"{t}* cols = ({t}*)scratch;   /* [NB, G, OG * KP, IP]: each input pixel's contribution per tap */",
            "for (int64_t ng = 0; ng < NB * G; ++ng)",
            f"  {gemm}(1, 0, OG * KP, IP, CG, {ctx.ptr(w)} + ng % G * CG * OG * KP, OG * KP, "
            f"{ctx.ptr(x)} + ng * CG * IP, IP, cols + ng * OG * KP * IP, IP);",
            "#pragma omp parallel for schedule(static) if (NB * O * IP * KP > 32768)",
            "for (int64_t no = 0; no < NB * O; ++no) {   /* each output plane adds up the taps that land on it */",
            "  const int64_t n = no / O, o = no % O;",
            f"  const {t}* cp = cols + ((n * G + o / OG) * OG + o % OG) * KP * IP;",
            f"  {t}* yp = {ctx.ptr(y)} + no * OP;",
            f"  const {t} b = {f'{ctx.ptr(bias)}[o]' if bias is not None else '0'};",
            "  for (int64_t p = 0; p < OP; ++p) yp[p] = b;",
            "  for (int64_t t0 = 0; t0 < K[0]; ++t0)",
            "  for (int64_t t1 = 0; t1 < K[1]; ++t1)",
            "  for (int64_t t2 = 0; t2 < K[2]; ++t2) {",
            f"    const {t}* ct = cp + ((t0 * K[1] + t1) * K[2] + t2) * IP;",
            "    const int64_t e2 = t2 * D[2] - P[2];   /* input pixel i2 lands on output i2 * S[2] + e2 */",
            "    const int64_t lo = e2 >= 0 ? 0 : (-e2 + S[2] - 1) / S[2];",
            "    const int64_t top = OUT[2] - 1 - e2, last = top < 0 ? 0 : top / S[2] + 1;",
            "    const int64_t hi = last < IN[2] ? last : IN[2];",
            "    for (int64_t i0 = 0; i0 < IN[0]; ++i0) {",
            "      const int64_t p0 = i0 * S[0] + t0 * D[0] - P[0];",
            "      if (p0 < 0 || p0 >= OUT[0]) continue;",
            "      for (int64_t i1 = 0; i1 < IN[1]; ++i1) {",
            "        const int64_t p1 = i1 * S[1] + t1 * D[1] - P[1];",
            "        if (p1 < 0 || p1 >= OUT[1]) continue;",
            f"        {t}* yr = yp + (p0 * OUT[1] + p1) * OUT[2];",
            f"        const {t}* cr = ct + (i0 * IN[1] + i1) * IN[2];",
            "        for (int64_t i2 = lo; i2 < hi; ++i2) yr[i2 * S[2] + e2] += cr[i2];",
            "      }",
            "    }",
            "  }",
            "}"]


def emit_col2im(ctx: KernelContext, node: Node) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    if y.dtype not in (DType.f32, DType.f64):
        raise UnsupportedError(f"{ctx.where}: col2im over {y.dtype} is not supported by the cpu target "
                               "(f32 and f64 are)")
    image, block = node.attrs["image_shape"], node.attrs["block_shape"]
    nsp = len(image)
    strides = node.attrs["strides"] or (1,) * nsp
    pads = node.attrs["pads"] or (0,) * (2 * nsp)
    dilations = node.attrs["dilations"] or (1,) * nsp
    grid = [(image[i] + pads[i] + pads[i + nsp] - dilations[i] * (block[i] - 1) - 1) // strides[i] + 1
            for i in range(nsp)]

    def arr(values):
        return "{" + ", ".join(str(v) for v in values) + "}"

    t = ctype(y.dtype, ctx.where)
    return [f"const int64_t NSP = {nsp}, IMG[] = {arr(image)}, BLK[] = {arr(block)}, GRID[] = {arr(grid)}, "
            f"S[] = {arr(strides)}, P[] = {arr(pads[:nsp])}, D[] = {arr(dilations)};",
            f"const int64_t NC = {cnumel(y.shape[:2], ctx.where)}, IP = {cnumel(image, ctx.where)}, "
            f"B = {cnumel(block, ctx.where)}, L = {cnumel(grid, ctx.where)};",
            "#pragma omp parallel for schedule(static) if (NC * IP * B > 32768)",
            "for (int64_t np_ = 0; np_ < NC * IP; ++np_) {",
            "  const int64_t nc = np_ / IP, p = np_ % IP;",
            "  double acc = 0;",
            "  for (int64_t b = 0; b < B; ++b) {",
            "    int64_t l = 0, pr = p, br = b, inside = 1, scale = 1;",
            "    for (int64_t d = NSP - 1; d >= 0 && inside; --d) {   /* the block position of offset b at p */",
            "      const int64_t pd = pr % IMG[d], bd = br % BLK[d];",
            "      const int64_t q = pd + P[d] - bd * D[d];",
            "      inside = q >= 0 && q % S[d] == 0 && q / S[d] < GRID[d];",
            "      l += (q / S[d]) * scale;",
            "      pr /= IMG[d]; br /= BLK[d]; scale *= GRID[d];",
            "    }",
            f"    if (inside) acc += (double){ctx.ptr(x)}[(nc * B + b) * L + l];",
            "  }",
            f"  {ctx.ptr(y)}[np_] = ({t})acc;",
            "}"]


def emit_deform_conv(ctx: KernelContext, node: Node) -> list[str]:
    """Each output element in double: per input channel of its group and kernel tap, x sampled bilinearly (zero
    outside) at the tap's position plus its offset group's offset, times the mask, times the weight."""
    x, w, offset, y = node.inputs[0], node.inputs[1], node.inputs[2], node.outputs[0]
    rest = node.inputs[3:]
    bias = rest[0] if node.attrs["has_bias"] else None
    mask = rest[-1] if node.attrs["has_mask"] else None
    if y.dtype not in (DType.f32, DType.f64):
        raise UnsupportedError(f"{ctx.where}: deform_conv over {y.dtype} is not supported by the cpu target "
                               "(f32 and f64 are)")
    strides = node.attrs["strides"] or (1, 1)
    pads = node.attrs["pads"] or (0, 0, 0, 0)
    dilations = node.attrs["dilations"] or (1, 1)
    t = ctype(y.dtype, ctx.where)
    d = ctx.d
    return [f"const int64_t NB = {d(x.shape[0])}, C = {d(x.shape[1])}, H = {d(x.shape[2])}, W = {d(x.shape[3])};",
            f"const int64_t O = {d(y.shape[1])}, OH = {d(y.shape[2])}, OW = {d(y.shape[3])}, "
            f"KH = {d(w.shape[2])}, KW = {d(w.shape[3])};",
            f"const int64_t G = {node.attrs['group']}, OG = {node.attrs['offset_group']}, CG = C / G, "
            "CPO = C / OG, OPG = O / G, P = OH * OW;",
            "#pragma omp parallel for schedule(static) if (NB * O * P * CG * KH * KW > 16384)",
            "for (int64_t nop = 0; nop < NB * O * P; ++nop) {",
            "  const int64_t n = nop / (O * P), o = nop / P % O, p = nop % P, oy = p / OW, ox = p % OW;",
            f"  double acc = {f'(double){ctx.ptr(bias)}[o]' if bias is not None else '0.0'};",
            "  for (int64_t cc = 0; cc < CG; ++cc) {",
            "    const int64_t c = o / OPG * CG + cc, og = c / CPO;",
            f"    const {t}* xc = {ctx.ptr(x)} + (n * C + c) * H * W;",
            "    for (int64_t i = 0; i < KH; ++i)",
            "    for (int64_t j = 0; j < KW; ++j) {",
            "      const int64_t tap = (og * KH + i) * KW + j;",
            f"      const {t}* off = {ctx.ptr(offset)} + ((n * OG * KH * KW + tap) * 2) * P + p;",
            f"      const double py = (double)({-pads[0]} + {strides[0]} * oy + {dilations[0]} * i) + (double)off[0];",
            f"      const double px = (double)({-pads[1]} + {strides[1]} * ox + {dilations[1]} * j) + (double)off[P];",
            "      const double fy = floor(py), fx = floor(px), ly = py - fy, lx = px - fx;",
            "      const int64_t y0 = (int64_t)fy, x0 = (int64_t)fx;",
            "      double v = 0.0;",
            "      for (int dy = 0; dy < 2; ++dy)",
            "      for (int dx = 0; dx < 2; ++dx) {",
            "        const int64_t yy = y0 + dy, xx = x0 + dx;",
            "        if (yy < 0 || yy >= H || xx < 0 || xx >= W) continue;",
            "        v += (dy ? ly : 1.0 - ly) * (dx ? lx : 1.0 - lx) * (double)xc[yy * W + xx];",
            "      }",
            *([f"      v *= (double){ctx.ptr(mask)}[(n * OG * KH * KW + tap) * P + p];"] if mask is not None else []),
            f"      acc += v * (double){ctx.ptr(w)}[((o * CG + cc) * KH + i) * KW + j];",
            "    }",
            "  }",
            f"  {ctx.ptr(y)}[nop] = ({t})acc;",
            "}"]


CONV_TRANSPOSE_EMITTERS = {"conv_transpose": emit_conv_transpose, "col2im": emit_col2im,
                           "deform_conv": emit_deform_conv}
