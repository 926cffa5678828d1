"""Triton source for each kind of kernel of the fusion plan, and the launcher that runs it.

Generated kernels use the core language only (tl.full rather than tl.zeros,
tl.reduce with the prelude's combine functions rather than tl.sum/tl.max):
Triton's standard-library helpers are themselves jit functions, which the
interpreter cannot call when triton was imported before TRITON_INTERPRET=1
was set (torch.export imports triton).

Every kernel becomes one `@triton.jit` function whose parameters are the
pointers of the values it reads (x0, x1, ...) and writes (y0, ...), the
graph's symbols (s_B, ...) and its block sizes (constexpr), plus a Python
launcher `launch_<name>(x0, ..., y0, ..., s_B, ...)` that picks the block
sizes for the run's sizes and launches the grid.

  loop    elementwise ops over a flat domain (BLOCK elements a program), or
          row kernels: one row of the trailing reduced axes a program, the
          whole row in registers (softmax, layer norm);
  matmul  tl.dot over (BLOCK_M, BLOCK_K) x (BLOCK_K, BLOCK_N) tiles, batch
          dims on the grid's third axis, absorbed transposes read as strides,
          the epilogue applied to the accumulator tile before the one store;
  conv    implicit GEMM: rows are output pixels, columns output channels,
          the reduction runs over input channels x window, groups on the
          grid's third axis, bias and epilogue on the accumulator tile;
  op      pooling, data movement (transpose, broadcast, slice, concat,
          split, pad, gather, full) as index maps over the output, topk
          (one line a program), and the image and signal ops (image.py,
          signal.py: resize, affine_grid, grid_sample, dft, stft).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .. import spatial_hw, window_2d
from ...ir import dims as D
from ...ir.dtypes import DType
from ...ir.graph import Graph, Node, Value
from ...ir.indices import indexed_dims, site
from ...passes.fusion import Kernel
from ...ir.dims import contiguous_strides
from ..kernel_body import SCANS, elementwise, pad_constant, pad_source_index, reduction_identity, trilu_keeps
from .image import affine_grid_body, grid_sample_body, resize_body
from .signal import dft_body, stft_body
from .texpr import TRITON, UnsupportedError, literal, symbol_var, tdim, tltype, tnumel
from .tiles import Space, TileEmitter, pad_left


@dataclass
class Emitted:
    """The parts of one kernel's source that differ between kinds."""

    body: list[str]                              # the jit function's statements
    constexprs: list[str]                        # its tl.constexpr parameters
    setup: list[str] = field(default_factory=list)   # launcher statements computing sizes and blocks
    grid: str = "(1,)"                            # the launcher's grid expression
    options: str = ""                             # extra launch keywords (num_warps=...)
    guard: str = ""                               # launcher returns early when this holds (empty domains)


class KernelContext:
    """What an emitter needs: the graph, the parameter name of each value, and where errors point."""

    def __init__(self, graph: Graph, names: dict[int, str], where: str):
        self.graph, self.names, self.where = graph, names, where
        self.index_check: dict | None = None

    def index_fault(self, node: Node, positions: str, indices: str, which: int = 0) -> str:
        """A statement that records, in the run's index error slot of this kernel (an int64 the runtime reads
        after the run, see runtime.IndexChecks), the lowest position in `positions` whose index of `indices`
        is out of range (ir/indices.py) for the node's `which`-th indexed dim; the emitter then keeps its
        loads in range."""
        x, idx = node.inputs[0], node.inputs[1]
        dims = indexed_dims(node.op, node.attrs, x.type.rank, idx.shape)
        self.index_check = {"where": site(node), "dims": list(dims), "sizes": [x.shape[d] for d in dims]}
        n = self.d(x.shape[dims[which]])
        bad = f"mask & (({indices} < -{n}) | ({indices} >= {n}))"
        return f"tl.atomic_min(err + 0 * ({positions}), ({positions}).to(tl.int64), mask={bad})"

    def ptr(self, v: Value) -> str:
        return self.names[id(v)]

    def d(self, dim) -> str:
        return tdim(dim, self.where)

    def numel(self, shape) -> str:
        return tnumel(shape, self.where)


# ---------------------------------------------------------------- loop kernels

def emit_loop(ctx: KernelContext, k: Kernel, values: dict | None = None) -> Emitted:
    body: list[str] = []
    rank = len(k.domain)
    space = Space(k.domain, body, ctx.where)
    if not k.reduce_rank:
        total = ctx.numel(k.domain)
        body += ["f = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)", f"mask = f < {total}"]
        space.unravel(range(rank), "f", True)
        space.flat, space.mask = "f", "mask"
        TileEmitter(ctx.graph, space, ctx.names, {}).emit(k.loop_nodes)
        return Emitted(body, ["BLOCK"], [f"total = {total}", "BLOCK = 1024"],
                       "(triton.cdiv(total, BLOCK),)", guard="total == 0")
    outer = rank - k.reduce_rank
    n = ctx.numel(k.domain[outer:])
    body += ["r = tl.program_id(0)", "j = tl.arange(0, BLOCK_N)", f"mask = j < {n}"]
    space.unravel(range(outer), "r", False)
    space.unravel(range(outer, rank), "j", True)
    space.flat, space.mask = f"r * {n} + j", "mask"
    TileEmitter(ctx.graph, space, ctx.names, {}, k.reduce_rank, n, "mask").emit(k.loop_nodes)
    return Emitted(body, ["BLOCK_N"], [f"rows = {ctx.numel(k.domain[:outer])}", f"BLOCK_N = row_block({n})"],
                   "(rows,)", guard="rows == 0")


# ---------------------------------------------------------------- matmul

