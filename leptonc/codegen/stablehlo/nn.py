"""Lowering of conv (stablehlo.convolution) and max_pool/avg_pool (stablehlo.reduce_window)."""
from __future__ import annotations

import numpy as np

from ...ir.dtypes import DType
from ...ir.types import TensorType
from .builder import Builder, Val, i64_array, i64_matrix
from .linalg import PRECISION, widen
from .reduction import identity
from .rules import lowers


def _spatial(nsp: int, attrs):
    strides = attrs["strides"] or (1,) * nsp
    dilations = attrs["dilations"] or (1,) * nsp
    pads = attrs["pads"] or (0,) * (2 * nsp)
    return tuple(strides), tuple(pads), tuple(dilations)


@lowers("conv")
def conv(b: Builder, node, args, out, attrs):
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
    x = args[0]
    window, strides, dilations, padding = _pool_window(x.shape, out[0].shape, attrs)
    return reduce_window(b, x, identity("reduce_max", x.dtype), "maximum", window, strides, dilations,
                         padding, out[0].shape)


@lowers("avg_pool")
def avg_pool(b: Builder, node, args, out, attrs):
    """Window sums divided by how many elements each window covers (a reduce_window over ones)."""
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
