"""C bodies of the kernels that are not plain loops: local response normalization and data movement
(transpose, slice, concat, split, pad, gather, ...); matmul (matmul.py), convolution and pooling (conv.py)
have their own modules.

Each emitter gets the node, a map from values to the C pointer names the
kernel function receives, and returns C statements. Dims are C expressions of
the symbol variables, so one library serves every size.
"""
from __future__ import annotations

from ...ir import dims as D
from ...ir.dtypes import DType
from ...ir.graph import Graph, Node, Value
from ..kernel_body import SCANS, pad_constant, pad_source_index, trilu_keeps
from .cexpr import C, UnsupportedError, c_itemsize, cdim, cnumel, ctype, elementwise_expr, literal


def _arr(name: str, items, where: str) -> str:
    vals = ", ".join(cdim(x, where) for x in items) or "0"
    return f"const int64_t {name}[] = {{{vals}}};"


class KernelContext:
    """What an emitter needs: the graph, pointer names of values, a place to report scratch needs, and the
    tile epilogue of the kernel's fused ops (`epilogue`: its C function name, when the kernel has fused ops;
    `fused`: those ops, in order). An emitter that computes the fused ops itself sets `fused_done`."""

    def __init__(self, graph: Graph, names: dict[int, str], where: str, epilogue: str | None = None,
                 fused: list[Node] = ()):
        self.graph, self.names, self.where = graph, names, where
        self.scratch_bytes = None  # a dim expression, when the kernel needs scratch memory
        self.epilogue = epilogue
        self.epilogue_used = False
        self.fused = list(fused)
        self.fused_done = False
        self.checks_indices = False

    def index_fault(self) -> str:
        """The C pointer to the run's index error record (prelude.h's lep_index_error), which a kernel that reads
        positions from a tensor fills, with lep_index_fault, for an index out of range."""
        self.checks_indices = True
        return "err"

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


# ---------------------------------------------------------------- local response normalization

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
    blocks = swapped_blocks(x.shape, node.attrs["perm"])
    if blocks is not None and _es(y) in (1, 2, 4, 8):  # [B, R, S] -> [B, S, R]: a tiled transpose
        B, R, S = (cnumel(b, ctx.where) for b in blocks)
        return [f"lep_transpose_2d((char*){ctx.ptr(y)}, (const char*){ctx.ptr(x)}, {B}, {R}, {S}, {_es(y)});"]
    cs = D.contiguous_strides(x.shape)
    return _copy(ctx.ptr(y), D.contiguous_strides(y.shape), ctx.ptr(x), [cs[p] for p in node.attrs["perm"]],
                 y.shape, _es(y), ctx.where, "")


def swapped_blocks(shape, perm) -> tuple[list, list, list] | None:
    """(B, R, S) dims when transposing `shape` by `perm` moves the same data as [B, R, S] -> [B, S, R] (after
    dropping dims of size 1 and merging dims that stay neighbors), else None."""
    kept = [a for a in perm if not D.same(shape[a], 1)]
    rank = {a: i for i, a in enumerate(sorted(kept))}  # neighbors in memory once the unit dims are gone
    runs: list[list[int]] = []  # source axes, in output order, cut where the output stops following the source
    for a in kept:
        if runs and rank[a] == rank[runs[-1][-1]] + 1:
            runs[-1].append(a)
        else:
            runs.append([a])
    order = sorted(range(len(runs)), key=lambda i: runs[i][0])  # the runs in source order
    dims = [[shape[a] for a in runs[i]] for i in order]
    if order == [1, 0]:
        return [], dims[0], dims[1]
    if order == [0, 2, 1]:
        return dims[0], dims[1], dims[2]
    return None


def emit_broadcast_to(ctx: KernelContext, node: Node) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    rank = y.type.rank
    xs = (1,) * (rank - x.type.rank) + tuple(x.shape)
    cs = [0] * (rank - x.type.rank) + D.contiguous_strides(x.shape)
    ss = [0 if xs[i] == 1 and not D.same(y.shape[i], 1) else cs[i] for i in range(rank)]
    return _copy(ctx.ptr(y), D.contiguous_strides(y.shape), ctx.ptr(x), ss, y.shape, _es(y), ctx.where, "")