def operand_view(v: Value, absorbed: list[Node]) -> tuple[Value, list, list]:
    """(value in memory, logical shape, logical element strides) of a matmul operand; a transpose the
    kernel absorbed is read through strides."""
    p = v.producer
    if p is not None and any(p is t for t in absorbed):
        src = p.inputs[0]
        cs = contiguous_strides(src.shape)
        return src, list(v.shape), [cs[i] for i in p.attrs["perm"]]
    return v, list(v.shape), contiguous_strides(v.shape)


def emit_matmul(ctx: KernelContext, k: Kernel) -> Emitted:
    node = k.nodes[0]
    a_val, a_shape, a_str = operand_view(node.inputs[0], k.absorbed)
    b_val, b_shape, b_str = operand_view(node.inputs[1], k.absorbed)
    out = node.outputs[0]
    if len(a_shape) < 2 or len(b_shape) < 2:
        raise UnsupportedError(f"{ctx.where}: matmul of a 1-D operand should have been reshaped by the fuse pass")
    if not out.dtype.is_float:
        raise UnsupportedError(f"{ctx.where}: matmul in {out.dtype} is not supported by the triton target "
                               "(floating-point types are)")
    d = ctx.d
    M, K, N = a_shape[-2], a_shape[-1], b_shape[-1]
    batch = tuple(out.shape[:-2])
    body = [f"M = {d(M)}", f"N = {d(N)}", f"K = {d(K)}",
            "rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)",
            "rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)",
            "rk = tl.arange(0, BLOCK_K)"]
    space = Space(out.shape, body, ctx.where)
    if batch:
        body.append("bid = tl.program_id(2)")
        space.unravel(range(len(batch)), "bid", False)
    space.define(len(batch), "rm[:, None]", True, axis=True)
    space.define(len(batch) + 1, "rn[None, :]", True, axis=True)
    a_off = _batch_offset(space, batch, a_shape, a_str)
    b_off = _batch_offset(space, batch, b_shape, b_str)
    a_tile = f"{_times('rm[:, None]', a_str[-2])} + {_times('rk[None, :]', a_str[-1])}"
    b_tile = f"{_times('rk[:, None]', b_str[-2])} + {_times('rn[None, :]', b_str[-1])}"
    body += [f"a_ptrs = {ctx.ptr(a_val)} + {a_off}{a_tile}",
             f"b_ptrs = {ctx.ptr(b_val)} + {b_off}{b_tile}",
             "acc = tl.full((BLOCK_M, BLOCK_N), 0.0, tl.float32)",
             "for k0 in range(0, K, BLOCK_K):",
             "    a = tl.load(a_ptrs, mask=(rm[:, None] < M) & (rk[None, :] + k0 < K), other=0.0)",
             "    b = tl.load(b_ptrs, mask=(rk[:, None] + k0 < K) & (rn[None, :] < N), other=0.0)",
             *("    " + line for line in widen_bf16("a", a_val) + widen_bf16("b", b_val)),
             "    acc += tl.dot(a, b, input_precision=PRECISION)",
             f"    a_ptrs += {_times('BLOCK_K', a_str[-1])}",
             f"    b_ptrs += {_times('BLOCK_K', b_str[-2])}",
             "mask = (rm[:, None] < M) & (rn[None, :] < N)"]
    space.flat = ("bid * M * N + " if batch else "") + "rm[:, None] * N + rn[None, :]"
    space.mask = "mask"
    _epilogue(ctx, k, space, body, "acc")
    setup = [f"M, N, K = {d(M)}, {d(N)}, {d(K)}",
             f"BLOCK_M, BLOCK_N, BLOCK_K, warps, stages = dot_blocks(M, N, K, {out.dtype.itemsize})"]
    grid = f"(triton.cdiv(M, BLOCK_M), triton.cdiv(N, BLOCK_N), {ctx.numel(batch)})" if batch else \
        "(triton.cdiv(M, BLOCK_M), triton.cdiv(N, BLOCK_N))"
    return Emitted(body, ["BLOCK_M", "BLOCK_N", "BLOCK_K", "PRECISION"], setup, grid,
                   "PRECISION=DOT_PRECISION, num_warps=warps, num_stages=stages", guard="M * N == 0")


def widen_bf16(tile: str, v: Value) -> list[str]:
    """Lines before a tl.dot that reads `tile`, holding v's values: a bf16 tile widened to f32 under the
    interpreter (WIDEN_BF16_DOT), which cannot multiply bf16 tiles; exact, as each product of two bf16 values
    is exact in f32."""
    if v.dtype is not DType.bf16:
        return []
    return ["if WIDEN_BF16_DOT:", f"    {tile} = {tile}.to(tl.float32)"]


def _times(index: str, stride) -> str:
    return index if D.same(stride, 1) else f"{index} * {tdim(stride)}"


def _batch_offset(space: Space, batch: tuple, shape, strides) -> str:
    """The offset of one operand's matrix for the program's batch index ('' for no batch)."""
    rank = len(batch)
    if not rank:
        return ""
    shp = pad_left(shape[:-2], rank)
    st = [0] * (rank - (len(shape) - 2)) + list(strides[:-2])
    terms = []
    for i in range(rank):
        if D.same(shp[i], 1):
            continue
        name, _ = space.index(i)
        terms.append(_times(name, st[i]))
    return "".join(t + " + " for t in terms)


def _epilogue(ctx: KernelContext, k: Kernel, space: Space, body: list[str], acc: str) -> None:
    """Cast the accumulator to the anchor's type, run the fused ops on it, store what is materialized."""
    anchor = k.nodes[0].outputs[0]
    body.append(f"v_anchor = {acc}.to({tltype(anchor.dtype, ctx.where)})")
    emitter = TileEmitter(ctx.graph, space, ctx.names, {id(anchor): "v_anchor"})
    if id(anchor) in ctx.names:
        body.append(space.store(ctx.ptr(anchor), anchor.shape, "v_anchor"))
    emitter.emit(k.loop_nodes)


# ---------------------------------------------------------------- convolution

