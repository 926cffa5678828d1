"""C bodies of the kernels that are not plain loops: conv (im2col + BLAS), pooling, and data movement
(transpose, slice, concat, split, pad, gather, ...); matmul has its own module (matmul.py).

Each emitter gets the node, a map from values to the C pointer names the
kernel function receives, and returns C statements. Dims are C expressions of
the symbol variables, so one library serves every size.
"""
from __future__ import annotations

from .. import spatial_hw, window_2d
from ...ir import dims as D
from ...ir.dtypes import DType
from ...ir.graph import Graph, Node, Value
from .cexpr import UnsupportedError, cdim, cnumel, ctype, literal


def contiguous_strides(shape) -> list:
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc = D.mul(acc, d)
    return list(reversed(strides))


def _arr(name: str, items, where: str) -> str:
    vals = ", ".join(cdim(x, where) for x in items) or "0"
    return f"const int64_t {name}[] = {{{vals}}};"


class KernelContext:
    """What an emitter needs: the graph, pointer names of values, a place to report scratch needs, and the
    tile epilogue of the kernel's fused ops (`epilogue`: its C function name, when the kernel has fused ops)."""

    def __init__(self, graph: Graph, names: dict[int, str], where: str, epilogue: str | None = None):
        self.graph, self.names, self.where = graph, names, where
        self.scratch_bytes = None  # a dim expression, when the kernel needs scratch memory
        self.epilogue = epilogue
        self.epilogue_used = False

    def tile_epilogue(self) -> str:
        """The (function, context) arguments of lep_gemm_packed that run the kernel's fused ops on each finished
        block of the output, whose rows are the output's leading dims flattened and whose columns are its last
        dim; "NULL, NULL" when it has none. An emitter that passes them leaves the fused ops to the GEMM."""
        if self.epilogue is None:
            return "NULL, NULL"
        self.epilogue_used = True
        return f"{self.epilogue}, &epilogue_args"

    def ptr(self, v: Value) -> str:
        return self.names[id(v)]

    def d(self, dim) -> str:
        return cdim(dim, self.where)


# ---------------------------------------------------------------- convolution and pooling

def emit_conv(ctx: KernelContext, node: Node) -> list[str]:
    x, w = node.inputs[0], node.inputs[1]
    out = node.outputs[0]
    if out.dtype is not DType.f32:
        raise UnsupportedError(f"{ctx.where}: conv in {out.dtype} is not supported by the cpu target (f32 is)")
    nsp = x.type.rank - 2
    (sh, sw), (dh, dw), (ph, pw, phe, pwe) = window_2d(node, nsp, ctx.where, "cpu", UnsupportedError)
    H, W = spatial_hw(x.shape, nsp)
    KH, KW = spatial_hw(w.shape, nsp)
    OH, OW = spatial_hw(out.shape, nsp)
    g = node.attrs["group"]
    d = ctx.d
    lines = [f"const int64_t NI = {d(x.shape[0])}, C = {d(x.shape[1])}, H = {d(H)}, W = {d(W)};",
             f"const int64_t O = {d(w.shape[0])}, KH = {d(KH)}, KW = {d(KW)}, OH = {d(OH)}, OW = {d(OW)};",
             f"const int64_t G = {g}, CG = C / G, OG = O / G, KK = CG * KH * KW, P = OH * OW;"]
    pointwise = KH == 1 and KW == 1 and (sh, sw, ph, pw, phe, pwe) == (1, 1, 0, 0, 0, 0)
    xp, wp, yp = ctx.ptr(x), ctx.ptr(w), ctx.ptr(out)
    if g > 1 and D.same(w.shape[1], 1) and D.same(w.shape[0], x.shape[1]):
        lines += _depthwise(xp, wp, yp, (sh, sw), (dh, dw), (ph, pw))
    else:
        if not pointwise:
            ctx.scratch_bytes = D.mul(D.product([w.shape[1], KH, KW, OH, OW]), 4)
        lines.append("for (int64_t n = 0; n < NI; ++n)")
        lines.append("  for (int64_t gi = 0; gi < G; ++gi) {")  # im2col and the GEMM each run in parallel
        lines.append(f"    const float* xg = {xp} + (n * C + gi * CG) * H * W;")
        if pointwise:
            lines.append("    const float* col = xg;")
        else:
            lines.append(f"    lep_im2col(scratch, xg, CG, H, W, KH, KW, OH, OW, {sh}, {sw}, {ph}, {pw}, {dh}, {dw});")
            lines.append("    const float* col = scratch;")
        lines.append(f"    lep_sgemm(0, 0, OG, P, KK, {wp} + gi * OG * KK, KK, col, P, {yp} + (n * O + gi * OG) * P, P);")
        lines.append("  }")
    if len(node.inputs) > 2:
        bp = ctx.ptr(node.inputs[2])
        lines += ["#pragma omp parallel for schedule(static) if (NI * O * P > 65536)",
                  "for (int64_t no = 0; no < NI * O; ++no) {",
                  f"  float* yo = {yp} + no * P; const float bo = {bp}[no % O];",
                  "  #pragma omp simd",
                  "  for (int64_t j = 0; j < P; ++j) yo[j] += bo;",
                  "}"]
    return lines


