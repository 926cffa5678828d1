"""Lowering of conv, conv_transpose and col2im (stablehlo.convolution), of the pooling ops
max_pool, avg_pool, lp_pool, max_pool_with_indices and lrn (stablehlo.reduce_window), of max_unpool,
and of deform_conv (bilinear gathers, then dot_general)."""
from __future__ import annotations

import numpy as np

from ...ir.dtypes import DType
from ...ir.errors import LeptoncError
from ...ir.types import TensorType
from .builder import Builder, Val, dims_list, i64_array, i64_matrix
from .layout import scatter
from .linalg import PRECISION, dot, widen
from .reduction import identity
from .rules import lowers


def _channels_first(node) -> None:
    if node.attrs.get("channels_last"):
        raise LeptoncError(f"stablehlo: channels-last {node.label} is not supported (the channels-last pass is "
                           "for the cpu target)")


def _spatial(nsp: int, attrs):
    strides = attrs["strides"] or (1,) * nsp
    dilations = attrs["dilations"] or (1,) * nsp
    pads = attrs["pads"] or (0,) * (2 * nsp)
    return tuple(strides), tuple(pads), tuple(dilations)


@lowers("conv")
def conv(b: Builder, node, args, out, attrs):
    _channels_first(node)
    x, w = widen(b, args[0]), widen(b, args[1])
    nsp = len(x.shape) - 2
    strides, pads, dilations = _spatial(nsp, attrs)
    sp = ", ".join(str(i) for i in range(nsp))
    y = b.op1("stablehlo.convolution", [x, w], out[0].with_dtype(x.dtype), {
        "dimension_numbers": f"#stablehlo.conv<[b, f, {sp}]x[o, i, {sp}]->[b, f, {sp}]>",
        "window_strides": i64_array(strides),
        "padding": i64_matrix([(pads[i], pads[i + nsp]) for i in range(nsp)]),
        "lhs_dilation": i64_array([1] * nsp), "rhs_dilation": i64_array(dilations),
        "feature_group_count": f"{attrs['group']} : i64", "batch_group_count": "1 : i64",
        "precision_config": PRECISION})
    if len(args) == 3:
        y = b.binary("add", y, b.broadcast_in_dim(widen(b, args[2]), y.shape, [1]))
    return b.convert(y, out[0].dtype)


def _pool_window(x_shape, out_shape, attrs):
    """Window, strides, dilations and padding (with ceil-mode's extra end padding) over all dims."""
    nsp = len(x_shape) - 2
    kernel = tuple(attrs["kernel"])
    strides, pads, dilations = _spatial(nsp, attrs)
    padding = [(0, 0), (0, 0)]
    for i in range(nsp):
        need = (out_shape[2 + i] - 1) * strides[i] + dilations[i] * (kernel[i] - 1) + 1
        extra = max(need - (x_shape[2 + i] + pads[i] + pads[i + nsp]), 0)
        padding.append((pads[i], pads[i + nsp] + extra))
    return ((1, 1) + kernel, (1, 1) + strides, (1, 1) + dilations, padding)


def reduce_window(b: Builder, x: Val, init, combine: str, window, strides, dilations, padding, shape) -> Val:
    scalar = TensorType(x.dtype, ())
    return b.op1("stablehlo.reduce_window", [x, b.scalar(init, x.dtype)], x.type.with_shape(shape),
                 {"window_dimensions": i64_array(window), "window_strides": i64_array(strides),
                  "window_dilations": i64_array(dilations), "padding": i64_matrix(padding)},
                 [([scalar, scalar], lambda p, q: [b.binary(combine, p, q)])])


@lowers("max_pool")
def max_pool(b: Builder, node, args, out, attrs):
    _channels_first(node)
    x = args[0]
    window, strides, dilations, padding = _pool_window(x.shape, out[0].shape, attrs)
    return reduce_window(b, x, identity("reduce_max", x.dtype), "maximum", window, strides, dilations,
                         padding, out[0].shape)