def emit_conv(ctx: KernelContext, k: Kernel) -> Emitted:
    node = k.nodes[0]
    x, w = node.inputs[0], node.inputs[1]
    out = node.outputs[0]
    if not out.dtype.is_float:
        raise UnsupportedError(f"{ctx.where}: conv in {out.dtype} is not supported by the triton target")
    nsp = x.type.rank - 2
    (sh, sw), (dh, dw), (ph, pw, _, _) = window_2d(node, nsp, ctx.where, "triton", UnsupportedError)
    H, W = spatial_hw(x.shape, nsp)
    KH, KW = spatial_hw(w.shape, nsp)
    OH, OW = spatial_hw(out.shape, nsp)
    g = node.attrs["group"]
    d = ctx.d
    if g > 1 and D.same(w.shape[1], 1) and D.same(x.shape[1], g):
        return _depthwise(ctx, k, (sh, sw), (dh, dw), (ph, pw))
    body = [f"C, H, W, O = {d(x.shape[1])}, {d(H)}, {d(W)}, {d(w.shape[0])}",
            f"OH, OW, KH, KW = {d(OH)}, {d(OW)}, {d(KH)}, {d(KW)}",
            f"CG, OG = C // {g}, O // {g}",
            "KK = CG * KH * KW",
            f"P = {d(x.shape[0])} * OH * OW",
            "gi = tl.program_id(2)",
            "rp = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)",
            "ro = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)",
            "rk = tl.arange(0, BLOCK_K)",
            "n = rp // (OH * OW)",
            "oh = rp // OW % OH",
            "ow = rp % OW",
            f"h0 = oh * {sh} - {ph}",
            f"w0 = ow * {sw} - {pw}",
            "acc = tl.full((BLOCK_M, BLOCK_N), 0.0, tl.float32)",
            "for k0 in range(0, KK, BLOCK_K):",
            "    kk = k0 + rk",
            "    c = kk // (KH * KW)",
            "    kh = kk // KW % KH",
            "    kw = kk % KW",
            f"    h = h0[:, None] + kh[None, :] * {dh}",
            f"    w = w0[:, None] + kw[None, :] * {dw}",
            "    a_mask = (rp[:, None] < P) & (kk[None, :] < KK) & (h >= 0) & (h < H) & (w >= 0) & (w < W)",
            f"    a = tl.load({ctx.ptr(x)} + ((n[:, None] * C + gi * CG + c[None, :]) * H + h) * W + w, "
            "mask=a_mask, other=0.0)",
            f"    b = tl.load({ctx.ptr(w)} + (gi * OG + ro[None, :]) * KK + kk[:, None], "
            "mask=(kk[:, None] < KK) & (ro[None, :] < OG), other=0.0)",
            *("    " + line for line in widen_bf16("a", x) + widen_bf16("b", w)),
            "    acc += tl.dot(a, b, input_precision=PRECISION)",
            "oc = gi * OG + ro"]
    if len(node.inputs) > 2:
        body.append(f"acc += tl.load({ctx.ptr(node.inputs[2])} + oc, mask=ro < OG, other=0.0)[None, :]"
                    ".to(tl.float32)")
    body.append("mask = (rp[:, None] < P) & (ro[None, :] < OG)")
    space = Space(out.shape, body, ctx.where)
    space.define(0, "n[:, None]", True, axis=True)
    space.define(1, "oc[None, :]", True, axis=True)
    if nsp == 1:
        space.define(2, "ow[:, None]", True, axis=True)
    else:
        space.define(2, "oh[:, None]", True, axis=True)
        space.define(3, "ow[:, None]", True, axis=True)
    space.flat = "n[:, None] * O * OH * OW + oc[None, :] * OH * OW + (rp % (OH * OW))[:, None]"
    space.mask = "mask"
    _epilogue(ctx, k, space, body, "acc")
    setup = [f"M, N, K = {d(x.shape[0])} * {d(OH)} * {d(OW)}, {d(w.shape[0])} // {g}, "
             f"{d(w.shape[1])} * {d(KH)} * {d(KW)}",
             f"BLOCK_M, BLOCK_N, BLOCK_K, warps, stages = dot_blocks(M, N, K, {out.dtype.itemsize})"]
    return Emitted(body, ["BLOCK_M", "BLOCK_N", "BLOCK_K", "PRECISION"], setup,
                   f"(triton.cdiv(M, BLOCK_M), triton.cdiv(N, BLOCK_N), {g})",
                   "PRECISION=DOT_PRECISION, num_warps=warps, num_stages=stages", guard="M * N == 0")


def _depthwise(ctx: KernelContext, k: Kernel, stride, dil, pad) -> Emitted:
    """One filter per input channel: a direct loop over the window for each output element (no tl.dot)."""
    node = k.nodes[0]
    x, w, out = node.inputs[0], node.inputs[1], node.outputs[0]
    nsp = x.type.rank - 2
    (sh, sw), (dh, dw), (ph, pw) = stride, dil, pad
    H, W = spatial_hw(x.shape, nsp)
    KH, KW = spatial_hw(w.shape, nsp)
    body: list[str] = []
    space, setup = _elementwise_grid(ctx, out, body)
    n, oc = space.index(0)[0], space.index(1)[0]
    oh = space.index(2)[0] if nsp == 2 else "(f * 0)"  # a tile: a mask of scalars has no tile dtype
    ow = space.index(nsp + 1)[0]
    d = ctx.d
    body += [f"C, H, W = {d(x.shape[1])}, {d(H)}, {d(W)}",
             f"c = {oc} // ({d(w.shape[0])} // C)",
             "acc = tl.full([BLOCK], 0.0, tl.float32)",
             f"for ki in tl.static_range({KH}):",
             f"    h = {oh} * {sh} - {ph} + ki * {dh}",
             f"    for kj in tl.static_range({KW}):",
             f"        w = {ow} * {sw} - {pw} + kj * {dw}",
             "        inside = mask & (h >= 0) & (h < H) & (w >= 0) & (w < W)",
             f"        xv = tl.load({ctx.ptr(x)} + (({n} * C + c) * H + h) * W + w, mask=inside, other=0.0)",
             f"        wv = tl.load({ctx.ptr(w)} + ({oc} * {KH} + ki) * {KW} + kj, mask=mask, other=0.0)",
             "        acc += xv.to(tl.float32) * wv.to(tl.float32)"]
    if len(node.inputs) > 2:
        body.append(f"acc += tl.load({ctx.ptr(node.inputs[2])} + {oc}, mask=mask, other=0.0).to(tl.float32)")
    _epilogue(ctx, k, space, body, "acc")
    return Emitted(body, ["BLOCK"], setup, "(triton.cdiv(total, BLOCK),)", guard="total == 0")