def _depthwise(xp, wp, yp, stride, dil, pad) -> list[str]:
    (sh, sw), (dh, dw), (ph, pw) = stride, dil, pad
    return ["/* depthwise: one filter per channel, computed directly */",
            "#pragma omp parallel for schedule(static)",
            "for (int64_t nc = 0; nc < NI * C; ++nc) {",
            f"  const float* xc = {xp} + nc * H * W; const float* wc = {wp} + (nc % C) * KH * KW;",
            f"  float* yc = {yp} + nc * OH * OW;",
            "  for (int64_t oh = 0; oh < OH; ++oh) {",
            "    float* yr = yc + oh * OW;",
            "    for (int64_t ow = 0; ow < OW; ++ow) yr[ow] = 0.0f;",
            "    for (int64_t ki = 0; ki < KH; ++ki) {",
            f"      const int64_t h = oh * {sh} - {ph} + ki * {dh};",
            "      if (h < 0 || h >= H) continue;",
            "      const float* xr = xc + h * W;",
            "      for (int64_t kj = 0; kj < KW; ++kj) {",
            "        const float wv = wc[ki * KW + kj];",
            f"        const int64_t off = kj * {dw} - {pw};",
            f"        int64_t lo = off < 0 ? (-off + {sw} - 1) / {sw} : 0;",
            f"        int64_t hi = (W - 1 - off) < 0 ? 0 : (W - 1 - off) / {sw} + 1;",
            "        if (hi > OW) hi = OW;",
            "        #pragma omp simd",
            f"        for (int64_t ow = lo; ow < hi; ++ow) yr[ow] += wv * xr[ow * {sw} + off];",
            "      }",
            "    }",
            "  }",
            "}"]


