"""Convolution and pooling over N spatial dims.

The layout is N, C, spatial... with weights O, C/group, kernel...; conv,
max_pool and avg_pool also take `channels_last = true`: N, spatial..., C with
weights kernel..., C/group, O (NHWC and HWIO in two dims), the layout the cpu
target computes in (the `channels-last` pass). The reference of a
channels-last op is the channels-first one between transposes, so both give
the same numbers.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .. import dims as D
from ..dtypes import DType
from ..registry import PURE, Attr, define_op
from ..samples import op_samples
from ..types import TensorType
from .infer import require, require_float, same_dtype

STRUCTURED = PURE | {"structured"}


def _out_dim(size, k, stride, dilation, pad_begin, pad_end, ceil_mode=False):
    span = dilation * (k - 1) + 1
    if not isinstance(size, int):  # symbolic: exact when the stride divides every coefficient
        q = D.floordiv(D.add(size, pad_begin + pad_end - span), stride)
        return D.UNKNOWN if q == D.UNKNOWN or (ceil_mode and stride != 1) else D.add(q, 1)
    total = size + pad_begin + pad_end - span
    if ceil_mode:
        out = -(-total // stride) + 1
        if (out - 1) * stride >= size + pad_begin:  # the last window must start inside the input
            out -= 1
        return out
    return total // stride + 1


def _spatial(attrs_len: int, strides, pads, dilations):
    strides = strides or (1,) * attrs_len
    dilations = dilations or (1,) * attrs_len
    pads = pads or (0,) * (2 * attrs_len)
    return tuple(strides), tuple(pads), tuple(dilations)


def channels_first_perm(rank: int) -> tuple:
    """The perm that takes N, spatial..., C to N, C, spatial... (its inverse: channels_last_perm)."""
    return (0, rank - 1) + tuple(range(1, rank - 1))


def channels_last_perm(rank: int) -> tuple:
    """The perm that takes N, C, spatial... to N, spatial..., C."""
    return (0,) + tuple(range(2, rank)) + (1,)


def weight_channels_last_perm(rank: int) -> tuple:
    """The perm that takes a weight O, C/group, kernel... to kernel..., C/group, O."""
    return tuple(range(2, rank)) + (1, 0)


def weight_channels_first_perm(rank: int) -> tuple:
    """The perm that takes a weight kernel..., C/group, O to O, C/group, kernel...."""
    return (rank - 1, rank - 2) + tuple(range(rank - 2))


def _permuted(t: TensorType, perm) -> TensorType:
    return t.with_shape([t.shape[p] for p in perm])


def _channels_first_types(x: TensorType, w: TensorType | None = None) -> tuple:
    """x (and w) of a channels-last op as their channels-first types."""
    require(x.rank >= 3, f"a channels-last op needs rank >= 3 (N, spatial..., C), got rank {x.rank}")
    xs = _permuted(x, channels_first_perm(x.rank))
    if w is None:
        return xs, None
    require(w.rank == x.rank, f"conv: input rank {x.rank} and weight rank {w.rank} do not fit")
    return xs, _permuted(w, weight_channels_first_perm(w.rank))


def _conv_infer(x: TensorType, w: TensorType, *bias, strides, pads, dilations, group,
                channels_last=False) -> TensorType:
    if channels_last:
        xf, wf = _channels_first_types(x, w)
        y = _conv_infer(xf, wf, *bias, strides=strides, pads=pads, dilations=dilations, group=group)
        return _permuted(y, channels_last_perm(y.rank))
    dtype = same_dtype(x, w, *bias)
    require_float(x, "conv input")
    nsp = x.rank - 2
    require(nsp >= 1 and w.rank == x.rank, f"conv: input rank {x.rank} and weight rank {w.rank} do not fit")
    strides, pads, dilations = _spatial(nsp, strides, pads, dilations)
    require(len(strides) == nsp and len(dilations) == nsp and len(pads) == 2 * nsp,
            "conv: strides/dilations/pads lengths do not match the spatial rank")
    if isinstance(x.shape[1], int) and isinstance(w.shape[1], int):
        require(x.shape[1] == w.shape[1] * group,
                f"conv: input has {x.shape[1]} channels, weight expects {w.shape[1]} x group {group}")
    spatial = [_out_dim(x.shape[2 + i], w.shape[2 + i], strides[i], dilations[i], pads[i], pads[i + nsp])
               for i in range(nsp)]
    return TensorType(dtype, (x.shape[0], w.shape[0], *spatial))


def _windows(x, kernel, strides, pads, dilations, pad_value=0.0, extra_end=None):
    """View of x's sliding windows: (N, C, out..., k...) for kernel, strides, pads and dilations."""
    nsp = len(kernel)
    extra_end = extra_end or (0,) * nsp
    widths = [(0, 0), (0, 0)] + [(pads[i], pads[i + nsp] + extra_end[i]) for i in range(nsp)]
    xp = np.pad(x, widths, constant_values=pad_value) if any(sum(w) for w in widths) else x
    spans = [dilations[i] * (kernel[i] - 1) + 1 for i in range(nsp)]
    win = sliding_window_view(xp, spans, axis=tuple(range(2, 2 + nsp)))
    index = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides) + \
        tuple(slice(None, None, d) for d in dilations)
    return win[index]