# ---------------------------------------------------------------- single ops over the output's elements

def _elementwise_grid(ctx: KernelContext, v: Value, body: list[str]) -> tuple[Space, list[str]]:
    """A flat space over v's elements, BLOCK elements a program."""
    total = ctx.numel(v.shape)
    body += ["f = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)", f"mask = f < {total}"]
    space = Space(v.shape, body, ctx.where)
    space.unravel(range(v.type.rank), "f", True)
    space.flat, space.mask = "f", "mask"
    return space, [f"total = {total}", "BLOCK = 1024"]


def _over(ctx: KernelContext, v: Value, emit) -> Emitted:
    body: list[str] = []
    space, setup = _elementwise_grid(ctx, v, body)
    emit(space, body)
    return Emitted(body, ["BLOCK"], setup, "(triton.cdiv(total, BLOCK),)", guard="total == 0")


def _gathered(space: Space, shape, index_of) -> str:
    """The row-major offset into an array of `shape` whose index along dim a is index_of(a) (a tile vector)."""
    strides = contiguous_strides(shape)
    terms = []
    for a in range(len(shape)):
        if D.same(shape[a], 1):
            continue
        idx = index_of(a)
        terms.append(idx if D.same(strides[a], 1) else f"{idx} * {tdim(strides[a], space.where)}")
    return " + ".join(terms) or "tl.full([BLOCK], 0, tl.int32)"


def emit_pool(ctx: KernelContext, node: Node) -> Emitted:
    x, out = node.inputs[0], node.outputs[0]
    is_max, is_lp = node.op == "max_pool", node.op == "lp_pool"
    integer_max = is_max and x.dtype.is_int  # the window's max in x's own type, from its lowest value
    if not x.dtype.is_float and not integer_max:
        raise UnsupportedError(f"{ctx.where}: {node.op} over {x.dtype} is not supported by the triton target")
    nsp = x.type.rank - 2
    (sh, sw), (dh, dw), (ph, pw, phe, pwe) = window_2d(node, nsp, ctx.where, "triton", UnsupportedError)
    kernel = tuple(node.attrs["kernel"])
    KH, KW = (1, kernel[0]) if nsp == 1 else kernel
    H, W = spatial_hw(x.shape, nsp)
    start = '-float("inf")' if is_max else "0.0"
    acc_type = "tl.float64" if is_lp else "tl.float32"  # lp_pool sums |x|^p in double, as the reference
    if integer_max:
        start, acc_type = literal(reduction_identity("reduce_max", x.dtype), x.dtype), tltype(x.dtype)

    def emit(space: Space, body: list[str]) -> None:
        nc = f"{space.index(0)[0]} * {ctx.d(x.shape[1])} + {space.index(1)[0]}"
        oh = space.index(2)[0] if nsp == 2 else "(f * 0)"  # a tile: a mask of scalars has no tile dtype
        ow = space.index(nsp + 1)[0]
        body += [f"H, W = {ctx.d(H)}, {ctx.d(W)}",
                 f"acc = tl.full([BLOCK], {start}, {acc_type})",
                 "cnt = tl.full([BLOCK], 0.0, tl.float32)",
                 "cnt_pad = tl.full([BLOCK], 0.0, tl.float32)",
                 f"for ki in tl.static_range({KH}):",
                 f"    h = {oh} * {sh} - {ph} + ki * {dh}",
                 f"    for kj in tl.static_range({KW}):",
                 f"        w = {ow} * {sw} - {pw} + kj * {dw}",
                 "        inside = (h >= 0) & (h < H) & (w >= 0) & (w < W)",
                 f"        cnt_pad += ((h < H + {phe}) & (w < W + {pwe})).to(tl.float32)",
                 "        cnt += inside.to(tl.float32)",
                 f"        v = tl.load({ctx.ptr(x)} + ({nc}) * H * W + h * W + w, mask=mask & inside, "
                 f"other={start}).to({acc_type})"]
        if is_max:
            body.append("        acc = tl.maximum(acc, v)" if integer_max else
                        "        acc = tl.maximum(acc, v, propagate_nan=tl.PropagateNan.ALL)")
        elif is_lp:
            p = float(node.attrs["p"])

            def power(base: str, exponent: float, indent: str) -> str:
                def bind(expr: str, dtype: DType) -> str:
                    body.append(f"{indent}lp{len(body)} = {expr}")
                    return f"lp{len(body) - 1}"
                return elementwise(TRITON, "pow", {}, [base, literal(exponent, DType.f64)], [DType.f64, DType.f64],
                                   DType.f64, exponent, bind)
            body.append(f"        acc += {power('tl.abs(v)', p, '        ')}")
            body.append(f"acc = {power('acc', 1.0 / p, '')}")
        else:
            body.append("        acc += v")
        if not is_max and not is_lp:
            div = "cnt_pad" if node.attrs["count_include_pad"] else "cnt"
            body.append(f"acc = acc / tl.maximum({div}, 1.0)")
        body.append(space.store(ctx.ptr(out), out.shape, f"acc.to({tltype(out.dtype)})"))

    return _over(ctx, out, emit)