def emit_pool(ctx: KernelContext, node: Node) -> list[str]:
    x, out = node.inputs[0], node.outputs[0]
    if not x.dtype.is_float:
        raise UnsupportedError(f"{ctx.where}: {node.op} over {x.dtype} is not supported by the cpu target")
    t = ctype(x.dtype, ctx.where)
    nsp = x.type.rank - 2
    (sh, sw), (dh, dw), (ph, pw, phe, pwe) = window_2d(node, nsp, ctx.where, "cpu", UnsupportedError)
    kernel = tuple(node.attrs["kernel"])
    KH, KW = (1, kernel[0]) if nsp == 1 else kernel
    H, W = spatial_hw(x.shape, nsp)
    OH, OW = spatial_hw(out.shape, nsp)
    d = ctx.d
    is_max = node.op == "max_pool"
    lines = [f"const int64_t NC = {d(x.shape[0])} * {d(x.shape[1])}, H = {d(H)}, W = {d(W)}, "
             f"OH = {d(OH)}, OW = {d(OW)};",
             "#pragma omp parallel for schedule(static) if (NC * OH * OW > 16384)",
             "for (int64_t nc = 0; nc < NC; ++nc) {",
             f"  const {t}* xc = {ctx.ptr(x)} + nc * H * W; {t}* yc = {ctx.ptr(out)} + nc * OH * OW;",
             "  for (int64_t oh = 0; oh < OH; ++oh)",
             "    for (int64_t ow = 0; ow < OW; ++ow) {",
             f"      {t} acc = {'-INFINITY' if is_max else '0'}; int64_t cnt = 0, cnt_pad = 0;",
             f"      for (int64_t ki = 0; ki < {KH}; ++ki) {{",
             f"        const int64_t h = oh * {sh} - {ph} + ki * {dh};",
             f"        for (int64_t kj = 0; kj < {KW}; ++kj) {{",
             f"          const int64_t w = ow * {sw} - {pw} + kj * {dw};",
             f"          if (h >= -{ph} && h < H + {phe} && w >= -{pw} && w < W + {pwe}) ++cnt_pad;",
             "          if (h < 0 || h >= H || w < 0 || w >= W) continue;",
             f"          const {t} v = xc[h * W + w]; ++cnt;"]
    if is_max:
        lines.append("          acc = (v > acc || v != v) ? v : acc;")
    else:
        lines.append("          acc += v;")
    lines += ["        }", "      }"]
    if is_max:
        lines.append("      (void)cnt; (void)cnt_pad; yc[oh * OW + ow] = acc;")
    else:
        div = "cnt_pad" if node.attrs["count_include_pad"] else "cnt"
        lines.append(f"      yc[oh * OW + ow] = acc / ({t})({div} > 0 ? {div} : 1);")
    lines += ["    }", "}"]
    return lines


def emit_lrn(ctx: KernelContext, node: Node) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    if x.dtype is not DType.f32:
        raise UnsupportedError(f"{ctx.where}: lrn over {x.dtype} is not supported by the cpu target (f32 is)")
    size = node.attrs["size"]
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    scale = literal(node.attrs["alpha"] / size, DType.f32)
    return [f"const int64_t NB = {ctx.d(x.shape[0])}, C = {ctx.d(x.shape[1])}, "
            f"P = {cnumel(x.shape[2:], ctx.where)};",
            "#pragma omp parallel for schedule(static) if (NB * C * P > 16384)",
            "for (int64_t nc = 0; nc < NB * C; ++nc) {",
            f"  const int64_t n = nc / C, c = nc % C, c0 = c - {lo} < 0 ? 0 : c - {lo}, "
            f"c1 = c + {hi} >= C ? C - 1 : c + {hi};",
            f"  float* yc = {ctx.ptr(y)} + nc * P; const float* xc = {ctx.ptr(x)} + nc * P;",
            "  for (int64_t p = 0; p < P; ++p) yc[p] = 0.0f;",
            "  for (int64_t cc = c0; cc <= c1; ++cc) {",
            f"    const float* xs = {ctx.ptr(x)} + (n * C + cc) * P;",
            "    #pragma omp simd",
            "    for (int64_t p = 0; p < P; ++p) yc[p] += xs[p] * xs[p];",
            "  }",
            "  #pragma omp simd",
            f"  for (int64_t p = 0; p < P; ++p) yc[p] = xc[p] / powf({literal(node.attrs['bias'], DType.f32)} + "
            f"{scale} * yc[p], {literal(node.attrs['beta'], DType.f32)});",
            "}"]


# ---------------------------------------------------------------- data movement

def _copy(dst: str, dst_strides, src: str, src_strides, shape, es: int, where: str, tag: str) -> list[str]:
    return ["{",
            "  " + _arr(f"sh{tag}", shape, where),
            "  " + _arr(f"ds{tag}", dst_strides, where),
            "  " + _arr(f"ss{tag}", src_strides, where),
            f"  lep_copy((char*)({dst}), ds{tag}, (const char*)({src}), ss{tag}, sh{tag}, {len(shape)}, {es});",
            "}"]


def emit_transpose(ctx: KernelContext, node: Node) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    cs = contiguous_strides(x.shape)
    return _copy(ctx.ptr(y), contiguous_strides(y.shape), ctx.ptr(x), [cs[p] for p in node.attrs["perm"]],
                 y.shape, _es(y), ctx.where, "")