_WINDOW_ATTRS = {"strides": Attr("ints", (), low=1), "pads": Attr("ints", (), low=0),
                 "dilations": Attr("ints", (), low=1)}
_CONV_ATTRS = {**_WINDOW_ATTRS, "group": Attr("int", 1, low=1)}


def _in_channels_first(fn, x, *operands, weight: bool = False, **attrs):
    """fn (a channels-first reference) on a channels-last x (and weight), its result back to channels last."""
    rank = x.ndim  # contiguous copies: the same arrays as the channels-first op gets, so the same numbers
    x = np.ascontiguousarray(np.transpose(x, channels_first_perm(rank)))
    if weight:
        operands = (np.ascontiguousarray(np.transpose(operands[0], weight_channels_first_perm(rank))),) + operands[1:]
    y = fn(x, *operands, **attrs)
    if isinstance(y, tuple):
        return tuple(np.ascontiguousarray(np.transpose(v, channels_last_perm(rank))) for v in y)
    return np.ascontiguousarray(np.transpose(y, channels_last_perm(rank)))


@define_op("conv", arity=(2, 3), infer=_conv_infer, traits=STRUCTURED, fusion="anchor", precision="low",
           attrs={**_CONV_ATTRS, "channels_last": ("bool", False)})
def conv(x, w, *bias, strides, pads, dilations, group, channels_last=False):
    """N-d convolution (cross-correlation) with groups; optional bias per output channel. Accumulates in f64:
    as the truth it must not depend on how the machine's BLAS rounds f32 sums (a model whose channels are equal
    in exact arithmetic keeps them equal)."""
    if channels_last:
        return _in_channels_first(conv, x, w, *bias, weight=True, strides=strides, pads=pads,
                                  dilations=dilations, group=group)
    nsp = x.ndim - 2
    strides, pads, dilations = _spatial(nsp, strides, pads, dilations)
    acc = np.float64
    win = _windows(x.astype(acc), w.shape[2:], strides, pads, dilations)  # N, C, out..., k...
    n, c = x.shape[:2]
    cg, og = c // group, w.shape[0] // group
    outs = []
    k_axes = tuple(range(2 + nsp, 2 + 2 * nsp))
    for g in range(group):
        wg = w[g * og:(g + 1) * og].astype(acc)  # og, cg, k...
        xg = win[:, g * cg:(g + 1) * cg]
        y = np.tensordot(xg, wg, axes=((1,) + k_axes, (1,) + tuple(range(2, 2 + nsp))))  # N, out..., og
        outs.append(np.moveaxis(y, -1, 1))
    y = np.concatenate(outs, axis=1) if group > 1 else outs[0]
    if bias:
        y = y + bias[0].astype(acc).reshape((1, -1) + (1,) * nsp)
    return np.ascontiguousarray(y).astype(x.dtype)