def emit_transpose(ctx: KernelContext, node: Node) -> Emitted:
    x, y = node.inputs[0], node.outputs[0]
    perm = node.attrs["perm"]
    cs = contiguous_strides(x.shape)

    def emit(space: Space, body: list[str]) -> None:
        strides = [cs[p] for p in perm]
        body.append(space.store(ctx.ptr(y), y.shape, space.load(ctx.ptr(x), y.shape, strides)))

    return _over(ctx, y, emit)


def emit_broadcast_to(ctx: KernelContext, node: Node) -> Emitted:
    x, y = node.inputs[0], node.outputs[0]

    def emit(space: Space, body: list[str]) -> None:
        body.append(space.store(ctx.ptr(y), y.shape, space.load(ctx.ptr(x), x.shape)))

    return _over(ctx, y, emit)


def emit_slice(ctx: KernelContext, node: Node) -> Emitted:
    x, y = node.inputs[0], node.outputs[0]
    rank = x.type.rank
    spec = {a % rank: (s, e, st) for s, e, a, st in zip(node.attrs["starts"], node.attrs["ends"],
                                                        node.attrs["axes"], node.attrs["steps"])}

    def first(a) -> str:
        s, e, st = spec[a]
        dim = x.shape[a]
        if isinstance(dim, int):
            return str(range(dim)[slice(s, e, st)].start if len(range(dim)[slice(s, e, st)]) else 0)
        if st < 0:
            raise UnsupportedError(f"{ctx.where}: a negative slice step over the symbolic dim {dim} is not "
                                   "supported by the triton target")
        return str(s) if s >= 0 else f"({ctx.d(dim)} - {-s})"

    def emit(space: Space, body: list[str]) -> None:
        def index_of(a):
            i = space.index(a)[0]
            if a not in spec:
                return i
            return f"({first(a)} + {i} * {spec[a][2]})"
        body.append(space.store(ctx.ptr(y), y.shape,
                                f"tl.load({ctx.ptr(x)} + {_gathered(space, x.shape, index_of)}, mask=mask)"))

    return _over(ctx, y, emit)


def emit_pad(ctx: KernelContext, node: Node) -> Emitted:
    x, y = node.inputs[0], node.outputs[0]
    if node.attrs["mode"] != "constant":
        return _emit_pad_mode(ctx, node)
    value = pad_constant(TRITON, node, ctx.where)
    rank = x.type.rank
    pads = node.attrs["pads"]

    def emit(space: Space, body: list[str]) -> None:
        conds = []
        for a in range(rank):
            if pads[a] or pads[a + rank]:
                i = space.index(a)[0]
                conds.append(f"({i} - {pads[a]} >= 0) & ({i} - {pads[a]} < {ctx.d(x.shape[a])})")
        inside = " & ".join(["mask"] + conds)
        off = _gathered(space, x.shape, lambda a: f"({space.index(a)[0]} - {pads[a]})" if pads[a]
                        else space.index(a)[0])
        body.append(space.store(ctx.ptr(y), y.shape, f"tl.load({ctx.ptr(x)} + {off}, mask={inside}, other={value})"))

    return _over(ctx, y, emit)


def _emit_pad_mode(ctx: KernelContext, node: Node) -> Emitted:
    """Pad modes edge, reflect and wrap: each element reads the position the mode's index function
    (kernel_body.pad_source_index) gives on each axis of the cropped operand. A padded axis must keep a
    known number of elements (one of run-time size could keep none, which no kernel can repeat)."""
    x, y = node.inputs[0], node.outputs[0]
    rank, pads = x.type.rank, node.attrs["pads"]
    for a in range(rank):
        if max(pads[a], pads[a + rank]) > 0 and not isinstance(x.shape[a], int):
            raise UnsupportedError(f"{ctx.where}: pad mode {node.attrs['mode']!r} over axis {a} of run-time size "
                                   f"{x.shape[a]} is not supported by the triton target (the cpu target runs it)")

    def emit(space: Space, body: list[str]) -> None:
        def index_of(a):
            b, e = pads[a], pads[a + rank]
            i = space.index(a)[0]
            if max(b, e) <= 0:
                return f"({i} + {-b})" if b < 0 else i
            kept = D.sub(x.shape[a], max(-b, 0) + max(-e, 0))
            return f"({max(-b, 0)} + {pad_source_index(TRITON, node.attrs['mode'], f'({i} - {max(b, 0)})', kept)})"
        off = _gathered(space, x.shape, index_of)
        body.append(space.store(ctx.ptr(y), y.shape, f"tl.load({ctx.ptr(x)} + {off}, mask=mask)"))

    return _over(ctx, y, emit)


def emit_gather(ctx: KernelContext, node: Node) -> Emitted:
    x, idx, y = node.inputs[0], node.inputs[1], node.outputs[0]
    axis = node.attrs["axis"] % x.type.rank
    ir = idx.type.rank

    def emit(space: Space, body: list[str]) -> None:
        ioff = _gathered(space, idx.shape, lambda a: space.index(axis + a)[0])
        ax = ctx.d(x.shape[axis])
        body += [f"g = tl.load({ctx.ptr(idx)} + {ioff}, mask=mask, other=0)",
                 ctx.index_fault(node, ioff, "g"),
                 f"g = tl.where(g < 0, g + {ax}, g)",
                 f"g = tl.where((g >= 0) & (g < {ax}), g, 0)  # (a run with an index out of range fails)"]

        def index_of(a):
            if a < axis:
                return space.index(a)[0]
            if a == axis:
                return "g"
            return space.index(a - 1 + ir)[0]
        body.append(space.store(ctx.ptr(y), y.shape,
                                f"tl.load({ctx.ptr(x)} + {_gathered(space, x.shape, index_of)}, mask=mask)"))

    return _over(ctx, y, emit)