def emit_slice(ctx: KernelContext, node: Node) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    rank = x.type.rank
    cs = D.contiguous_strides(x.shape)
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
    dst = D.contiguous_strides(y.shape)
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
    ys = D.contiguous_strides(y.shape)
    lines, offset = [], 0
    for i, x in enumerate(node.inputs):
        lines += _copy(f"{ctx.ptr(y)} + {ctx.d(D.mul(offset, ys[axis]))}", ys, ctx.ptr(x),
                       D.contiguous_strides(x.shape), x.shape, _es(y), ctx.where, str(i))
        offset = D.add(offset, x.shape[axis])
    return lines


def emit_split(ctx: KernelContext, node: Node) -> list[str]:
    x = node.inputs[0]
    axis = node.attrs["axis"] % x.type.rank
    xs = D.contiguous_strides(x.shape)
    lines, offset = [], 0
    for i, y in enumerate(node.outputs):
        if id(y) in ctx.names:
            lines += _copy(ctx.ptr(y), D.contiguous_strides(y.shape),
                           f"{ctx.ptr(x)} + {ctx.d(D.mul(offset, xs[axis]))}", xs, y.shape, _es(y), ctx.where, str(i))
        offset = D.add(offset, y.shape[axis])
    return lines


def emit_pad(ctx: KernelContext, node: Node) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    if node.attrs["mode"] != "constant":
        return _emit_pad_mode(ctx, node)
    value = pad_constant(C, node, ctx.where)
    rank = x.type.rank
    pads = node.attrs["pads"]
    ctype(y.dtype, ctx.where)  # rejects a dtype the target lacks
    ys, xs = D.contiguous_strides(y.shape), D.contiguous_strides(x.shape)
    dst_off, src_off, shape = 0, 0, []
    for a in range(rank):
        b, e = pads[a], pads[a + rank]
        dst_off = D.add(dst_off, D.mul(max(b, 0), ys[a]))
        src_off = D.add(src_off, D.mul(max(-b, 0), xs[a]))
        shape.append(D.sub(x.shape[a], max(-b, 0) + max(-e, 0)))
    lines = [f"const int64_t total = {cnumel(y.shape, ctx.where)};",
             "#pragma omp parallel for simd schedule(static) if (total > 65536)",
             f"for (int64_t i = 0; i < total; ++i) {ctx.ptr(y)}[i] = {value};"]
    lines += _copy(f"{ctx.ptr(y)} + {ctx.d(dst_off)}", ys, f"{ctx.ptr(x)} + {ctx.d(src_off)}", xs, shape,
                   _es(y), ctx.where, "")
    return lines


def _emit_pad_mode(ctx: KernelContext, node: Node) -> list[str]:
    """Pad modes edge, reflect and wrap: each result element reads the position the mode's index function
    (kernel_body.pad_source_index) gives on each axis of the cropped operand. An axis of run-time size that
    keeps no element has nothing to repeat: an index error, as numpy.pad's."""
    x, y = node.inputs[0], node.outputs[0]
    rank, pads = x.type.rank, node.attrs["pads"]
    ctype(y.dtype, ctx.where)
    xs = D.contiguous_strides(x.shape)
    lines = []
    for a in range(rank):
        kept = D.sub(x.shape[a], max(-pads[a], 0) + max(-pads[a + rank], 0))
        if max(pads[a], pads[a + rank]) > 0 and not isinstance(kept, int):
            lines.append(f"if ({ctx.d(kept)} <= 0) {{ lep_index_fault({ctx.index_fault()}, 0, 0, {a}, "
                         f"{ctx.d(kept)}); return; }}")
    lines += [f"const int64_t total = {cnumel(y.shape, ctx.where)};",
             "#pragma omp parallel for schedule(static) if (total > 65536)",
             "for (int64_t t = 0; t < total; ++t) {",
             "  int64_t rem = t, off = 0;"]
    for a in reversed(range(rank)):
        b, e = pads[a], pads[a + rank]
        lines.append(f"  {{ const int64_t i = rem % {ctx.d(y.shape[a])}; rem /= {ctx.d(y.shape[a])};")
        if max(b, e) > 0:
            src = pad_source_index(C, node.attrs["mode"], "j", D.sub(x.shape[a], max(-b, 0) + max(-e, 0)))
            lines.append(f"    const int64_t j = i - {max(b, 0)}; off += ({max(-b, 0)} + {src}) * {ctx.d(xs[a])}; }}")
        else:
            lines.append(f"    off += (i + {max(-b, 0)}) * {ctx.d(xs[a])}; }}")
    return lines + [f"  {ctx.ptr(y)}[t] = {ctx.ptr(x)}[off];", "}"]