@lowers("avg_pool")
def avg_pool(b: Builder, node, args, out, attrs):
    """Window sums divided by how many elements each window covers (a reduce_window over ones)."""
    _channels_first(node)
    x = args[0]
    acc = DType.f64 if x.dtype is DType.f64 else DType.f32
    window, strides, dilations, padding = _pool_window(x.shape, out[0].shape, attrs)
    shape = out[0].shape
    total = reduce_window(b, b.convert(x, acc), 0, "add", window, strides, dilations, padding, shape)
    ones = b.constant(np.ones((1, 1) + tuple(x.shape[2:]), acc.numpy))
    count_shape = (1, 1) + tuple(shape[2:])
    if attrs["count_include_pad"]:  # padding counts, the ceil-mode overhang does not
        nsp = len(x.shape) - 2
        pads = _spatial(nsp, attrs)[1]
        lo, hi = [0, 0] + list(pads[:nsp]), [0, 0] + list(pads[nsp:])
        ones = b.op1("stablehlo.pad", [ones, b.scalar(1, acc)],
                     ones.type.with_shape([d + l + h for d, l, h in zip(ones.shape, lo, hi)]),
                     {"edge_padding_low": i64_array(lo), "edge_padding_high": i64_array(hi),
                      "interior_padding": i64_array([0] * len(lo))})
        padding = [(0, p_hi - h) for (_, p_hi), h in zip(padding, hi)]
    count = reduce_window(b, ones, 0, "add", window, strides, dilations, padding, count_shape)
    mean = b.binary("divide", total, b.broadcast_in_dim(count, shape, range(len(shape))))
    return b.convert(mean, x.dtype)