def _pool_infer(x: TensorType, kernel, strides, pads, dilations, ceil_mode, channels_last=False,
                **_) -> TensorType:
    if channels_last:
        y = _pool_infer(_channels_first_types(x)[0], kernel, strides, pads, dilations, ceil_mode)
        return _permuted(y, channels_last_perm(y.rank))
    nsp = x.rank - 2
    require(len(kernel) == nsp, f"pool kernel {list(kernel)} does not fit spatial rank {nsp}")
    strides, pads, dilations = _spatial(nsp, strides, pads, dilations)
    spatial = [_out_dim(x.shape[2 + i], kernel[i], strides[i], dilations[i], pads[i], pads[i + nsp], ceil_mode)
               for i in range(nsp)]
    return x.with_shape((x.shape[0], x.shape[1], *spatial))


def _ceil_extra(x, kernel, strides, pads, dilations, ceil_mode):
    """Extra end padding so that ceil-mode windows exist."""
    nsp = len(kernel)
    extra = []
    for i in range(nsp):
        out = _out_dim(x.shape[2 + i], kernel[i], strides[i], dilations[i], pads[i], pads[i + nsp], ceil_mode)
        need = (out - 1) * strides[i] + dilations[i] * (kernel[i] - 1) + 1
        extra.append(max(need - (x.shape[2 + i] + pads[i] + pads[i + nsp]), 0))
    return tuple(extra)


_POOL_ATTRS = {"kernel": Attr("ints", low=1), **_WINDOW_ATTRS, "ceil_mode": ("bool", False)}


def _lowest(dtype: np.dtype):
    """A padding value that never wins a max: -inf, or the lowest finite value of a float without inf
    (ml_dtypes' f8 types), or the lowest integer."""
    if dtype.kind == "f":
        return -np.inf
    if dtype.kind == "V":  # ml_dtypes floats (bf16, f8)
        return -np.inf if np.isinf(np.array(np.inf).astype(dtype)) else ml_dtypes.finfo(dtype).min
    return np.iinfo(dtype).min


@define_op("max_pool", infer=_pool_infer, attrs={**_POOL_ATTRS, "channels_last": ("bool", False)},
           traits=STRUCTURED)
def max_pool(x, kernel, strides, pads, dilations, ceil_mode, channels_last=False):
    """Max over sliding windows (padding never wins)."""
    if channels_last:
        return _in_channels_first(max_pool, x, kernel=kernel, strides=strides, pads=pads, dilations=dilations,
                                  ceil_mode=ceil_mode)
    nsp = x.ndim - 2
    strides, pads, dilations = _spatial(nsp, strides, pads, dilations)
    low = _lowest(x.dtype)
    extra = _ceil_extra(x, kernel, strides, pads, dilations, ceil_mode)
    win = _windows(x, kernel, strides, pads, dilations, pad_value=low, extra_end=extra)
    return np.ascontiguousarray(win.max(axis=tuple(range(-nsp, 0))))


@define_op("avg_pool", infer=_pool_infer, traits=STRUCTURED,
           attrs={**_POOL_ATTRS, "count_include_pad": ("bool", False), "channels_last": ("bool", False)})