def emit_gather(ctx: KernelContext, node: Node) -> list[str]:
    x, idx, y = node.inputs[0], node.inputs[1], node.outputs[0]
    axis = node.attrs["axis"] % x.type.rank
    d = ctx.d
    es = _es(y)
    return [f"const int64_t OUTER = {cnumel(x.shape[:axis], ctx.where)}, AX = {d(x.shape[axis])}, "
            f"INNER = {cnumel(x.shape[axis + 1:], ctx.where)}, NI = {cnumel(idx.shape, ctx.where)};",
            "#pragma omp parallel for schedule(static) if (OUTER * NI * INNER > 65536)",
            "for (int64_t o = 0; o < OUTER * NI; ++o) {",
            f"  const int64_t v = (int64_t){ctx.ptr(idx)}[o % NI], i = v < 0 ? v + AX : v;",
            f"  if (i < 0 || i >= AX) {{ lep_index_fault({ctx.index_fault()}, o % NI, v, {axis}, AX); continue; }}",
            f"  memcpy((char*){ctx.ptr(y)} + o * INNER * {es}, (const char*){ctx.ptr(x)} + "
            f"((o / NI) * AX + i) * INNER * {es}, (size_t)(INNER * {es}));",
            "}"]


def emit_gather_elements(ctx: KernelContext, node: Node) -> list[str]:
    x, idx, y = node.inputs[0], node.inputs[1], node.outputs[0]
    rank = x.type.rank
    axis = node.attrs["axis"] % rank
    return ["{",
            "  " + _arr("osh", idx.shape, ctx.where),
            "  " + _arr("xst", D.contiguous_strides(x.shape), ctx.where),
            f"  const int64_t total = {cnumel(idx.shape, ctx.where)}, AX = {ctx.d(x.shape[axis])};",
            "  #pragma omp parallel for schedule(static) if (total > 65536)",
            "  for (int64_t t = 0; t < total; ++t) {",
            f"    const int64_t v = (int64_t){ctx.ptr(idx)}[t], i = v < 0 ? v + AX : v;",
            f"    if (i < 0 || i >= AX) {{ lep_index_fault({ctx.index_fault()}, t, v, {axis}, AX); continue; }}",
            "    int64_t rem = t, off = 0;",
            f"    for (int a = {rank - 1}; a >= 0; --a) {{",
            f"      off += (a == {axis} ? i : rem % osh[a]) * xst[a]; rem /= osh[a];",
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
             "  int64_t off = (t / NI) * XB, j = 0;",
             f"  for (; j < {k}; ++j) {{",
             f"    const int64_t v = (int64_t){ctx.ptr(idx)}[t * {k} + j], i = v < 0 ? v + xd[j] : v;",
             f"    if (i < 0 || i >= xd[j]) {{ lep_index_fault({ctx.index_fault()}, t * {k} + j, v, {b} + j, xd[j]); "
             "break; }",
             "    off += i * xs[j];",
             "  }",
             f"  if (j == {k}) memcpy((char*){ctx.ptr(y)} + t * INNER * {es}, (const char*){ctx.ptr(x)} + off * {es}, "
             f"(size_t)(INNER * {es}));",
             "}"]
    return lines