def emit_gather_elements(ctx: KernelContext, node: Node) -> Emitted:
    x, idx, y = node.inputs[0], node.inputs[1], node.outputs[0]
    axis = node.attrs["axis"] % x.type.rank

    def emit(space: Space, body: list[str]) -> None:
        ax = ctx.d(x.shape[axis])
        body += [f"g = {space.load(ctx.ptr(idx), idx.shape)}",
                 ctx.index_fault(node, "f", "g"),
                 f"g = tl.where(g < 0, g + {ax}, g)",
                 f"g = tl.where((g >= 0) & (g < {ax}), g, 0)"]
        off = _gathered(space, x.shape, lambda a: "g" if a == axis else space.index(a)[0])
        body.append(space.store(ctx.ptr(y), y.shape, f"tl.load({ctx.ptr(x)} + {off}, mask=mask)"))

    return _over(ctx, y, emit)


def emit_gather_nd(ctx: KernelContext, node: Node) -> Emitted:
    """Each result element reads its index tuple (k loads), then the data element it names."""
    x, idx, y = node.inputs[0], node.inputs[1], node.outputs[0]
    b, k = node.attrs["batch_dims"], idx.shape[-1]
    tuples = idx.type.rank - 1 - b  # result dims [b, b + tuples) run over the index tuples

    def emit(space: Space, body: list[str]) -> None:
        tuple_at = _gathered(space, idx.shape[:-1], lambda a: space.index(a)[0])
        for j in range(k):
            size, at = ctx.d(x.shape[b + j]), f"(({tuple_at}) * {k} + {j})"
            body += [f"g{j} = tl.load({ctx.ptr(idx)} + {at}, mask=mask, other=0).to(tl.int64)",
                     ctx.index_fault(node, at, f"g{j}", j),
                     f"g{j} = tl.where(g{j} < 0, g{j} + {size}, g{j})",
                     f"g{j} = tl.where((g{j} >= 0) & (g{j} < {size}), g{j}, 0)"]

        def index_of(a):
            if a < b:
                return space.index(a)[0]
            if a < b + k:
                return f"g{a - b}"
            return space.index(a - k + tuples)[0]
        body.append(space.store(ctx.ptr(y), y.shape,
                                f"tl.load({ctx.ptr(x)} + {_gathered(space, x.shape, index_of)}, mask=mask)"))

    return _over(ctx, y, emit)


def emit_lrn(ctx: KernelContext, node: Node) -> Emitted:
    """Local response normalization over channels: x / (bias + alpha / size * sum of x^2 in the window)^beta."""
    x, y = node.inputs[0], node.outputs[0]
    if not x.dtype.is_float:
        raise UnsupportedError(f"{ctx.where}: lrn over {x.dtype} is not supported by the triton target")
    size = node.attrs["size"]
    lo = (size - 1) // 2
    chans = ctx.d(x.shape[1])

    def emit(space: Space, body: list[str]) -> None:
        c = space.index(1)[0]
        plane = ctx.numel(x.shape[2:])
        body += [f"xc = {space.load(ctx.ptr(x), x.shape)}.to(tl.float32)",
                 "acc = tl.full([BLOCK], 0.0, tl.float32)",
                 f"for w in tl.static_range({size}):",
                 f"    cc = {c} + w - {lo}",
                 f"    v = tl.load({ctx.ptr(x)} + f + (w - {lo}) * {plane}, mask=mask & (cc >= 0) & (cc < {chans}), "
                 "other=0.0).to(tl.float32)",
                 "    acc += v * v"]
        scale = literal(node.attrs["alpha"] / size, DType.f32)
        base = f"({literal(node.attrs['bias'], DType.f32)} + {scale} * acc)"

        def bind(expr: str, dtype: DType) -> str:
            body.append(f"t{len(body)} = {expr}")
            return f"t{len(body) - 1}"
        denom = elementwise(TRITON, "pow", {}, [base, literal(node.attrs["beta"], DType.f32)], [DType.f32, DType.f32],
                            DType.f32, float(node.attrs["beta"]), bind)
        body.append(space.store(ctx.ptr(y), y.shape, f"(xc / {denom}).to({tltype(y.dtype, ctx.where)})"))

    return _over(ctx, y, emit)


def emit_shape_of(ctx: KernelContext, node: Node) -> Emitted:
    x, y = node.inputs[0], node.outputs[0]
    dims = x.shape[slice(node.attrs["start"], node.attrs["end"])]

    def emit(space: Space, body: list[str]) -> None:
        value = "0"
        for i, dim in reversed(list(enumerate(dims))):
            value = f"tl.where(f == {i}, {ctx.d(dim)}, {value})"
        body.append(space.store(ctx.ptr(y), y.shape, f"({value}).to(tl.int64)"))

    return _over(ctx, y, emit)


def emit_scan(ctx: KernelContext, node: Node) -> Emitted:
    """cumsum and cumprod: one program per line along the axis, the whole line in registers
    (tl.associative_scan); an exclusive scan reads each element's predecessor along the scan."""
    x, y = node.inputs[0], node.outputs[0]
    axis = node.attrs["axis"] % x.type.rank
    combine, start = SCANS[node.op]
    ax, inner = ctx.d(x.shape[axis]), ctx.numel(x.shape[axis + 1:])
    reverse = node.attrs["reverse"]
    src = ("a + 1" if reverse else "a - 1") if node.attrs["exclusive"] else "a"
    body = ["line = tl.program_id(0)",
            "a = tl.arange(0, BLOCK_A)",
            f"mask = a < {ax}",
            f"base = (line // {inner}) * {ax} * {inner} + line % {inner}",
            f"v = tl.load({ctx.ptr(x)} + base + ({src}) * {inner}, mask=mask & ({src} >= 0) & ({src} < {ax}), "
            f"other={literal(start, x.dtype)})",
            f"total = tl.associative_scan(v, 0, {'lep_add' if combine == 'add' else 'lep_mul'}, reverse={reverse})",
            f"tl.store({ctx.ptr(y)} + base + a * {inner}, total.to({tltype(y.dtype, ctx.where)}), mask=mask)"]
    setup = [f"lines = {ctx.numel(x.shape[:axis])} * {inner}", f"BLOCK_A = row_block({ax})"]
    return Emitted(body, ["BLOCK_A"], setup, "(lines,)", guard="lines == 0")