def transposed_conv(b: Builder, x: Val, w: Val, strides, pads, dilations, group: int, output_padding, out) -> Val:
    """The gradient of conv as a convolution: dilate the input by the strides, flip the kernel,
    swap its in/out channels within each group, and pad by the kernel span minus the crop."""
    nsp = len(x.shape) - 2
    cin, cout_g, kernel = w.shape[0], w.shape[1], tuple(w.shape[2:])
    wg = b.reshape(w, (group, cin // group, cout_g) + kernel)
    wg = b.transpose(wg, (0, 2, 1) + tuple(range(3, 3 + nsp)))
    wk = b.reshape(wg, (group * cout_g, cin // group) + kernel)
    wk = b.op1("stablehlo.reverse", [wk], wk.type, {"dimensions": i64_array(range(2, 2 + nsp))})
    span = [dilations[i] * (kernel[i] - 1) for i in range(nsp)]
    padding = [(span[i] - pads[i], span[i] - pads[i + nsp] + output_padding[i]) for i in range(nsp)]
    sp = ", ".join(str(i) for i in range(nsp))
    return b.op1("stablehlo.convolution", [x, wk], out.with_dtype(x.dtype), {
        "dimension_numbers": f"#stablehlo.conv<[b, f, {sp}]x[o, i, {sp}]->[b, f, {sp}]>",
        "window_strides": i64_array([1] * nsp), "padding": i64_matrix(padding),
        "lhs_dilation": i64_array(strides), "rhs_dilation": i64_array(dilations),
        "feature_group_count": f"{group} : i64", "batch_group_count": "1 : i64", "precision_config": PRECISION})


@lowers("conv_transpose")
def conv_transpose(b: Builder, node, args, out, attrs):
    x, w = widen(b, args[0]), widen(b, args[1])
    nsp = len(x.shape) - 2
    strides, pads, dilations = _spatial(nsp, attrs)
    y = transposed_conv(b, x, w, strides, pads, dilations, attrs["group"],
                        attrs["output_padding"] or (0,) * nsp, out[0])
    if len(args) == 3:
        y = b.binary("add", y, b.broadcast_in_dim(widen(b, args[2]), y.shape, [1]))
    return b.convert(y, out[0].dtype)


@lowers("col2im")
def col2im(b: Builder, node, args, out, attrs):
    """Summing blocks back into an image is a transposed convolution with a one-hot kernel per channel."""
    x = widen(b, args[0])
    block, image = tuple(attrs["block_shape"]), tuple(attrs["image_shape"])
    nsp, k = len(block), int(np.prod(block))
    strides, pads, dilations = _spatial(nsp, attrs)
    padded = [image[i] + pads[i] + pads[i + nsp] for i in range(nsp)]
    outs = [(padded[i] - dilations[i] * (block[i] - 1) - 1) // strides[i] + 1 for i in range(nsp)]
    full = [(outs[i] - 1) * strides[i] + dilations[i] * (block[i] - 1) + 1 for i in range(nsp)]
    n, ck = x.shape[0], x.shape[1]
    cols = b.reshape(x, (n, ck) + tuple(outs))
    one_hot = np.tile(np.eye(k, dtype=x.dtype.numpy).reshape((k, 1) + block), (ck // k,) + (1,) * (nsp + 1))
    y = transposed_conv(b, cols, b.constant(one_hot), strides, pads, dilations, ck // k,
                        [padded[i] - full[i] for i in range(nsp)], out[0])
    return b.convert(y, out[0].dtype)


@lowers("lp_pool")
def lp_pool(b: Builder, node, args, out, attrs):
    """(window sum of |x|^p)^(1/p); padding adds zeros."""
    x = args[0]
    acc = DType.f64 if x.dtype is DType.f64 else DType.f32
    window, strides, dilations, padding = _pool_window(x.shape, out[0].shape, attrs)
    powered = b.binary("power", b.unary("abs", b.convert(x, acc)), b.full(attrs["p"], x.type.with_dtype(acc)))
    total = reduce_window(b, powered, 0, "add", window, strides, dilations, padding, out[0].shape)
    return b.convert(b.binary("power", total, b.full(1.0 / attrs["p"], total.type)), out[0].dtype)


@lowers("lrn")
def lrn(b: Builder, node, args, out, attrs):
    """x / (bias + alpha / size * sum of squares over `size` neighbouring channels) ** beta."""
    x = args[0]
    acc = DType.f64 if x.dtype is DType.f64 else DType.f32
    wide = b.convert(x, acc)
    size, rank = attrs["size"], len(x.shape)
    lo = (size - 1) // 2
    window = [size if d == 1 else 1 for d in range(rank)]
    padding = [(lo, size - 1 - lo) if d == 1 else (0, 0) for d in range(rank)]
    sums = reduce_window(b, b.binary("multiply", wide, wide), 0, "add", window, [1] * rank, [1] * rank,
                         padding, x.shape)
    scale = b.binary("add", b.full(attrs["bias"], sums.type),
                     b.binary("multiply", b.full(attrs["alpha"] / size, sums.type), sums))
    y = b.binary("divide", wide, b.binary("power", scale, b.full(attrs["beta"], sums.type)))
    return b.convert(y, out[0].dtype)


@lowers("max_pool_with_indices")
def max_pool_with_indices(b: Builder, node, args, out, attrs):
    """A two-operand reduce_window over values and their flat row-major indices (the first maximum
    wins); column-major indices (storage_order=1) are converted from the row-major ones."""
    x = args[0]
    window, strides, dilations, padding = _pool_window(x.shape, out[0].shape, attrs)
    numel = int(np.prod(x.shape))
    index = b.reshape(b.iota(TensorType(DType.i64, (numel,)), 0), x.shape)
    sv, si = TensorType(x.dtype, ()), TensorType(DType.i64, ())

    def body(av: Val, ai: Val, bv: Val, bi: Val):
        tie = b.binary("and", b.compare(av, bv, "EQ"), b.compare(ai, bi, "LT"))
        wins = b.binary("or", b.compare(av, bv, "GT"), tie)
        return [b.select(wins, av, bv), b.select(wins, ai, bi)]

    values, indices = b.op("stablehlo.reduce_window",
                           [x, index, b.scalar(identity("reduce_max", x.dtype), x.dtype), b.scalar(numel, DType.i64)],
                           [out[0], out[1]],
                           {"window_dimensions": i64_array(window), "window_strides": i64_array(strides),
                            "window_dilations": i64_array(dilations), "padding": i64_matrix(padding)},
                           [([sv, si, sv, si], body)])
    if attrs["storage_order"]:
        indices = _column_major(b, indices, tuple(x.shape[2:]))
    return [values, indices]


def _column_major(b: Builder, flat: Val, spatial) -> Val:
    """Row-major flat indices into (N, C, spatial...) as (n*C + c) * prod(spatial) + column-major offset."""
    size = int(np.prod(spatial))
    base = b.binary("multiply", b.binary("divide", flat, b.full(size, flat.type)), b.full(size, flat.type))
    rest = b.binary("remainder", flat, b.full(size, flat.type))
    result, stride_cm = base, 1
    for i, d in enumerate(spatial):  # coordinate i of the row-major offset
        stride_rm = int(np.prod(spatial[i + 1:]))
        coord = b.binary("remainder", b.binary("divide", rest, b.full(stride_rm, flat.type)), b.full(d, flat.type))
        result = b.binary("add", result, b.binary("multiply", coord, b.full(stride_cm, flat.type)))
        stride_cm *= d
    return result


@lowers("max_unpool")
def max_unpool(b: Builder, node, args, out, attrs):
    """Zeros of the output size with each x element written at its flat index."""
    x, idx = args
    numel, count = int(np.prod(out[0].shape)), int(np.prod(x.shape))
    flat = b.full(0, TensorType(x.dtype, (numel,)))
    numbers = ("#stablehlo.scatter<update_window_dims = [], inserted_window_dims = [0], "
               "scatter_dims_to_operand_dims = [0], index_vector_dim = 1>")
    y = scatter(b, flat, b.reshape(idx, (count, 1)), b.reshape(x, (count,)), "none", numbers)
    return b.reshape(y, out[0].shape)


def gather_pixels(b: Builder, data: Val, lead_index: list[Val], y: Val, x: Val) -> Val:
    """data[i0, i1, ..., :, y, x] for data (d0, d1, ..., C, H, W): the leading indices, y and x are
    integer arrays of one shape L; the result is L + (C,). Indices must be in range."""
    lead = tuple(y.shape)
    cols = [b.reshape(v, lead + (1,)) for v in lead_index + [y, x]]
    coords = b.concatenate(cols, len(lead))
    nlead = len(lead_index)
    every = list(range(nlead)) + [nlead + 1, nlead + 2]
    numbers = (f"#stablehlo.gather<offset_dims = [{len(lead)}], collapsed_slice_dims = {dims_list(every)}, "
               f"start_index_map = {dims_list(every)}, index_vector_dim = {len(lead)}>")
    c = data.shape[nlead]
    return b.op1("stablehlo.gather", [data, coords], data.type.with_shape(lead + (c,)),
                 {"dimension_numbers": numbers, "slice_sizes": i64_array([1] * nlead + [c, 1, 1]),
                  "indices_are_sorted": "false"})


def _bilinear_corners(b: Builder, py: Val, px: Val, h: int, w: int):
    """For sample positions (py, px): the four (weight, valid, y, x) corners of bilinear
    interpolation, y and x clamped into the image (the weight is zero where the corner is outside)."""
    y0, x0 = b.unary("floor", py), b.unary("floor", px)
    ly, lx = b.binary("subtract", py, y0), b.binary("subtract", px, x0)
    one = b.full(1, ly.type)
    hy, hx = b.binary("subtract", one, ly), b.binary("subtract", one, lx)
    corners = []
    for dy, dx, wy, wx in ((0, 0, hy, hx), (0, 1, hy, lx), (1, 0, ly, hx), (1, 1, ly, lx)):
        yy = b.convert(b.binary("add", y0, b.full(dy, y0.type)), DType.i64)
        xx = b.convert(b.binary("add", x0, b.full(dx, x0.type)), DType.i64)
        ok = b.binary("and", b.binary("and", b.compare(yy, b.full(0, yy.type), "GE"),
                                      b.compare(yy, b.full(h, yy.type), "LT")),
                      b.binary("and", b.compare(xx, b.full(0, xx.type), "GE"), b.compare(xx, b.full(w, xx.type), "LT")))
        weight = b.select(ok, b.binary("multiply", wy, wx), b.full(0, ly.type))
        clamp = [b.binary("minimum", b.binary("maximum", v, b.full(0, v.type)), b.full(n - 1, v.type))
                 for v, n in ((yy, h), (xx, w))]
        corners.append((weight, clamp[0], clamp[1]))
    return corners


@lowers("deform_conv")
def deform_conv(b: Builder, node, args, out, attrs):
    """Bilinear samples of x at each tap's position plus its offset (times the mask), gathered into
    columns, then one dot_general per group of weights, as the reference does."""
    acc = DType.f64 if args[0].dtype is DType.f64 else DType.f32
    x, w, offset = (b.convert(v, acc) for v in args[:3])
    rest = [b.convert(v, acc) for v in args[3:]]
    bias = rest[0] if attrs["has_bias"] else None
    mask = rest[-1] if attrs["has_mask"] else None
    strides, pads, dilations = _spatial(2, attrs)
    n, c, h, wd = x.shape
    oc, cg, kh, kw = w.shape
    oh, ow = offset.shape[2:]
    og, group = attrs["offset_group"], attrs["group"]
    lead = (n, og, kh, kw, oh, ow)
    off = b.reshape(offset, (n, og, kh, kw, 2, oh, ow))
    pos = []
    for axis, (base_shape, s, p, d) in enumerate((((kh, 1, oh, 1), strides[0], pads[0], dilations[0]),
                                                  ((1, kw, 1, ow), strides[1], pads[1], dilations[1]))):
        taps = np.arange(kh if axis == 0 else kw)
        outs = np.arange(oh if axis == 0 else ow)
        base = (-p + s * outs)[None, :] + (d * taps)[:, None]  # taps, outs
        base = np.broadcast_to(base.reshape(base_shape), (kh, kw, oh, ow)).astype(acc.numpy)
        part = b.reshape(b.slice(off, [0, 0, 0, 0, axis, 0, 0], [n, og, kh, kw, axis + 1, oh, ow]), lead)
        pos.append(b.binary("add", part, b.broadcast_in_dim(b.constant(np.ascontiguousarray(base)), lead, [2, 3, 4, 5])))
    data = b.reshape(x, (n, og, c // og, h, wd))
    index = [b.iota(TensorType(DType.i64, lead), 0), b.iota(TensorType(DType.i64, lead), 1)]
    cols = None
    for weight, yy, xx in _bilinear_corners(b, pos[0], pos[1], h, wd):
        vals = gather_pixels(b, data, index, yy, xx)  # lead + (cpg,)
        term = b.binary("multiply", vals, b.broadcast_in_dim(weight, vals.shape, range(6)))
        cols = term if cols is None else b.binary("add", cols, term)
    if mask is not None:
        cols = b.binary("multiply", cols, b.broadcast_in_dim(b.reshape(mask, lead), cols.shape, range(6)))
    k = kh * kw
    cols = b.transpose(cols, (0, 1, 6, 2, 3, 4, 5))  # n, og, cpg, kh, kw, oh, ow: channels in input order
    cols = b.reshape(cols, (n, group, cg * k, oh * ow))
    wg = b.reshape(w, (group, oc // group, cg * k))
    y = dot(b, wg, cols, ([0], [1]), ([2], [2]), (group, oc // group, n, oh * ow))
    y = b.reshape(b.transpose(y, (2, 0, 1, 3)), (n, oc, oh, ow))
    if bias is not None:
        y = b.binary("add", y, b.broadcast_in_dim(bias, y.shape, [1]))
    return b.convert(y, out[0].dtype)