_SCATTER_OPS = {"add": "add", "mul": "mul", "max": "max", "min": "min"}


def _scatter_start(ctx: KernelContext, node: Node) -> tuple[list[str], str]:
    """The copy of the data into the result that a scatter starts from, and the combine of its reduction as a
    function of (the element there, the update) in C, with the reference's semantics (max and min propagate
    NaN; add and mul of bools are or and and)."""
    x, y = node.inputs[0], node.outputs[0]
    reduction = node.attrs["reduction"]
    if reduction == "none":
        combine = "{u}"
    else:
        combine = elementwise_expr(_SCATTER_OPS[reduction], {}, ["{old}", "{u}"], [y.dtype, y.dtype], y.dtype)
    copy = [f"if ((const void*){ctx.ptr(y)} != (const void*){ctx.ptr(x)}) memcpy({ctx.ptr(y)}, {ctx.ptr(x)}, "
            f"(size_t)({cnumel(x.shape, ctx.where)} * {_es(y)}));"]
    return copy, combine


def emit_scatter_elements(ctx: KernelContext, node: Node) -> list[str]:
    """One thread, in index order: repeated positions combine (or overwrite) in the reference's order."""
    x, idx, upd, y = node.inputs[0], node.inputs[1], node.inputs[2], node.outputs[0]
    rank = x.type.rank
    axis = node.attrs["axis"] % rank
    lines, combine = _scatter_start(ctx, node)
    at = f"{ctx.ptr(y)}[off]"
    return lines + ["{",
                    "  " + _arr("ish", idx.shape, ctx.where),
                    "  " + _arr("xst", D.contiguous_strides(x.shape), ctx.where),
                    f"  const int64_t total = {cnumel(idx.shape, ctx.where)}, AX = {ctx.d(x.shape[axis])};",
                    "  for (int64_t t = 0; t < total; ++t) {",
                    f"    const int64_t v = (int64_t){ctx.ptr(idx)}[t], i = v < 0 ? v + AX : v;",
                    f"    if (i < 0 || i >= AX) {{ lep_index_fault({ctx.index_fault()}, t, v, {axis}, AX); break; }}",
                    "    int64_t rem = t, off = 0;",
                    f"    for (int a = {rank - 1}; a >= 0; --a) {{",
                    f"      off += (a == {axis} ? i : rem % ish[a]) * xst[a]; rem /= ish[a];",
                    "    }",
                    f"    {at} = {combine.format(old=at, u=f'{ctx.ptr(upd)}[t]')};",
                    "  }",
                    "}"]


def emit_scatter_nd(ctx: KernelContext, node: Node) -> list[str]:
    """One thread, in index order (as scatter_elements); each index tuple addresses a block of INNER elements."""
    x, idx, upd, y = node.inputs[0], node.inputs[1], node.inputs[2], node.outputs[0]
    k = idx.shape[-1]
    lines, combine = _scatter_start(ctx, node)
    at = f"{ctx.ptr(y)}[off + e]"
    return lines + ["{",
                    f"  const int64_t NI = {cnumel(idx.shape[:-1], ctx.where)}, "
                    f"INNER = {cnumel(x.shape[k:], ctx.where)};",
                    "  " + _arr("xd", x.shape[:k], ctx.where),
                    "  " + _arr("xs", [D.product(x.shape[j + 1:]) for j in range(k)], ctx.where),
                    "  int bad = 0;",
                    "  for (int64_t t = 0; t < NI && !bad; ++t) {",
                    "    int64_t off = 0;",
                    f"    for (int64_t j = 0; j < {k}; ++j) {{",
                    f"      const int64_t v = (int64_t){ctx.ptr(idx)}[t * {k} + j], i = v < 0 ? v + xd[j] : v;",
                    f"      if (i < 0 || i >= xd[j]) {{ lep_index_fault({ctx.index_fault()}, t * {k} + j, v, j, xd[j]); "
                    "bad = 1; break; }",
                    "      off += i * xs[j];",
                    "    }",
                    "    if (bad) break;",
                    "    for (int64_t e = 0; e < INNER; ++e) "
                    f"{at} = {combine.format(old=at, u=f'{ctx.ptr(upd)}[t * INNER + e]')};",
                    "  }",
                    "}"]


