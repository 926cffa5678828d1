"""Convolution and pooling over N spatial dims (layout N, C, spatial...)."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .. import dims as D
from ..registry import PURE, define_op
from ..types import TensorType
from .infer import require, require_float, same_dtype

STRUCTURED = PURE | {"structured"}


def _out_dim(size, k, stride, dilation, pad_begin, pad_end, ceil_mode=False):
    span = dilation * (k - 1) + 1
    if not isinstance(size, int):
        return D.floordiv(D.add(size, pad_begin + pad_end - span), stride) if stride == 1 else D.UNKNOWN
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


def _conv_infer(x: TensorType, w: TensorType, *bias, strides, pads, dilations, group) -> TensorType:
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


_CONV_ATTRS = {"strides": ("ints", ()), "pads": ("ints", ()), "dilations": ("ints", ()), "group": ("int", 1)}


@define_op("conv", arity=(2, 3), infer=_conv_infer, attrs=_CONV_ATTRS, traits=STRUCTURED)
def conv(x, w, *bias, strides, pads, dilations, group):
    """N-d convolution (cross-correlation) with groups; optional bias per output channel."""
    nsp = x.ndim - 2
    strides, pads, dilations = _spatial(nsp, strides, pads, dilations)
    acc = np.float64 if x.dtype == np.float64 else np.float32
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


def _pool_infer(x: TensorType, kernel, strides, pads, dilations, ceil_mode, **_) -> TensorType:
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


_POOL_ATTRS = {"kernel": "ints", "strides": ("ints", ()), "pads": ("ints", ()), "dilations": ("ints", ()),
               "ceil_mode": ("bool", False)}


@define_op("max_pool", infer=_pool_infer, attrs=_POOL_ATTRS, traits=STRUCTURED)
def max_pool(x, kernel, strides, pads, dilations, ceil_mode):
    """Max over sliding windows (padding never wins)."""
    nsp = x.ndim - 2
    strides, pads, dilations = _spatial(nsp, strides, pads, dilations)
    low = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    extra = _ceil_extra(x, kernel, strides, pads, dilations, ceil_mode)
    win = _windows(x, kernel, strides, pads, dilations, pad_value=low, extra_end=extra)
    return np.ascontiguousarray(win.max(axis=tuple(range(-nsp, 0))))


@define_op("avg_pool", infer=_pool_infer, attrs={**_POOL_ATTRS, "count_include_pad": ("bool", False)},
           traits=STRUCTURED)
def avg_pool(x, kernel, strides, pads, dilations, ceil_mode, count_include_pad):
    """Mean over sliding windows; padding counts toward the divisor only with count_include_pad
    (the part of a ceil-mode window past the padded input never counts)."""
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