def avg_pool(x, kernel, strides, pads, dilations, ceil_mode, count_include_pad, channels_last=False):
    """Mean over sliding windows; padding counts toward the divisor only with count_include_pad
    (the part of a ceil-mode window past the padded input never counts)."""
    if channels_last:
        return _in_channels_first(avg_pool, x, kernel=kernel, strides=strides, pads=pads, dilations=dilations,
                                  ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    nsp = x.ndim - 2
    strides, pads, dilations = _spatial(nsp, strides, pads, dilations)
    extra = _ceil_extra(x, kernel, strides, pads, dilations, ceil_mode)
    axes = tuple(range(-nsp, 0))
    acc = np.float64
    total = _windows(x.astype(acc), kernel, strides, pads, dilations, extra_end=extra).sum(axis=axes)
    ones = np.ones((1, 1) + x.shape[2:], acc)
    if count_include_pad:
        widths = [(0, 0), (0, 0)] + [(pads[i], pads[i + nsp]) for i in range(nsp)]
        ones = np.pad(ones, widths, constant_values=1.0)
        count = _windows(ones, kernel, strides, (0,) * (2 * nsp), dilations, extra_end=extra).sum(axis=axes)
    else:
        count = _windows(ones, kernel, strides, pads, dilations, extra_end=extra).sum(axis=axes)
    return np.ascontiguousarray(total / count).astype(x.dtype)


def _conv_transpose_infer(x: TensorType, w: TensorType, *bias, strides, pads, dilations, group,
                          output_padding) -> TensorType:
    dtype = same_dtype(x, w, *bias)
    require_float(x, "conv_transpose input")
    nsp = x.rank - 2
    require(nsp >= 1 and w.rank == x.rank, f"conv_transpose: input rank {x.rank} and weight rank {w.rank} do not fit")
    strides, pads, dilations = _spatial(nsp, strides, pads, dilations)
    output_padding = output_padding or (0,) * nsp
    require(len(output_padding) == nsp, "conv_transpose: output_padding does not match the spatial rank")
    if isinstance(x.shape[1], int) and isinstance(w.shape[0], int):
        require(x.shape[1] == w.shape[0], f"conv_transpose: input has {x.shape[1]} channels, weight {w.shape[0]}")
    spatial = []
    for i in range(nsp):
        d = x.shape[2 + i]
        k = w.shape[2 + i]
        extra = dilations[i] * (k - 1) + 1 + output_padding[i] - pads[i] - pads[i + nsp]
        spatial.append(D.add(D.mul(D.sub(d, 1), strides[i]), extra) if isinstance(k, int) else D.UNKNOWN)
    return TensorType(dtype, (x.shape[0], D.mul(w.shape[1], group), *spatial))


@define_op("conv_transpose", arity=(2, 3), infer=_conv_transpose_infer, traits=STRUCTURED,
           attrs={**_CONV_ATTRS, "output_padding": Attr("ints", (), low=0)})
def conv_transpose(x, w, *bias, strides, pads, dilations, group, output_padding):
    """Transposed convolution (the gradient of conv): weight (C_in, C_out / group, k...); pads crop the
    full result, output_padding extends its end."""
    nsp = x.ndim - 2
    strides, pads, dilations = _spatial(nsp, strides, pads, dilations)
    output_padding = output_padding or (0,) * nsp
    acc = np.float64 if x.dtype == np.float64 else np.float32
    xin, wt = x.astype(acc), w.astype(acc)
    n, c = x.shape[:2]
    cg, og = c // group, w.shape[1]
    kernel = w.shape[2:]
    full = [(x.shape[2 + i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 + output_padding[i]
            for i in range(nsp)]
    y = np.zeros((n, og * group, *full), acc)
    for g in range(group):
        xg = xin[:, g * cg:(g + 1) * cg]
        for k in np.ndindex(*kernel):
            wk = wt[(slice(g * cg, (g + 1) * cg), slice(None)) + k]  # cg, og
            contrib = np.moveaxis(np.tensordot(xg, wk, axes=([1], [0])), -1, 1)  # N, og, in...
            where = tuple(slice(k[i] * dilations[i], k[i] * dilations[i] + (x.shape[2 + i] - 1) * strides[i] + 1,
                                strides[i]) for i in range(nsp))
            y[(slice(None), slice(g * og, (g + 1) * og)) + where] += contrib
    crop = tuple(slice(pads[i], full[i] - pads[i + nsp]) for i in range(nsp))
    y = y[(slice(None), slice(None)) + crop]
    if bias:
        y = y + bias[0].astype(acc).reshape((1, -1) + (1,) * nsp)
    return np.ascontiguousarray(y).astype(x.dtype)


@define_op("lp_pool", infer=_pool_infer, attrs={**_POOL_ATTRS, "p": ("float", 2.0)}, traits=STRUCTURED)
def lp_pool(x, kernel, strides, pads, dilations, ceil_mode, p):
    """(sum over each window of |x|^p)^(1/p); padding counts as zeros."""
    nsp = x.ndim - 2
    strides, pads, dilations = _spatial(nsp, strides, pads, dilations)
    extra = _ceil_extra(x, kernel, strides, pads, dilations, ceil_mode)
    win = _windows(np.abs(x.astype(np.float64)) ** p, kernel, strides, pads, dilations, extra_end=extra)
    return np.ascontiguousarray(win.sum(axis=tuple(range(-nsp, 0))) ** (1.0 / p)).astype(x.dtype)


def _lrn_infer(x: TensorType, size, alpha, beta, bias) -> TensorType:
    require_float(x, "lrn input")
    require(x.rank >= 3, "lrn needs rank >= 3 (N, C, spatial...)")
    return x


@define_op("lrn", infer=_lrn_infer, traits=STRUCTURED,
           attrs={"size": Attr("int", low=1), "alpha": ("float", 1e-4), "beta": ("float", 0.75),
                  "bias": ("float", 1.0)})
def lrn(x, size, alpha, beta, bias):
    """Local response normalization across channels: x / (bias + alpha / size * sum of squares over the
    `size` channels around each one) ** beta."""
    sq = np.square(x.astype(np.float64))
    c = x.shape[1]
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    padded = np.pad(sq, [(0, 0), (lo, hi)] + [(0, 0)] * (x.ndim - 2))
    csum = np.cumsum(padded, axis=1)
    csum = np.concatenate([np.zeros_like(csum[:, :1]), csum], axis=1)
    window = csum[:, size:size + c] - csum[:, :c]
    return (x / (bias + alpha / size * window) ** beta).astype(x.dtype)


def _pool_indices_infer(x: TensorType, kernel, strides, pads, dilations, ceil_mode, storage_order) -> list:
    out = _pool_infer(x, kernel, strides, pads, dilations, ceil_mode)
    return [out, out.with_dtype(DType.i64)]


@define_op("max_pool_with_indices", infer=_pool_indices_infer, traits=STRUCTURED,
           attrs={**_POOL_ATTRS, "storage_order": ("int", 0)})
def max_pool_with_indices(x, kernel, strides, pads, dilations, ceil_mode, storage_order):
    """max_pool and, for each maximum, its flat index into x (spatial dims row-major, or column-major
    with storage_order=1); the first maximum of a window wins."""
    nsp = x.ndim - 2
    strides, pads, dilations = _spatial(nsp, strides, pads, dilations)
    low = _lowest(x.dtype)
    extra = _ceil_extra(x, kernel, strides, pads, dilations, ceil_mode)
    win = _windows(x, kernel, strides, pads, dilations, pad_value=low, extra_end=extra)
    out_sp = win.shape[2:2 + nsp]
    flat = win.reshape(win.shape[:2 + nsp] + (-1,))
    arg = flat.argmax(axis=-1)
    values = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
    kidx = np.unravel_index(arg, tuple(kernel))
    coords = []
    for i in range(nsp):
        o = np.arange(out_sp[i]).reshape((1, 1) + tuple(-1 if j == i else 1 for j in range(nsp)))
        coords.append(o * strides[i] + kidx[i] * dilations[i] - pads[i])
    sp = x.shape[2:]
    if storage_order:
        idx, mul = np.zeros_like(arg), 1
        for i in range(nsp):
            idx, mul = idx + coords[i] * mul, mul * sp[i]
    else:
        idx = np.zeros_like(arg)
        for i in range(nsp):
            idx = idx * sp[i] + coords[i]
    base = (np.arange(x.shape[0])[:, None] * x.shape[1] + np.arange(x.shape[1])[None, :]) * int(np.prod(sp))
    idx = idx + base.reshape(base.shape + (1,) * nsp)
    return np.ascontiguousarray(values), idx.astype(np.int64)


def _unpool_infer(x: TensorType, idx: TensorType, output_shape) -> TensorType:
    require(idx.dtype is DType.i64, "max_unpool indices must be i64")
    require(len(output_shape) == x.rank, f"max_unpool output_shape needs {x.rank} dims")
    return x.with_shape(output_shape)


@define_op("max_unpool", arity=2, infer=_unpool_infer, attrs={"output_shape": "shape"}, traits=STRUCTURED)
def max_unpool(x, idx, output_shape):
    """Zeros of output_shape with each x element written at its flat index."""
    out = np.zeros(int(np.prod(output_shape)), dtype=x.dtype)
    out[idx.reshape(-1)] = x.reshape(-1)
    return out.reshape(output_shape)


def _col2im_infer(x: TensorType, image_shape, block_shape, strides, pads, dilations) -> TensorType:
    nsp = len(image_shape)
    require(len(block_shape) == nsp, "col2im: image and block shapes differ in rank")
    require(x.rank == 3, "col2im input must be (N, C * prod(block), L)")
    c = D.divide_exact(x.shape[1], int(np.prod(block_shape)))
    strides, pads, dilations = _spatial(nsp, strides, pads, dilations)
    blocks = int(np.prod([(image_shape[i] + pads[i] + pads[i + nsp] - dilations[i] * (block_shape[i] - 1) - 1)
                          // strides[i] + 1 for i in range(nsp)]))
    require(D.compatible(x.shape[2], blocks), f"col2im: {blocks} blocks fit the image, the input has {x.shape[2]}")
    return x.with_shape((x.shape[0], c, *image_shape))


@define_op("col2im", infer=_col2im_infer, traits=STRUCTURED,
           attrs={"image_shape": Attr("ints", low=0), "block_shape": Attr("ints", low=1), **_WINDOW_ATTRS})
def col2im(x, image_shape, block_shape, strides, pads, dilations):
    """Sum sliding blocks (the columns of x) back into an image: the inverse layout of im2col."""
    nsp = len(image_shape)
    strides, pads, dilations = _spatial(nsp, strides, pads, dilations)
    n, ck, _ = x.shape
    kprod = int(np.prod(block_shape))
    c = ck // kprod
    padded = [image_shape[i] + pads[i] + pads[i + nsp] for i in range(nsp)]
    outs = [(padded[i] - dilations[i] * (block_shape[i] - 1) - 1) // strides[i] + 1 for i in range(nsp)]
    acc = np.float64
    cols = x.astype(acc).reshape((n, c) + tuple(block_shape) + tuple(outs))
    y = np.zeros((n, c) + tuple(padded), acc)
    for k in np.ndindex(*block_shape):
        where = tuple(slice(k[i] * dilations[i], k[i] * dilations[i] + (outs[i] - 1) * strides[i] + 1, strides[i])
                      for i in range(nsp))
        y[(slice(None), slice(None)) + where] += cols[(slice(None), slice(None)) + k]
    crop = tuple(slice(pads[i], pads[i] + image_shape[i]) for i in range(nsp))
    return np.ascontiguousarray(y[(slice(None), slice(None)) + crop]).astype(x.dtype)


def _col2im_dynamic_infer(x: TensorType, image: TensorType, block: TensorType, strides, pads, dilations):
    require(image.rank == 1 and block.rank == 1 and isinstance(image.shape[0], int), "col2im_dynamic shapes must be 1-D")
    return x.with_shape((x.shape[0], D.UNKNOWN) + (D.UNKNOWN,) * image.shape[0])


@define_op("col2im_dynamic", arity=3, infer=_col2im_dynamic_infer, traits=STRUCTURED,
           attrs=_WINDOW_ATTRS)
def col2im_dynamic(x, image_shape, block_shape, strides, pads, dilations):
    """col2im with run-time image and block shapes."""
    image, block = tuple(int(v) for v in image_shape), tuple(int(v) for v in block_shape)
    return col2im(x, image, block, strides, pads or (0,) * (2 * len(image)), dilations)


def _deform_infer(x: TensorType, w: TensorType, offset: TensorType, *rest, strides, pads, dilations, group,
                  offset_group, has_bias, has_mask) -> TensorType:
    dtype = same_dtype(x, w, offset, *rest)
    require(x.rank == 4, "deform_conv supports 2-D convolution (input N, C, H, W)")
    require(len(rest) == int(has_bias) + int(has_mask), "deform_conv operands do not match has_bias / has_mask")
    return TensorType(dtype, (x.shape[0], w.shape[0], offset.shape[2], offset.shape[3]))


@define_op("deform_conv", arity=(3, 5), infer=_deform_infer, traits=STRUCTURED,
           attrs={**_CONV_ATTRS, "offset_group": Attr("int", 1, low=1), "has_bias": ("bool", False),
                  "has_mask": ("bool", False)})
def deform_conv(x, w, offset, *rest, strides, pads, dilations, group, offset_group, has_bias, has_mask):
    """Deformable 2-D convolution: each kernel tap samples x (bilinear, zero outside) at its position
    plus a learned offset, optionally scaled by a mask; then the taps are weighted as in conv."""
    bias = rest[0] if has_bias else None
    mask = rest[-1] if has_mask else None
    strides, pads, dilations = _spatial(2, strides, pads, dilations)
    n, c, h, wd = x.shape
    oc, cg, kh, kw = w.shape
    oh, ow = offset.shape[2:]
    k = kh * kw
    off = offset.astype(np.float64).reshape(n, offset_group, kh, kw, 2, oh, ow)
    base_y = (-pads[0] + strides[0] * np.arange(oh))[None, None, None, None, :, None] + \
        (dilations[0] * np.arange(kh))[None, None, :, None, None, None]
    base_x = (-pads[1] + strides[1] * np.arange(ow))[None, None, None, None, None, :] + \
        (dilations[1] * np.arange(kw))[None, None, None, :, None, None]
    py = base_y + off[:, :, :, :, 0]  # n, og, kh, kw, oh, ow
    px = base_x + off[:, :, :, :, 1]
    y0, x0 = np.floor(py).astype(np.int64), np.floor(px).astype(np.int64)
    ly, lx = py - y0, px - x0
    data = x.astype(np.float64).reshape(n, offset_group, c // offset_group, h, wd)
    bidx = np.arange(n)[:, None, None, None, None, None]
    gidx = np.arange(offset_group)[None, :, None, None, None, None]
    cols = 0.0
    for dy, dx, wt in ((0, 0, (1 - ly) * (1 - lx)), (0, 1, (1 - ly) * lx), (1, 0, ly * (1 - lx)), (1, 1, ly * lx)):
        yy, xx = y0 + dy, x0 + dx
        ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < wd)
        vals = data[bidx, gidx, :, np.clip(yy, 0, h - 1), np.clip(xx, 0, wd - 1)]  # n, og, kh, kw, oh, ow, cpg
        cols = cols + np.where(ok, wt, 0.0)[..., None] * vals
    if mask is not None:
        cols = cols * mask.astype(np.float64).reshape(n, offset_group, kh, kw, oh, ow)[..., None]
    cols = np.moveaxis(cols, -1, 2).reshape(n, c, k, oh, ow)  # channels in offset-group order = input order
    og = oc // group
    outs = []
    for g in range(group):
        wg = w[g * og:(g + 1) * og].astype(np.float64).reshape(og, cg * k)
        colg = cols[:, g * cg:(g + 1) * cg].reshape(n, cg * k, oh * ow)
        outs.append(np.einsum("ok,nkp->nop", wg, colg))
    y = np.concatenate(outs, axis=1).reshape(n, oc, oh, ow)
    if bias is not None:
        y = y + bias.astype(np.float64).reshape(1, -1, 1, 1)
    return y.astype(x.dtype)


@op_samples
def _samples(s):
    return {
        "conv": [
            s(s.f32(2, 3, 8, 8), s.f32(4, 3, 3, 3)),
            s(s.f32(2, 3, 8, 8), s.f32(4, 3, 3, 3), s.f32(4), strides=(2, 1), pads=(1, 1, 0, 2)),
            s(s.f32(1, 4, 9, 9), s.f32(6, 2, 3, 3), group=2, dilations=(2, 2), pads=(2, 2, 2, 2)),
            s(s.f32(2, 4, 10), s.f32(4, 1, 3), s.f32(4), group=4, pads=(1, 1)),
            s(s.f32(1, 2, 4, 5, 5), s.f32(3, 2, 2, 3, 3), strides=(1, 2, 2)),
        ],
        "max_pool": [
            s(s.f32(2, 3, 8, 8), kernel=(2, 2), strides=(2, 2)),
            s(s.f32(1, 2, 7, 7), kernel=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1), ceil_mode=True),
            s(s.ints(1, 2, 6, dtype=np.int32), kernel=(2,), dilations=(2,)),
        ],
        "avg_pool": [
            s(s.f32(2, 3, 8, 8), kernel=(2, 2), strides=(2, 2)),
            s(s.f32(1, 2, 7, 7), kernel=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1)),
            s(s.f32(1, 2, 7, 7), kernel=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1), count_include_pad=True, ceil_mode=True),
            s(s.f32(1, 2, 6, 6), kernel=(2, 2), strides=(2, 2), ceil_mode=True),
        ],
        "conv_transpose": [
            s(s.f32(2, 3, 5, 5), s.f32(3, 4, 3, 3)),
            s(s.f32(1, 4, 4, 5), s.f32(4, 3, 3, 2), s.f32(6), strides=(2, 3), pads=(1, 0, 2, 1), dilations=(1, 2), group=2, output_padding=(1, 2)),
            s(s.f32(2, 2, 7), s.f32(2, 3, 4), strides=(2,), pads=(1, 1)),
        ],
        "lp_pool": [
            s(s.f32(2, 3, 6, 6), kernel=(2, 2), strides=(2, 2)),
            s(s.f32(1, 2, 7, 7), kernel=(3, 3), pads=(1, 1, 1, 1), p=3.0),
        ],
        "lrn": [s(s.f32(2, 5, 3, 3), size=3), s(s.f32(1, 6, 4), size=4, alpha=0.01, beta=0.5, bias=2.0)],
        "max_pool_with_indices": [
            s(s.f32(2, 3, 6, 6), kernel=(2, 2), strides=(2, 2)),
            s(s.f32(1, 2, 5, 7), kernel=(3, 2), pads=(1, 0, 1, 1), storage_order=1),
            s(np.zeros((1, 1, 4, 4), np.float32), kernel=(2, 2), strides=(2, 2)),
        ],
        "max_unpool": [
            s(s.f32(1, 2, 2, 2), np.array([0, 3, 9, 15, 17, 22, 27, 31]).reshape(1, 2, 2, 2), output_shape=(1, 2, 4, 4)),
        ],
        "col2im": [
            s(s.f32(2, 3 * 4, 9), image_shape=(4, 4), block_shape=(2, 2)),
            s(s.f32(1, 2 * 6, 6), image_shape=(5, 5), block_shape=(2, 3), strides=(2, 2), pads=(1, 0, 1, 1), dilations=(1, 1)),
        ],
        "col2im_dynamic": [s(s.f32(2, 3 * 4, 9), s.const(4, 4), s.const(2, 2))],
        "deform_conv": [
            s(s.f32(2, 4, 6, 6), s.f32(6, 2, 3, 3), s.f32(2, 2 * 9 * 2, 4, 4), group=2, offset_group=2),
            s(s.f32(1, 2, 5, 6), s.f32(3, 2, 2, 2), s.f32(1, 8, 5, 4, low=-3, high=3), s.f32(3), s.f32(1, 4, 5, 4, low=0, high=1), pads=(1, 0, 1, 0), strides=(1, 2), dilations=(1, 2), has_bias=True, has_mask=True),
        ],
    }