def emit_broadcast_to(ctx: KernelContext, node: Node) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    rank = y.type.rank
    xs = (1,) * (rank - x.type.rank) + tuple(x.shape)
    cs = [0] * (rank - x.type.rank) + contiguous_strides(x.shape)
    ss = [0 if xs[i] == 1 and not D.same(y.shape[i], 1) else cs[i] for i in range(rank)]
    return _copy(ctx.ptr(y), contiguous_strides(y.shape), ctx.ptr(x), ss, y.shape, _es(y), ctx.where, "")


def emit_slice(ctx: KernelContext, node: Node) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    rank = x.type.rank
    cs = contiguous_strides(x.shape)
    lines = ["int64_t soff = 0;"]
    steps = {a % rank: (s, e, st) for s, e, a, st in zip(node.attrs["starts"], node.attrs["ends"],
                                                           node.attrs["axes"], node.attrs["steps"])}
    counts, strides = [], []
    for a in range(rank):
        if a in steps:
            s, e, st = steps[a]
            s, e = max(min(s, 2**62), -2**62), max(min(e, 2**62), -2**62)
            lines.append(f"int64_t f{a}; const int64_t n{a} = lep_slice({ctx.d(x.shape[a])}, {s}LL, {e}LL, {st}LL, "
                         f"&f{a}); soff += f{a} * {ctx.d(cs[a])};")
            counts.append(f"n{a}")
            strides.append(D.mul(cs[a], st))
        else:
            counts.append(ctx.d(x.shape[a]))
            strides.append(cs[a])
    dst = contiguous_strides(y.shape)
    lines += ["{",
              f"  const int64_t shs[] = {{{', '.join(counts) or '0'}}};",
              "  " + _arr("dss", dst, ctx.where),
              "  " + _arr("sss", strides, ctx.where),
              f"  lep_copy((char*){ctx.ptr(y)}, dss, (const char*)({ctx.ptr(x)} + soff), sss, shs, {rank}, {_es(y)});",
              "}"]
    return lines


def emit_concat(ctx: KernelContext, node: Node) -> list[str]:
    y = node.outputs[0]
    axis = node.attrs["axis"] % y.type.rank
    ys = contiguous_strides(y.shape)
    lines, offset = [], 0
    for i, x in enumerate(node.inputs):
        lines += _copy(f"{ctx.ptr(y)} + {ctx.d(D.mul(offset, ys[axis]))}", ys, ctx.ptr(x),
                       contiguous_strides(x.shape), x.shape, _es(y), ctx.where, str(i))
        offset = D.add(offset, x.shape[axis])
    return lines


def emit_split(ctx: KernelContext, node: Node) -> list[str]:
    x = node.inputs[0]
    axis = node.attrs["axis"] % x.type.rank
    xs = contiguous_strides(x.shape)
    lines, offset = [], 0
    for i, y in enumerate(node.outputs):
        if id(y) in ctx.names:
            lines += _copy(ctx.ptr(y), contiguous_strides(y.shape), f"{ctx.ptr(x)} + {ctx.d(D.mul(offset, xs[axis]))}",
                           xs, y.shape, _es(y), ctx.where, str(i))
        offset = D.add(offset, y.shape[axis])
    return lines


def emit_pad(ctx: KernelContext, node: Node) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    if node.attrs["mode"] != "constant":
        raise UnsupportedError(f"{ctx.where}: pad mode {node.attrs['mode']!r} is not supported by the cpu target "
                               "(constant is)")
    rank = x.type.rank
    pads = node.attrs["pads"]
    ctype(y.dtype, ctx.where)  # rejects a dtype the target lacks
    ys, xs = contiguous_strides(y.shape), contiguous_strides(x.shape)
    dst_off, src_off, shape = 0, 0, []
    for a in range(rank):
        b, e = pads[a], pads[a + rank]
        dst_off = D.add(dst_off, D.mul(max(b, 0), ys[a]))
        src_off = D.add(src_off, D.mul(max(-b, 0), xs[a]))
        shape.append(D.sub(x.shape[a], max(-b, 0) + max(-e, 0)))
    lines = [f"const int64_t total = {cnumel(y.shape, ctx.where)};",
             "#pragma omp parallel for simd schedule(static) if (total > 65536)",
             f"for (int64_t i = 0; i < total; ++i) {ctx.ptr(y)}[i] = {literal(node.attrs['value'], y.dtype)};"]
    lines += _copy(f"{ctx.ptr(y)} + {ctx.d(dst_off)}", ys, f"{ctx.ptr(x)} + {ctx.d(src_off)}", xs, shape,
                   _es(y), ctx.where, "")
    return lines


