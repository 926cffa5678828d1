"""Mappings of matmul, convolution, pooling, attention and resizing."""
from __future__ import annotations

import math

import numpy as np

from ...ir import dims as D
from ...ir.dtypes import DType
from ...ir.errors import UnsupportedOpError
from ...ir.graph import Value
from .reductions import softmax_parts
from .registry import Missing, handles

@handles("mm.default", "bmm.default", "matmul.default")
def _mm(imp, node, a):
    return imp.add("matmul", imp.v(a["self"]), imp.v(a["mat2"] if "mat2" in a else a["other"]))


@handles("linear.default")
def _linear(imp, node, a):
    w = imp.v(a["weight"])
    if w.type.rank == 2:
        w = imp.add("transpose", w, perm=(1, 0))
    y = imp.add("matmul", imp.v(a["input"]), w)
    return imp.add("add", y, imp.v(a["bias"])) if a.get("bias") is not None else y


@handles("addmm.default", "baddbmm.default")
def _addmm(imp, node, a):
    product = imp.add("matmul", imp.v(a["mat1"] if "mat1" in a else a["batch1"]),
                      imp.v(a["mat2"] if "mat2" in a else a["batch2"]))
    bias = imp.v(a["self"])
    if a.get("alpha", 1) != 1:
        product = imp.add("mul", product, imp.scalar(a["alpha"], product.dtype))
    if a.get("beta", 1) != 1:
        bias = imp.add("mul", bias, imp.scalar(a["beta"], bias.dtype))
    return imp.add("add", bias, product)


def _per_dim(values, n: int) -> tuple:
    values = tuple(values) if isinstance(values, (list, tuple)) else (values,)
    return values * n if len(values) == 1 else values


@handles("convolution.default", "conv2d.default", "conv1d.default")
def _conv(imp, node, a):
    if a.get("transposed"):
        raise UnsupportedOpError("transposed convolution is not supported")
    x, w = imp.v(a["input"]), imp.v(a["weight"])
    nsp = x.type.rank - 2
    pads = _per_dim(a["padding"], nsp)
    inputs = [x, w] + ([imp.v(a["bias"])] if a.get("bias") is not None else [])
    return imp.add("conv", *inputs, strides=_per_dim(a["stride"], nsp), pads=pads + pads,
                   dilations=_per_dim(a["dilation"], nsp), group=a["groups"])


@handles("max_pool2d_with_indices.default", "max_pool2d.default", "max_pool1d.default")
def _max_pool(imp, node, a):
    x = imp.v(a["self"])
    nsp = x.type.rank - 2
    kernel = _per_dim(a["kernel_size"], nsp)
    pads = _per_dim(a["padding"], nsp)
    y = imp.add("max_pool", x, kernel=kernel, strides=_per_dim(a["stride"] or kernel, nsp), pads=pads + pads,
                dilations=_per_dim(a["dilation"], nsp), ceil_mode=bool(a["ceil_mode"]))
    return (y, Missing("the indices of max_pool2d_with_indices")) if "with_indices" in str(node.target) else y


@handles("avg_pool2d.default", "avg_pool1d.default")
def _avg_pool(imp, node, a):
    if a.get("divisor_override") is not None:
        raise UnsupportedOpError("avg_pool with divisor_override is not supported")
    x = imp.v(a["self"])
    nsp = x.type.rank - 2
    kernel = _per_dim(a["kernel_size"], nsp)
    pads = _per_dim(a["padding"], nsp)
    return imp.add("avg_pool", x, kernel=kernel, strides=_per_dim(a["stride"] or kernel, nsp), pads=pads + pads,
                   ceil_mode=bool(a["ceil_mode"]), count_include_pad=bool(a["count_include_pad"]))