def emit_trilu(ctx: KernelContext, node: Node) -> Emitted:
    x, y = node.inputs[0], node.outputs[0]
    rank = x.type.rank

    def emit(space: Space, body: list[str]) -> None:
        diagonal = str(node.attrs["diagonal"])
        if len(node.inputs) > 1:
            body.append(f"kk = tl.load({ctx.ptr(node.inputs[1])}).to(tl.int64)")
            diagonal = "kk"
        keep = trilu_keeps(TRITON, space.index(rank - 2)[0], space.index(rank - 1)[0], diagonal, node.attrs["upper"])
        value = f"tl.where({keep}, {space.load(ctx.ptr(x), x.shape)}, {literal(0, y.dtype)})"
        body.append(space.store(ctx.ptr(y), y.shape, value))

    return _over(ctx, y, emit)


def emit_concat(ctx: KernelContext, node: Node) -> Emitted:
    y = node.outputs[0]
    axis = node.attrs["axis"] % y.type.rank

    def emit(space: Space, body: list[str]) -> None:
        i = space.index(axis)[0]
        lo = 0
        zero = "0.0" if y.dtype.is_float else "0"
        body.append(f"val = tl.full([BLOCK], 0, {tltype(y.dtype, ctx.where)})")
        for x in node.inputs:
            hi = D.add(lo, x.shape[axis])
            inside = f"({i} >= {ctx.d(lo)}) & ({i} < {ctx.d(hi)})"
            off = _gathered(space, x.shape, lambda a: f"({i} - {ctx.d(lo)})" if a == axis else space.index(a)[0])
            body.append(f"val = tl.where({inside}, tl.load({ctx.ptr(x)} + {off}, mask=mask & {inside}, "
                        f"other={zero}), val)")
            lo = hi
        body.append(space.store(ctx.ptr(y), y.shape, "val"))

    return _over(ctx, y, emit)


def emit_split(ctx: KernelContext, node: Node) -> Emitted:
    x = node.inputs[0]
    axis = node.attrs["axis"] % x.type.rank

    def emit(space: Space, body: list[str]) -> None:
        i = space.index(axis)[0]
        body.append(f"val = {space.load(ctx.ptr(x), x.shape)}")
        lo = 0
        for y in node.outputs:
            hi = D.add(lo, y.shape[axis])
            if id(y) in ctx.names:
                inside = f"({i} >= {ctx.d(lo)}) & ({i} < {ctx.d(hi)})"
                off = _gathered(space, y.shape, lambda a: f"({i} - {ctx.d(lo)})" if a == axis else space.index(a)[0])
                body.append(f"tl.store({ctx.ptr(y)} + {off}, val, mask=mask & {inside})")
            lo = hi

    return _over(ctx, x, emit)


def emit_tile(ctx: KernelContext, node: Node) -> Emitted:
    x, y = node.inputs[0], node.outputs[0]
    rank = y.type.rank

    def emit(space: Space, body: list[str]) -> None:
        xs = pad_left(x.shape, rank)
        off = _gathered(space, xs, lambda a: f"({space.index(a)[0]} % {ctx.d(xs[a])})")
        body.append(space.store(ctx.ptr(y), y.shape, f"tl.load({ctx.ptr(x)} + {off}, mask=mask)"))

    return _over(ctx, y, emit)


def emit_range(ctx: KernelContext, node: Node) -> Emitted:
    y = node.outputs[0]
    start, delta = float(node.attrs["start"]), float(node.attrs["delta"])

    def emit(space: Space, body: list[str]) -> None:
        value = f"({start!r} + {delta!r} * f.to(tl.float64)).to({tltype(y.dtype, ctx.where)})"
        body.append(space.store(ctx.ptr(y), y.shape, value))

    return _over(ctx, y, emit)


def emit_full(ctx: KernelContext, node: Node) -> Emitted:
    y = node.outputs[0]

    def emit(space: Space, body: list[str]) -> None:
        value = f"tl.full([BLOCK], {literal(node.attrs['value'], y.dtype)}, {tltype(y.dtype, ctx.where)})"
        body.append(space.store(ctx.ptr(y), y.shape, value))

    return _over(ctx, y, emit)


def emit_bitcast(ctx: KernelContext, node: Node) -> Emitted:
    """The operand's bits read as the result's dtype (bool is a byte holding 0 or 1)."""
    x, y = node.inputs[0], node.outputs[0]
    t = tltype(y.dtype, ctx.where)
    if x.dtype is DType.bool:
        convert = f".to({t})"
    elif y.dtype is DType.bool:
        convert = " != 0"
    else:
        convert = f".to({t}, bitcast=True)"

    def emit(space: Space, body: list[str]) -> None:
        body.append(space.store(ctx.ptr(y), y.shape, f"({space.load(ctx.ptr(x), x.shape)}){convert}"))

    return _over(ctx, y, emit)


def _topk_before(dtype: DType, largest: bool, a: str, b: str) -> str:
    """Whether element a comes before element b in topk's order: the reference sorts stably by -x for the
    largest (the negation wraps for signed integers), by x for the smallest, NaN last."""
    if dtype.is_float:
        return f"((({a}) {'>' if largest else '<'} ({b})) | ((({b}) != ({b})) & (({a}) == ({a}))))"
    if largest and dtype.is_signed:
        return f"((0 - ({a})) < (0 - ({b})))"
    return f"(({a}) {'>' if largest else '<'} ({b}))"