def emit_gather(ctx: KernelContext, node: Node) -> list[str]:
    x, idx, y = node.inputs[0], node.inputs[1], node.outputs[0]
    axis = node.attrs["axis"] % x.type.rank
    d = ctx.d
    es = _es(y)
    return [f"const int64_t OUTER = {cnumel(x.shape[:axis], ctx.where)}, AX = {d(x.shape[axis])}, "
            f"INNER = {cnumel(x.shape[axis + 1:], ctx.where)}, NI = {cnumel(idx.shape, ctx.where)};",
            "#pragma omp parallel for schedule(static) if (OUTER * NI * INNER > 65536)",
            "for (int64_t o = 0; o < OUTER * NI; ++o) {",
            f"  int64_t i = (int64_t){ctx.ptr(idx)}[o % NI]; if (i < 0) i += AX;",
            "  if (i < 0 || i >= AX) i = 0;  /* out of range reads row 0 rather than stray memory */",
            f"  memcpy((char*){ctx.ptr(y)} + o * INNER * {es}, (const char*){ctx.ptr(x)} + "
            f"((o / NI) * AX + i) * INNER * {es}, (size_t)(INNER * {es}));",
            "}"]


def emit_gather_elements(ctx: KernelContext, node: Node) -> list[str]:
    x, idx, y = node.inputs[0], node.inputs[1], node.outputs[0]
    rank = x.type.rank
    axis = node.attrs["axis"] % rank
    return ["{",
            "  " + _arr("osh", idx.shape, ctx.where),
            "  " + _arr("xst", contiguous_strides(x.shape), ctx.where),
            f"  const int64_t total = {cnumel(idx.shape, ctx.where)}, AX = {ctx.d(x.shape[axis])};",
            "  #pragma omp parallel for schedule(static) if (total > 65536)",
            "  for (int64_t t = 0; t < total; ++t) {",
            "    int64_t rem = t, off = 0;",
            f"    for (int a = {rank - 1}; a >= 0; --a) {{",
            "      int64_t i = rem % osh[a]; rem /= osh[a];",
            f"      if (a == {axis}) {{ i = (int64_t){ctx.ptr(idx)}[t]; if (i < 0) i += AX; "
            "if (i < 0 || i >= AX) i = 0; }",
            "      off += i * xst[a];",
            "    }",
            f"    {ctx.ptr(y)}[t] = {ctx.ptr(x)}[off];",
            "  }",
            "}"]


def emit_gather_nd(ctx: KernelContext, node: Node) -> list[str]:
    x, idx, y = node.inputs[0], node.inputs[1], node.outputs[0]
    b = node.attrs["batch_dims"]
    k = idx.shape[-1]
    es = _es(y)
    lines = [f"const int64_t NB = {cnumel(x.shape[:b], ctx.where)}, NI = {cnumel(idx.shape[b:-1], ctx.where)}, "
             f"INNER = {cnumel(x.shape[b + k:], ctx.where)}, XB = {cnumel(x.shape[b:], ctx.where)};",
             "  " + _arr("xd", x.shape[b:b + k], ctx.where),
             "  " + _arr("xs", [D.product(x.shape[b + j + 1:]) for j in range(k)], ctx.where),
             "#pragma omp parallel for schedule(static) if (NB * NI * INNER > 65536)",
             "for (int64_t t = 0; t < NB * NI; ++t) {",
             "  int64_t off = (t / NI) * XB;",
             f"  for (int j = 0; j < {k}; ++j) {{",
             f"    int64_t i = (int64_t){ctx.ptr(idx)}[t * {k} + j]; if (i < 0) i += xd[j];",
             "    if (i < 0 || i >= xd[j]) i = 0;  /* out of range reads index 0 rather than stray memory */",
             "    off += i * xs[j];",
             "  }",
             f"  memcpy((char*){ctx.ptr(y)} + t * INNER * {es}, (const char*){ctx.ptr(x)} + off * {es}, "
             f"(size_t)(INNER * {es}));",
             "}"]
    return lines