@handles("_adaptive_avg_pool2d.default", "adaptive_avg_pool2d.default", "_adaptive_avg_pool1d.default")
def _adaptive_avg_pool(imp, node, a):
    x = imp.v(a["self"])
    nsp = x.type.rank - 2
    out = _per_dim(a["output_size"], nsp)
    spatial = x.shape[2:]
    if all(o == 1 for o in out):
        return imp.add("reduce_mean", x, axes=tuple(range(2, 2 + nsp)), keepdims=True)
    if not all(isinstance(s, int) and s % o == 0 for s, o in zip(spatial, out)):
        raise UnsupportedOpError(f"adaptive average pooling from {list(spatial)} to {list(out)} "
                                 f"(sizes must divide evenly)")
    kernel = tuple(s // o for s, o in zip(spatial, out))
    return imp.add("avg_pool", x, kernel=kernel, strides=kernel)


@handles("scaled_dot_product_attention.default")
def _sdpa(imp, node, a):
    """softmax(q @ k^T * scale + mask) @ v, with boolean or additive masks, causal masking and grouped heads."""
    if a.get("dropout_p"):
        raise UnsupportedOpError("attention dropout (import the module in eval mode)")
    q, k, v = imp.v(a["query"]), imp.v(a["key"]), imp.v(a["value"])
    rank = q.type.rank
    if a.get("enable_gqa") and not D.same(q.shape[-3], k.shape[-3]):
        k, v = _repeat_heads(imp, k, q.shape[-3]), _repeat_heads(imp, v, q.shape[-3])
    scale = a.get("scale")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    perm = tuple(range(rank - 2)) + (rank - 1, rank - 2)
    scores = imp.add("mul", imp.add("matmul", q, imp.add("transpose", k, perm=perm)), imp.scalar(scale, q.dtype))
    mask = a.get("attn_mask")
    if a.get("is_causal"):
        rows = imp.reshape(imp.arange(0, q.shape[-2], 1, DType.i64, q.shape[-2]), (q.shape[-2], 1))
        cols = imp.reshape(imp.arange(0, k.shape[-2], 1, DType.i64, k.shape[-2]), (1, k.shape[-2]))
        scores = imp.add("where", imp.add("greater_equal", rows, cols), scores, imp.scalar(-np.inf, q.dtype))
    if mask is not None:
        m = imp.v(mask)
        if m.dtype is DType.bool:
            scores = imp.add("where", m, scores, imp.scalar(-np.inf, q.dtype))
        else:
            scores = imp.add("add", scores, imp.cast(m, q.dtype))
    _, exp, total = softmax_parts(imp, scores, rank - 1)
    return imp.add("matmul", imp.add("div", exp, total), v)


def _repeat_heads(imp, x: Value, heads) -> Value:
    """[..., Hk, S, E] -> [..., heads, S, E], each key/value head repeated heads/Hk times in place."""
    *batch, hk, s, e = x.shape
    groups = D.divide_exact(heads, hk)
    expanded = imp.add("broadcast_to", imp.reshape(x, (*batch, hk, 1, s, e)), shape=(*batch, hk, groups, s, e))
    return imp.reshape(expanded, (*batch, heads, s, e))


def _resize_axis(size: int, out: int, scale_factor, align_corners: bool, mode: str):
    """Source positions for each output index along one axis, as torch's upsample kernels compute them."""
    scale = np.float32(1 / scale_factor) if scale_factor else np.float32(size / out)
    dst = np.arange(out, dtype=np.float32)
    if mode == "nearest":
        return np.minimum(np.floor(dst * scale).astype(np.int64), size - 1)
    if align_corners:
        src = dst * np.float32((size - 1) / (out - 1) if out > 1 else 0)
    else:
        src = np.maximum((dst + np.float32(0.5)) * scale - np.float32(0.5), 0)
    low = np.minimum(np.floor(src).astype(np.int64), size - 1)
    return low, np.minimum(low + 1, size - 1), (src - low).astype(np.float32)


@handles("upsample_nearest2d.vec", "upsample_bilinear2d.vec", "upsample_nearest1d.vec", "upsample_linear1d.vec")
def _upsample(imp, node, a):
    x = imp.v(a["input"])
    out_shape = imp.meta_shape(node)
    nsp = x.type.rank - 2
    if not all(isinstance(d, int) for d in x.shape[2:] + out_shape[2:]):
        raise UnsupportedOpError("resizing with symbolic spatial sizes")
    scales = a.get("scale_factors") or (None,) * nsp
    mode = "nearest" if "nearest" in str(node.target) else "linear"
    for i in range(nsp):
        axis, size, out = 2 + i, x.shape[2 + i], out_shape[2 + i]
        if size == out:
            continue
        positions = _resize_axis(size, out, scales[i], bool(a.get("align_corners")), mode)
        if mode == "nearest":
            x = imp.add("gather", x, imp.g.add_constant(positions, f"{node.name}_index"), axis=axis)
            continue
        low, high, frac = positions
        frac = imp.g.add_constant(frac.astype(x.dtype.numpy).reshape((out,) + (1,) * (nsp - 1 - i)),
                                  f"{node.name}_weight")
        below = imp.add("gather", x, imp.g.add_constant(low, f"{node.name}_low"), axis=axis)
        above = imp.add("gather", x, imp.g.add_constant(high, f"{node.name}_high"), axis=axis)
        x = imp.add("add", below, imp.add("mul", imp.add("sub", above, below), frac))
    return x