def emit_topk(ctx: KernelContext, node: Node) -> Emitted:
    """One program per line along the axis, the whole line in registers: each element's place in a stable
    sort is the number of elements before it (an A x A comparison tile), and the first k places are stored."""
    x, (values, indices) = node.inputs[0], node.outputs
    if x.dtype is DType.bool:
        raise UnsupportedError(f"{ctx.where}: topk over bool is not supported by the triton target (the reference "
                               "refuses it too)")
    axis, k = node.attrs["axis"] % x.type.rank, node.attrs["k"]
    ax, inner = ctx.d(x.shape[axis]), ctx.numel(x.shape[axis + 1:])
    largest = node.attrs["largest"]
    body = ["line = tl.program_id(0)",
            "a = tl.arange(0, BLOCK_A)",
            f"mask = a < {ax}",
            f"base = (line // {inner}) * {ax} * {inner} + line % {inner}",
            f"out = (line // {inner}) * {k} * {inner} + line % {inner}",
            f"v = tl.load({ctx.ptr(x)} + base + a * {inner}, mask=mask)",
            "vi, vj = v[:, None], v[None, :]",
            f"first = {_topk_before(x.dtype, largest, 'vj', 'vi')} | "
            f"(({_topk_before(x.dtype, largest, 'vi', 'vj')} == 0) & (a[None, :] < a[:, None]))",
            "place = tl.reduce((first & mask[None, :]).to(tl.int32), 1, lep_add)",
            f"keep = mask & (place < {k})"]
    if id(values) in ctx.names:
        body.append(f"tl.store({ctx.ptr(values)} + out + place * {inner}, v, mask=keep)")
    if id(indices) in ctx.names:
        body.append(f"tl.store({ctx.ptr(indices)} + out + place * {inner}, a.to(tl.int64), mask=keep)")
    setup = [f"lines = {ctx.numel(x.shape[:axis])} * {inner}", f"BLOCK_A = row_block({ax})"]
    return Emitted(body, ["BLOCK_A"], setup, "(lines,)", guard=f"lines * {k} == 0")


def _per_element(body_of, reads_by_index: bool = False):
    """The emitter of an op whose kernel runs body_of(ctx, node, space, body) over the result's elements; with
    `reads_by_index`, body_of also takes offset(index_of), the flat offset into the first operand of the
    element whose index along dim a is index_of(a)."""
    def emit_op(ctx: KernelContext, node: Node) -> Emitted:
        def emit(space: Space, body: list[str]) -> None:
            offset = (lambda index_of: _gathered(space, node.inputs[0].shape, index_of),) if reads_by_index else ()
            body_of(ctx, node, space, body, *offset)

        return _over(ctx, node.outputs[0], emit)
    return emit_op


OP_EMITTERS = {
    "max_pool": emit_pool, "avg_pool": emit_pool, "lp_pool": emit_pool, "transpose": emit_transpose,
    "broadcast_to": emit_broadcast_to, "slice": emit_slice, "pad": emit_pad, "gather": emit_gather,
    "gather_elements": emit_gather_elements, "concat": emit_concat, "split": emit_split, "tile": emit_tile,
    "full": emit_full, "range": emit_range, "shape_of": emit_shape_of, "cumsum": emit_scan, "cumprod": emit_scan,
    "trilu": emit_trilu, "gather_nd": emit_gather_nd, "lrn": emit_lrn, "topk": emit_topk, "bitcast": emit_bitcast,
    "resize": _per_element(resize_body, reads_by_index=True), "dft": _per_element(dft_body, reads_by_index=True),
    "affine_grid": _per_element(affine_grid_body), "grid_sample": _per_element(grid_sample_body),
    "stft": _per_element(stft_body),
}


def emit_kernel(ctx: KernelContext, k: Kernel) -> Emitted:
    """The kernel's body, block parameters and launch recipe."""
    if k.kind == "loop":
        return emit_loop(ctx, k)
    if k.kind == "matmul":
        return emit_matmul(ctx, k)
    if k.kind == "conv":
        return emit_conv(ctx, k)
    op = k.nodes[0].op
    emitter = OP_EMITTERS.get(op)
    if emitter is None:
        raise UnsupportedError(f"{ctx.where}: op '{op}' is not supported by the triton target "
                               f"(single-op kernels: {', '.join(sorted(OP_EMITTERS))})")
    return emitter(ctx, k.nodes[0])


def kernel_header(name: str, kind: str, ops: list[str], also: list[str]) -> str:
    """The comment above a kernel's @triton.jit function: the fused IR ops, and the kernels that share it."""
    shared = f"\n# also runs kernels {', '.join(also)} (the same code)" if also else ""
    return f"# {name}: {kind} kernel; fused IR ops:\n" + "\n".join(f"#   {op}" for op in ops) + shared + "\n"


def kernel_source(name: str, params: list[str], symbols: list[str], em: Emitted) -> tuple[str, str]:
    """(the @triton.jit function, its launcher) as Python source, without the header comment."""
    syms = [symbol_var(s) for s in symbols]
    args = params + syms
    jit = ("@triton.jit\n"
           f"def {name}({', '.join(args + [c + ': tl.constexpr' for c in em.constexprs])}):\n"
           + "".join(f"    {line}\n" for line in em.body))
    consts = ", ".join(f"{c}={c}" for c in em.constexprs if c != "PRECISION")
    launch = (f"def launch_{name}({', '.join(args)}):\n"
              + "".join(f"    {line}\n" for line in em.setup)
              + (f"    if {em.guard}:\n        return\n" if em.guard else "")
              + f"    {name}[{em.grid}]({', '.join(args)}, {consts}"
              + (f", {em.options}" if em.options else "") + ")\n")
    return jit, launch