def emit_tile(ctx: KernelContext, node: Node) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    rank = x.type.rank
    return ["{",
            "  " + _arr("ysh", y.shape, ctx.where),
            "  " + _arr("xsh", x.shape, ctx.where),
            "  " + _arr("xst", contiguous_strides(x.shape), ctx.where),
            f"  const int64_t total = {cnumel(y.shape, ctx.where)};",
            "  #pragma omp parallel for schedule(static) if (total > 65536)",
            "  for (int64_t t = 0; t < total; ++t) {",
            "    int64_t rem = t, off = 0;",
            f"    for (int a = {rank - 1}; a >= 0; --a) {{ off += (rem % ysh[a]) % xsh[a] * xst[a]; rem /= ysh[a]; }}",
            f"    {ctx.ptr(y)}[t] = {ctx.ptr(x)}[off];",
            "  }",
            "}"]


def emit_full(ctx: KernelContext, node: Node) -> list[str]:
    y = node.outputs[0]
    return [f"const int64_t total = {cnumel(y.shape, ctx.where)};",
            "#pragma omp parallel for simd schedule(static) if (total > 65536)",
            f"for (int64_t i = 0; i < total; ++i) {ctx.ptr(y)}[i] = {literal(node.attrs['value'], y.dtype)};"]


def emit_shape_of(ctx: KernelContext, node: Node) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    dims = x.shape[slice(node.attrs["start"], node.attrs["end"])]
    return [f"{ctx.ptr(y)}[{i}] = {ctx.d(dim)};" for i, dim in enumerate(dims)]


def emit_cumsum(ctx: KernelContext, node: Node) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    axis = node.attrs["axis"] % x.type.rank
    t = ctype(y.dtype, ctx.where)
    step = "-1" if node.attrs["reverse"] else "1"
    return [f"const int64_t OUTER = {cnumel(x.shape[:axis], ctx.where)}, AX = {ctx.d(x.shape[axis])}, "
            f"INNER = {cnumel(x.shape[axis + 1:], ctx.where)};",
            "#pragma omp parallel for schedule(static) if (OUTER * AX * INNER > 65536)",
            "for (int64_t oi = 0; oi < OUTER * INNER; ++oi) {",
            "  const int64_t base = (oi / INNER) * AX * INNER + oi % INNER;",
            f"  {t} acc = 0;",
            "  for (int64_t s = 0; s < AX; ++s) {",
            f"    const int64_t a = {step} > 0 ? s : AX - 1 - s;",
            f"    const {t} v = {ctx.ptr(x)}[base + a * INNER];",
            (f"    {ctx.ptr(y)}[base + a * INNER] = acc; acc += v;" if node.attrs["exclusive"] else
             f"    acc += v; {ctx.ptr(y)}[base + a * INNER] = acc;"),
            "  }",
            "}"]


def _es(v: Value) -> int:
    return int(v.dtype.itemsize)


EMITTERS = {
    "conv": emit_conv, "lrn": emit_lrn, "max_pool": emit_pool, "avg_pool": emit_pool, "transpose": emit_transpose,
    "broadcast_to": emit_broadcast_to, "slice": emit_slice, "concat": emit_concat, "split": emit_split,
    "pad": emit_pad, "gather": emit_gather,
    "gather_elements": emit_gather_elements, "tile": emit_tile,
    "gather_nd": emit_gather_nd, "full": emit_full, "shape_of": emit_shape_of, "cumsum": emit_cumsum,
}