def emit_tile(ctx: KernelContext, node: Node) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    rank = x.type.rank
    return ["{",
            "  " + _arr("ysh", y.shape, ctx.where),
            "  " + _arr("xsh", x.shape, ctx.where),
            "  " + _arr("xst", D.contiguous_strides(x.shape), ctx.where),
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


def emit_scan(ctx: KernelContext, node: Node) -> list[str]:
    """cumsum and cumprod: one thread per line along the axis, the running value in a register."""
    x, y = node.inputs[0], node.outputs[0]
    axis = node.attrs["axis"] % x.type.rank
    t = ctype(y.dtype, ctx.where)
    combine, start = SCANS[node.op]
    step = elementwise_expr(combine, {}, ["acc", "v"], [y.dtype, y.dtype], y.dtype)
    return [f"const int64_t OUTER = {cnumel(x.shape[:axis], ctx.where)}, AX = {ctx.d(x.shape[axis])}, "
            f"INNER = {cnumel(x.shape[axis + 1:], ctx.where)};",
            "#pragma omp parallel for schedule(static) if (OUTER * AX * INNER > 65536)",
            "for (int64_t oi = 0; oi < OUTER * INNER; ++oi) {",
            "  const int64_t base = (oi / INNER) * AX * INNER + oi % INNER;",
            f"  {t} acc = {literal(start, y.dtype)};",
            "  for (int64_t s = 0; s < AX; ++s) {",
            f"    const int64_t a = {'AX - 1 - s' if node.attrs['reverse'] else 's'};",
            f"    const {t} v = {ctx.ptr(x)}[base + a * INNER];",
            (f"    {ctx.ptr(y)}[base + a * INNER] = acc; acc = {step};" if node.attrs["exclusive"] else
             f"    acc = {step}; {ctx.ptr(y)}[base + a * INNER] = acc;"),
            "  }",
            "}"]


def emit_trilu(ctx: KernelContext, node: Node) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    diagonal = f"(int64_t){ctx.ptr(node.inputs[1])}[0]" if len(node.inputs) > 1 else str(node.attrs["diagonal"])
    keep = trilu_keeps(C, "i", "jj", "kk", node.attrs["upper"])
    return [f"const int64_t R = {ctx.d(x.shape[-2])}, NC = {ctx.d(x.shape[-1])}, "
            f"total = {cnumel(x.shape, ctx.where)}, kk = {diagonal};",
            "#pragma omp parallel for schedule(static) if (total > 65536)",
            "for (int64_t t = 0; t < total; ++t) {",
            "  const int64_t jj = t % NC, i = t / NC % R;",
            f"  {ctx.ptr(y)}[t] = {keep} ? {ctx.ptr(x)}[t] : {literal(0, y.dtype)};",
            "}"]


def _topk_before(dtype: DType, largest: bool, a: str, b: str, branchless: bool = False) -> str:
    """Whether element a comes before element b in topk's order (the reference sorts stably by -x for the
    largest, by x for the smallest, NaN last; the negation wraps for signed integers). `branchless` spells it
    with bitwise operators, for a loop that should vectorize."""
    if dtype.is_float:
        either, both = ("|", "&") if branchless else ("||", "&&")
        return f"((({a}) {'>' if largest else '<'} ({b})) {either} ((({b}) != ({b})) {both} (({a}) == ({a}))))"
    if largest and dtype.is_signed:
        return C.compare("<", C.negate(a, dtype), C.negate(b, dtype))
    return C.compare(">" if largest else "<", a, b)


_INSERTION_K = 256  # insertion costs up to n * k per line (a line in reverse order); merge sort n log n


def emit_topk(ctx: KernelContext, node: Node) -> list[str]:
    """Per line along the axis, the first k positions of a stable sort: insertion into the k best (most
    elements fail the test against the k-th best) up to _INSERTION_K, else a bottom-up merge sort of the line."""
    x, (values, indices) = node.inputs[0], node.outputs
    if x.dtype is DType.bool:
        raise UnsupportedError(f"{ctx.where}: topk over bool is not supported by the cpu target (the reference "
                               "refuses it too)")
    t = ctype(x.dtype, ctx.where)
    axis, k = node.attrs["axis"] % x.type.rank, node.attrs["k"]

    def before(a: str, b: str) -> str:
        return _topk_before(x.dtype, node.attrs["largest"], f"xl[({a}) * INNER]", f"xl[({b}) * INNER]")

    if k <= _INSERTION_K:
        worst = _topk_before(x.dtype, node.attrs["largest"], "v", "worst")
        block = _topk_before(x.dtype, node.attrs["largest"], "xl[b * INNER]", "worst", branchless=True)
        select = ["    int64_t n = 0;",
                  f"    {t} worst = xl[0];",
                  "    for (int64_t i = 0; i < AX; ++i) {",
                  "      if (n == K && i % 16 == 0 && i + 16 <= AX) {  /* skip a block of 16 that holds none better */",
                  "        int any = 0;",
                  f"        for (int64_t b = i; b < i + 16; ++b) any |= {block};",
                  "        if (!any) { i += 15; continue; }",
                  "      }",
                  f"      const {t} v = xl[i * INNER];",
                  f"      if (n == K && !{worst}) continue;",
                  "      int64_t p = n < K ? n : K - 1;",
                  f"      while (p > 0 && {before('i', 'ord[p - 1]')}) {{ ord[p] = ord[p - 1]; --p; }}",
                  "      ord[p] = i; n += n < K;",
                  "      worst = xl[ord[n - 1] * INNER];",
                  "    }",
                  "    const int64_t* best = ord;"]
    else:
        select = ["    int64_t *a = ord, *b = ord + AX;",
                  "    for (int64_t i = 0; i < AX; ++i) a[i] = i;",
                  "    for (int64_t w = 1; w < AX; w *= 2) {",
                  "      for (int64_t lo = 0; lo < AX; lo += 2 * w) {",
                  "        const int64_t mid = lo + w < AX ? lo + w : AX, hi = lo + 2 * w < AX ? lo + 2 * w : AX;",
                  "        int64_t i = lo, j = mid, o = lo;",
                  f"        while (i < mid && j < hi) b[o++] = {before('a[j]', 'a[i]')} ? a[j++] : a[i++];",
                  "        while (i < mid) b[o++] = a[i++];",
                  "        while (j < hi) b[o++] = a[j++];",
                  "      }",
                  "      int64_t* swap = a; a = b; b = swap;",
                  "    }",
                  "    const int64_t* best = a;"]
    store = []
    if id(values) in ctx.names:
        store.append(f"{ctx.ptr(values)}[out + j * INNER] = xl[best[j] * INNER];")
    if id(indices) in ctx.names:
        store.append(f"{ctx.ptr(indices)}[out + j * INNER] = best[j];")
    head = [f"const int64_t OUTER = {cnumel(x.shape[:axis], ctx.where)}, AX = {ctx.d(x.shape[axis])}, "
            f"INNER = {cnumel(x.shape[axis + 1:], ctx.where)}, K = {k};",
            f"if (K > AX) {{ lep_index_fault({ctx.index_fault()}, 0, K, {axis}, AX); return; }}"
            if not isinstance(x.shape[axis], int) else "",  # k past a run-time axis: the reference's error
            "if (K > 0) {",
            "  #pragma omp parallel if (OUTER * INNER * AX > 16384)",
            "  {",
            f"  int64_t* ord = (int64_t*)lep_scratch((size_t)({'K' if k <= _INSERTION_K else '2 * AX'}) * "
            "sizeof(int64_t));",
            "  #pragma omp for schedule(static)",
            "  for (int64_t line = 0; line < OUTER * INNER; ++line) {",
            f"    const {t}* xl = {ctx.ptr(x)} + (line / INNER) * AX * INNER + line % INNER;",
            "    const int64_t out = (line / INNER) * K * INNER + line % INNER;"]
    return head + select + [f"    for (int64_t j = 0; j < K; ++j) {{ {' '.join(store)} }}",
                            "  }", "  free(ord);", "  }", "}"]


def emit_reverse_sequence(ctx: KernelContext, node: Node) -> list[str]:
    """out[b, t] = x[b, lens[b] - 1 - t] for t < lens[b], else x[b, t] (over batch and time axes; one length
    serves every batch entry, as the reference broadcasts it); a length past the time axis is an index error
    naming it, as the reference's read out of range is."""
    x, lens, y = node.inputs[0], node.inputs[1], node.outputs[0]
    rank = x.type.rank
    ba, ta = node.attrs["batch_axis"] % rank, node.attrs["time_axis"] % rank
    nb, nl = x.shape[ba], lens.shape[0]
    if isinstance(nb, int) and isinstance(nl, int) and nl not in (1, nb):
        raise UnsupportedError(f"{ctx.where}: reverse_sequence needs {nb} lengths (or one), got {nl}")
    return ["{",
            "  " + _arr("ysh", x.shape, ctx.where),
            "  " + _arr("xst", D.contiguous_strides(x.shape), ctx.where),
            f"  const int64_t total = {cnumel(x.shape, ctx.where)}, NB = {ctx.d(nb)}, NL = {ctx.d(nl)}, "
            f"T = {ctx.d(x.shape[ta])};",
            f"  if (NL != 1 && NL != NB) {{ lep_index_fault({ctx.index_fault()}, 0, NL, {ba}, NB); return; }}",
            "  for (int64_t b = 0; b < NL; ++b) {",
            f"    const int64_t v = (int64_t){ctx.ptr(lens)}[b];",
            f"    if (v > T) {{ lep_index_fault({ctx.index_fault()}, b, v, {ta}, T); return; }}",
            "  }",
            "  #pragma omp parallel for schedule(static) if (total > 65536)",
            "  for (int64_t t = 0; t < total; ++t) {",
            "    int64_t rem = t, off = 0, tb = 0, tt = 0;",
            f"    for (int a = {rank - 1}; a >= 0; --a) {{",
            "      const int64_t i = rem % ysh[a]; rem /= ysh[a];",
            f"      if (a == {ba}) tb = i;",
            f"      if (a == {ta}) tt = i; else off += i * xst[a];",
            "    }",
            f"    const int64_t len = (int64_t){ctx.ptr(lens)}[NL == 1 ? 0 : tb];",
            f"    {ctx.ptr(y)}[t] = {ctx.ptr(x)}[off + (tt < len ? len - 1 - tt : tt) * xst[{ta}]];",
            "  }",
            "}"]


def _es(v: Value) -> int:
    return c_itemsize(v.dtype)   # (a sub-byte type takes a byte: 0 copied nothing)


EMITTERS = {
    "lrn": emit_lrn, "transpose": emit_transpose,
    "broadcast_to": emit_broadcast_to, "slice": emit_slice, "concat": emit_concat, "split": emit_split,
    "pad": emit_pad, "gather": emit_gather,
    "gather_elements": emit_gather_elements, "tile": emit_tile,
    "gather_nd": emit_gather_nd, "scatter_elements": emit_scatter_elements, "scatter_nd": emit_scatter_nd,
    "full": emit_full, "shape_of": emit_shape_of, "cumsum": emit_scan,
    "cumprod": emit_scan, "trilu": emit_trilu, "topk": emit_topk, "reverse_sequence": emit_reverse_sequence,
}
