"""C kernels of the quantization ops (matmul_wq, matmul_w8a8, matmul_integer, quantize, dequantize, and the
static W8A8 qlinear_conv and qlinear_matmul).

The helpers live in quantized.c, which a model's source includes when one of
these ops is in it (`uses_quantized`). The int8 and packed int4 weights stay
narrow in memory: the kernels widen them in registers (see quantized.c).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...ir import dims as D
from ...ir.dtypes import DType
from ...ir.graph import Graph, Node
from ...ir.ops.quant import RANGES
from .. import window_2d
from .cexpr import UnsupportedError, cnumel, ctype
from .kernels import KernelContext

QUANTIZED_SOURCE = Path(__file__).with_name("quantized.c").read_text()
PANEL = 16  # output channels per panel: one vector of the kernels (LEP_PANEL in quantized.c)
UNIT = 4    # panels interleaved step by step (LEP_UNIT)
PAIR_SAFE_WEIGHT = 64  # |w| bound under which 2 * 255 * |w| fits int16: the qlinear kernels' vpmaddubsw path


# ---------------------------------------------------------------- weight layouts (see quantized.c)

def _panels(w: np.ndarray, multiple: int) -> np.ndarray:
    """w [N, K] as int32 [P, 16, K'] with rows padded to whole units of panels and K to a multiple, zeros."""
    n, k = w.shape
    rows = -(-n // (PANEL * UNIT)) * PANEL * UNIT
    out = np.zeros((rows, -(-k // multiple) * multiple), np.int32)
    out[:n, :k] = w.astype(np.int32)
    return out.reshape(-1, PANEL, out.shape[1])


def _interleaved(steps: np.ndarray) -> np.ndarray:
    """Steps [P, K', 16, 4] of each panel as [P / 4, K', 4, 16, 4]: the panels of a unit step by step."""
    p = steps.shape[0]
    return np.ascontiguousarray(steps.reshape(p // UNIT, UNIT, *steps.shape[1:]).swapaxes(1, 2))


def _unit_major(meta: np.ndarray) -> np.ndarray:
    """Entries per panel and group [P, groups, 16] as [P / 4, groups, 4, 16]: for each group, the 4 panels of a
    unit side by side (one stream for a kernel reading a unit)."""
    p, groups, lanes = meta.shape
    return np.ascontiguousarray(meta.reshape(p // UNIT, UNIT, groups, lanes).swapaxes(1, 2))


def _with_row_sums(steps: np.ndarray, w: np.ndarray, group: int) -> np.ndarray:
    """The steps (bytes), then the sum of each row of w over each group of inputs, int32 [P / 4][groups][4][16]."""
    padded = _panels(w, group)
    p, _, k = padded.shape
    sums = _unit_major(padded.reshape(p, PANEL, k // group, group).sum(axis=3).transpose(0, 2, 1))
    return np.concatenate([steps.reshape(-1).view(np.uint8), sums.astype("<i4").reshape(-1).view(np.uint8)])


def lay_out_i8(w: np.ndarray, group: int) -> np.ndarray:
    """int8 weights [N, K]: steps [P][K4][16][4] (byte 4j + i of step c is w[16p + j, 4c + i]) interleaved by
    units, then the row sums per group (the whole row when group is 0)."""
    padded = _panels(w, 4)
    p, _, k = padded.shape
    steps = padded.reshape(p, PANEL, k // 4, 4).transpose(0, 2, 1, 3).astype(np.int8)
    return _with_row_sums(_interleaved(steps), w, group or w.shape[1])


def lay_out_i4(w: np.ndarray) -> np.ndarray:
    """int4 weights [N, K]: steps [P][K8][16][4] bytes, byte 4j + i of step c holding w[16p + j, 8c + i] + 8 in
    its low nibble and w[16p + j, 8c + 4 + i] + 8 in its high nibble, interleaved by units (no row sums: the
    kernels take the offset off with sums of x)."""
    padded = _panels(w, 8) + 8
    p, _, k = padded.shape
    pairs = padded.reshape(p, PANEL, k // 8, 2, 4)  # [.., step, half, i]: half 0 low nibbles, 1 high
    steps = (pairs[:, :, :, 0, :] | (pairs[:, :, :, 1, :] << 4)).transpose(0, 2, 1, 3).astype(np.uint8)
    return _interleaved(steps).reshape(-1)


def lay_out_scale(scale: np.ndarray) -> np.ndarray:
    """Scales [N] or [N, groups] as f32 [P / 4][groups][4][16] (like the row sums), padded with zeros."""
    s = scale.reshape(scale.shape[0], -1).astype(np.float32)
    n, groups = s.shape
    out = np.zeros((-(-n // (PANEL * UNIT)) * PANEL * UNIT, groups), np.float32)
    out[:n] = s
    return _unit_major(out.reshape(-1, PANEL, groups).transpose(0, 2, 1))


# A weight in a quantized kernel's layout is named <constant>^q<spec> (not a valid IR name, so it never
# collides): spec "8g<group>" for int8 weights with row sums per group (0: per row), "4" for int4 weights,
# "scale" for scales, "c<groups>" for an int8 conv weight (lay_out_conv).
LAYOUT_MARK = "^q"


def lay_out_conv(w: np.ndarray, groups: int) -> np.ndarray:
    """An int8 conv weight [O, C / groups, kernel...] as the int8 layout of each group's [O / groups, K] rows,
    one after another. K is in the order lep_qlinear_conv reads a window: kernel row, then kernel column and
    channel, each kernel row's inputs padded with zero weights to whole steps of 4 (K = KH * kr)."""
    o, kw = w.shape[0], w.shape[-1]
    per_row = np.moveaxis(w, 1, -1).reshape(o, -1, kw * w.shape[1])  # [O, KH, KW * C / groups]
    kr = -(-per_row.shape[2] // 4) * 4
    rows = np.pad(per_row, ((0, 0), (0, 0), (0, kr - per_row.shape[2]))).reshape(o, -1)
    og = w.shape[0] // groups
    return np.concatenate([lay_out_i8(rows[g * og:(g + 1) * og], 0) for g in range(groups)])


def lay_out(spec: str, array: np.ndarray) -> np.ndarray:
    """The array of a constant in the quantized layout `spec` (see LAYOUT_MARK)."""
    if spec.startswith("c"):
        return lay_out_conv(array, int(spec[1:]))
    if spec == "scale":
        return lay_out_scale(array)
    if spec == "4":
        return lay_out_i4(array)
    return lay_out_i8(array, int(spec.removeprefix("8g")))


def laid_out_operands(node: Node) -> list[tuple[int, str]]:
    """(input index, name suffix) of the constant operands a quantized matmul reads in a kernel layout."""
    if node.op == "matmul_wq" and len(node.inputs) == 3 and node.inputs[1].dtype in (DType.i8, DType.i4):
        spec = f"8g{node.attrs['group']}" if node.inputs[1].dtype is DType.i8 else "4"
        return [(1, f"{LAYOUT_MARK}{spec}"), (2, f"{LAYOUT_MARK}scale")]
    if node.op == "matmul_w8a8":
        return [(1, f"{LAYOUT_MARK}8g0"), (2, f"{LAYOUT_MARK}scale")]
    if node.op == "qlinear_matmul":
        return [(3, f"{LAYOUT_MARK}8g0")]
    if node.op == "qlinear_conv":
        return [(3, f"{LAYOUT_MARK}c{node.attrs['group']}")]
    return []


def _laid_out(ctx: KernelContext, node: Node, index: int) -> str:
    v = node.inputs[index]
    for i, suffix in laid_out_operands(node):
        if i == index and (suffix, id(v)) in ctx.names:
            return ctx.names[(suffix, id(v))]
    raise UnsupportedError(f"{ctx.where}: {node.op} needs its operand %{v.name} to be a constant weight on the "
                           "cpu target")


def _dims(ctx: KernelContext, node: Node) -> list[str]:
    x, w = node.inputs[0], node.inputs[1]
    if x.dtype is not DType.f32:
        raise UnsupportedError(f"{ctx.where}: {node.op} with {x.dtype} activations is not supported by the cpu "
                               "target (f32 is)")
    return [f"const int64_t M = {cnumel(x.shape[:-1], ctx.where)}, N = {ctx.d(w.shape[0])}, "
            f"K = {ctx.d(w.shape[1])};"]


def emit_matmul_wq(ctx: KernelContext, node: Node) -> list[str]:
    x, w = node.inputs[:2]
    if len(node.inputs) > 3:
        raise UnsupportedError(f"{ctx.where}: matmul_wq with a zero point is not supported by the cpu target "
                               "(symmetric weights are)")
    if w.dtype not in (DType.i8, DType.i4):
        raise UnsupportedError(f"{ctx.where}: matmul_wq with {w.dtype} weights is not supported by the cpu "
                               "target (i8 and i4 are)")
    group = node.attrs["group"]
    groups = -(-w.shape[1] // group) if group else 1
    ctx.scratch_bytes = D.mul(D.product(x.shape[:-1]), 4 + 12 * groups + -(-w.shape[1] // 8) * 24)
    return _dims(ctx, node) + [
        f"lep_matmul_wq{8 if w.dtype is DType.i8 else 4}({ctx.ptr(x)}, {_laid_out(ctx, node, 1)}, "
        f"(const float*){_laid_out(ctx, node, 2)}, M, N, K, {group or 'K'}, {ctx.ptr(node.output)}, scratch, "
        f"{ctx.tile_epilogue()});"]


def emit_matmul_w8a8(ctx: KernelContext, node: Node) -> list[str]:
    x, w = node.inputs[:2]
    rows = D.product(x.shape[:-1])
    ctx.scratch_bytes = D.mul(rows, D.add(D.mul(D.floordiv(D.add(w.shape[1], 3), 4), 4), 4))
    return _dims(ctx, node) + [
        f"lep_matmul_w8a8({ctx.ptr(x)}, {_laid_out(ctx, node, 1)}, (const float*){_laid_out(ctx, node, 2)}, "
        f"M, N, K, {ctx.ptr(node.output)}, scratch, {ctx.tile_epilogue()});"]


def _param_layout(ctx: KernelContext, node: Node, x) -> str:
    """C arguments (kind, C, inner, G) of lep_qparam for the node's scale against tensor x."""
    scale = node.inputs[1]
    if scale.type.rank == 0:
        return "0, 1, 1, 1"
    axis = node.attrs["axis"] % x.type.rank
    inner = cnumel(x.shape[axis + 1:], ctx.where)
    kind, group = (2, node.attrs["group"]) if node.attrs["group"] else (1, 1)
    return f"{kind}, {ctx.d(x.shape[axis])}, {inner}, {group}"


def emit_quantize(ctx: KernelContext, node: Node) -> list[str]:
    x, scale = node.inputs[:2]
    out = node.output
    if out.dtype is DType.i4 or x.dtype is not DType.f32:
        raise UnsupportedError(f"{ctx.where}: quantize from {x.dtype} to {out.dtype} is not supported by the cpu "
                               "target (f32 to i8 or u8 is)")
    lo, hi = RANGES[out.dtype]
    zp = f" + (float){ctx.ptr(node.inputs[2])}[p]" if len(node.inputs) > 2 else ""
    return [f"const int64_t n = {cnumel(x.shape, ctx.where)};",
            "#pragma omp parallel for schedule(static) if (n > 65536)",
            "for (int64_t i = 0; i < n; ++i) {",
            f"  const int64_t p = lep_qparam(i, {_param_layout(ctx, node, x)});",
            f"  const float v = nearbyintf({ctx.ptr(x)}[i] / {ctx.ptr(scale)}[p]){zp};",
            f"  {ctx.ptr(out)}[i] = ({ctype(out.dtype)})(v < {lo}.0f ? {lo}.0f : (v > {hi}.0f ? {hi}.0f : v));",
            "}"]


def emit_dequantize(ctx: KernelContext, node: Node) -> list[str]:
    q, scale = node.inputs[:2]
    out = node.output
    if q.dtype is DType.i4 or scale.dtype is not DType.f32:
        raise UnsupportedError(f"{ctx.where}: dequantize from {q.dtype} to {scale.dtype} is not supported by the "
                               "cpu target (i8, u8 or i32 to f32 is)")
    zp = f" - (int32_t){ctx.ptr(node.inputs[2])}[p]" if len(node.inputs) > 2 else ""
    return [f"const int64_t n = {cnumel(q.shape, ctx.where)};",
            "#pragma omp parallel for schedule(static) if (n > 65536)",
            "for (int64_t i = 0; i < n; ++i) {",
            f"  const int64_t p = lep_qparam(i, {_param_layout(ctx, node, q)});",
            f"  {ctx.ptr(out)}[i] = (float)((int32_t){ctx.ptr(q)}[i]{zp}) * {ctx.ptr(scale)}[p];",
            "}"]


def emit_matmul_integer(ctx: KernelContext, node: Node) -> list[str]:
    """(a - a_zp) @ (b - b_zp) in int32 for a [..., M, K] and a 2-D b [K, N], row by row, vectorized over N."""
    a, b = node.inputs[:2]
    a_zp = node.inputs[2] if len(node.inputs) > 2 else None
    b_zp = node.inputs[3] if len(node.inputs) > 3 else None
    if b.type.rank != 2 or a.type.rank < 2 or (a_zp is not None and a_zp.type.rank != 0):
        raise UnsupportedError(f"{ctx.where}: matmul_integer is supported by the cpu target for a [..., M, K] times "
                               "a 2-D b with a per-tensor zero point for a")
    za = f"(int32_t){ctx.ptr(a_zp)}[0]" if a_zp is not None else "0"
    zb = "" if b_zp is None else f" - (int32_t){ctx.ptr(b_zp)}[{'n' if b_zp.type.rank else '0'}]"
    return [f"const int64_t M = {cnumel(a.shape[:-1], ctx.where)}, K = {ctx.d(a.shape[-1])}, "
            f"N = {ctx.d(b.shape[1])};",
            "#pragma omp parallel for schedule(static) if (M * N * K > 65536)",
            "for (int64_t i = 0; i < M; ++i) {",
            f"  int32_t* y = {ctx.ptr(node.output)} + i * N;",
            "  for (int64_t n = 0; n < N; ++n) y[n] = 0;",
            "  for (int64_t k = 0; k < K; ++k) {",
            f"    const int32_t av = (int32_t){ctx.ptr(a)}[i * K + k] - {za};",
            f"    const {ctype(b.dtype)}* bk = {ctx.ptr(b)} + k * N;",
            "    #pragma omp simd",
            f"    for (int64_t n = 0; n < N; ++n) y[n] += av * ((int32_t)bk[n]{zb});",
            "  }",
            "}"]


def _qlinear_params(ctx: KernelContext, node: Node, k: int) -> str:
    """(The C arguments x, x_scale, x_zero_point, w, w_scale, bias, y_scale, y_zero_point, y of a qlinear op,
    pairs) once it is known that its sums stay within int32: |sum of x * w| <= 255 * 128 * K, plus |bias -
    x_zero_point * (row sum of w)| with a constant bias (the kernels add them in int32). pairs is 1 when the
    op's weight_max is at most 64, so that the kernels may sum pairs of u8 x i8 products in int16; it comes
    from the IR, not from the weight's values (a loaded artifact's code is derived from its IR alone)."""
    ins = node.inputs
    bias = ctx.graph.constant_of(ins[5])
    bound = None if bias is None else \
        int(np.abs(bias.astype(np.int64)).max(initial=0)) + 2 * 255 * 128 * k
    if bound is None or bound >= 2**31:
        raise UnsupportedError(f"{ctx.where}: {node.op} on the cpu target needs a constant bias and sums that "
                               f"stay within int32 ({k} inputs per output, bias up to "
                               f"{'?' if bias is None else int(np.abs(bias).max(initial=0))})")
    w, weight_max = ctx.graph.constant_of(ins[3]), node.attrs["weight_max"]
    if w is not None and int(np.abs(w.astype(np.int32)).max(initial=0)) > weight_max:
        raise UnsupportedError(f"{ctx.where}: {node.op}'s weight exceeds its weight_max {weight_max}")
    pairs = int(weight_max <= PAIR_SAFE_WEIGHT)
    y_params = f"{ctx.ptr(ins[6])}, {ctx.ptr(ins[7])}" if len(ins) == 8 else "NULL, NULL"
    return (f"{ctx.ptr(ins[0])}, {ctx.ptr(ins[1])}, {ctx.ptr(ins[2])}, {_laid_out(ctx, node, 3)}, "
            f"{ctx.ptr(ins[4])}, {ctx.ptr(ins[5])}, {y_params}, {ctx.ptr(node.output)}"), pairs


def _channel_bytes(outputs: int) -> int:
    """Scratch bytes of the per-channel offsets and multipliers of `outputs` channels (lep_q8_channels)."""
    return -(-outputs // PANEL) * PANEL * 8


def emit_qlinear_matmul(ctx: KernelContext, node: Node) -> list[str]:
    x, w = node.inputs[0], node.inputs[3]
    params, pairs = _qlinear_params(ctx, node, w.shape[1])
    ctx.scratch_bytes = _channel_bytes(w.shape[0])
    return [f"lep_qlinear_matmul({params}, {cnumel(x.shape[:-1], ctx.where)}, {ctx.d(w.shape[0])}, "
            f"{ctx.d(w.shape[1])}, {pairs}, scratch);"]


def emit_qlinear_conv(ctx: KernelContext, node: Node) -> list[str]:
    """Channels-last only (the channels-last pass, which the cpu lowering runs, converts it)."""
    x, w, out = node.inputs[0], node.inputs[3], node.output
    if not node.attrs["channels_last"]:
        raise UnsupportedError(f"{ctx.where}: the cpu target computes qlinear_conv channels-last; run the "
                               "channels-last pass before code generation (the cpu lowering pipeline does)")
    nsp = x.type.rank - 2
    (sh, sw), (dh, dw), pads = window_2d(node, nsp, ctx.where, "cpu", UnsupportedError, channels_last=True)
    kh, kw = (1, w.shape[2]) if nsp == 1 else w.shape[2:]
    hw = (lambda s: (1, s[1]) if nsp == 1 else (s[1], s[2]))
    (h, wd), (oh, ow) = hw(x.shape), hw(out.shape)
    group, d = node.attrs["group"], ctx.d
    k = kh * kw * w.shape[1]  # a constant weight's dims
    params, pairs = _qlinear_params(ctx, node, k)
    if group == 1 and dw == 1:  # x padded with 4 bytes more, read in place (or x as it is)
        rows = D.add(D.mul(D.mul(D.mul(x.shape[0], D.add(h, pads[0] + pads[2])), D.add(wd, pads[1] + pads[3])),
                           x.shape[-1]), 4)
    else:  # the gathered windows, kernel rows padded to whole steps
        rows = D.mul(D.product(out.shape[:-1]), kh * (-(-(kw * w.shape[1]) // 4) * 4))
    ctx.scratch_bytes = D.add(group * _channel_bytes(w.shape[0] // group), rows)
    return [f"lep_qlinear_conv({params}, {d(x.shape[0])}, {d(h)}, {d(wd)}, {d(x.shape[-1])}, {d(oh)}, {d(ow)}, "
            f"{d(w.shape[0])}, {kh}, {kw}, {sh}, {sw}, {dh}, {dw}, {pads[0]}, {pads[1]}, {group}, {pairs}, "
            "(uint8_t*)scratch);"]


QUANTIZED_EMITTERS = {"matmul_wq": emit_matmul_wq, "matmul_w8a8": emit_matmul_w8a8, "quantize": emit_quantize,
                      "dequantize": emit_dequantize, "matmul_integer": emit_matmul_integer,
                      "qlinear_matmul": emit_qlinear_matmul, "qlinear_conv": emit_qlinear_conv}


def uses_quantized(graph: Graph) -> bool:
    return any(n.op in QUANTIZED_EMITTERS for n in graph.nodes)
