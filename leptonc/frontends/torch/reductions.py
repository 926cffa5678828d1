"""Mappings of reductions, softmax and the normalizations (layer, batch, group, instance norm, vector norm)."""
from __future__ import annotations

import math

from ...ir import dims as D
from ...ir.dtypes import DType
from ...ir.errors import UnsupportedOpError
from ...ir.graph import Value
from .registry import Missing, handles, norm_axes, norm_axis

def _reduction(op: str):
    def handle(imp, node, a):
        dtype = imp.meta_dtype(node)
        x = imp.v(a["self"])
        if op in ("reduce_sum", "reduce_mean", "reduce_prod") or dtype is DType.bool:
            x = imp.cast(x, dtype)
        axes = norm_axes(a.get("dim"), x.type.rank)
        return imp.cast(imp.add(op, x, axes=axes, keepdims=bool(a.get("keepdim"))), dtype)
    return handle


handles("sum.dim_IntList", "sum.default")(_reduction("reduce_sum"))
handles("mean.dim", "mean.default")(_reduction("reduce_mean"))
handles("prod.dim_int", "prod.default")(_reduction("reduce_prod"))
handles("amax.default", "any.dim", "any.dims", "any.default")(_reduction("reduce_max"))
handles("amin.default", "all.dim", "all.dims", "all.default")(_reduction("reduce_min"))


def _argreduce(op: str):
    def handle(imp, node, a):
        x = imp.v(a["self"])
        if a.get("dim") is None:
            x = imp.reshape(x, (x.type.numel,))
        return imp.add(op, x, axis=norm_axis(a.get("dim") or 0, x.type.rank), keepdims=bool(a.get("keepdim")))
    return handle


handles("argmax.default")(_argreduce("argmax"))
handles("argmin.default")(_argreduce("argmin"))


@handles("max.dim", "min.dim")
def _max_dim(imp, node, a):
    x = imp.v(a["self"])
    axis, keep = norm_axis(a["dim"], x.type.rank), bool(a.get("keepdim"))
    kind = "max" if str(node.target).startswith("aten.max") else "min"
    return (imp.add(f"reduce_{kind}", x, axes=(axis,), keepdims=keep),
            imp.add(f"arg{kind}", x, axis=axis, keepdims=keep))


@handles("var.correction", "var.dim")
def _var(imp, node, a):
    x = imp.v(a["self"])
    axes = norm_axes(a.get("dim"), x.type.rank)
    count = D.product(x.shape[i] for i in axes)
    if not isinstance(count, int):
        raise UnsupportedOpError("var over symbolic dims is not supported")
    correction = a.get("correction")
    correction = (1 if a.get("unbiased", True) else 0) if correction is None else correction
    centered = imp.add("sub", x, imp.add("reduce_mean", x, axes=axes, keepdims=True))
    total = imp.add("reduce_sum", imp.add("mul", centered, centered), axes=axes, keepdims=bool(a.get("keepdim")))
    return imp.add("div", total, imp.scalar(max(count - correction, 0), x.dtype))


def softmax_parts(imp, x: Value, axis: int):
    shifted = imp.add("sub", x, imp.add("reduce_max", x, axes=(axis,), keepdims=True))
    exp = imp.add("exp", shifted)
    return shifted, exp, imp.add("reduce_sum", exp, axes=(axis,), keepdims=True)


@handles("_softmax.default", "softmax.int")
def _softmax(imp, node, a):
    x = imp.cast(imp.v(a["self"]), imp.meta_dtype(node))
    _, exp, total = softmax_parts(imp, x, norm_axis(a["dim"], x.type.rank))
    return imp.add("div", exp, total)


@handles("_log_softmax.default", "log_softmax.int")
def _log_softmax(imp, node, a):
    x = imp.cast(imp.v(a["self"]), imp.meta_dtype(node))
    shifted, _, total = softmax_parts(imp, x, norm_axis(a["dim"], x.type.rank))
    return imp.add("sub", shifted, imp.add("log", total))


@handles("native_layer_norm.default")
def _layer_norm(imp, node, a):
    x = imp.v(a["input"])
    axes = tuple(range(x.type.rank - len(a["normalized_shape"]), x.type.rank))
    mean = imp.add("reduce_mean", x, axes=axes, keepdims=True)
    centered = imp.add("sub", x, mean)
    var = imp.add("reduce_mean", imp.add("mul", centered, centered), axes=axes, keepdims=True)
    rstd = imp.add("rsqrt", imp.add("add", var, imp.scalar(a["eps"], x.dtype)))
    y = imp.add("mul", centered, rstd)
    if a.get("weight") is not None:
        y = imp.add("mul", y, imp.v(a["weight"]))
    if a.get("bias") is not None:
        y = imp.add("add", y, imp.v(a["bias"]))
    return y, mean, rstd


def _affine(imp, y: Value, a: dict, per_channel: tuple) -> Value:
    """y * weight + bias with per-channel weight and bias (either may be absent)."""
    if a.get("weight") is not None:
        y = imp.add("mul", y, imp.reshape(imp.v(a["weight"]), per_channel))
    if a.get("bias") is not None:
        y = imp.add("add", y, imp.reshape(imp.v(a["bias"]), per_channel))
    return y


@handles("_native_batch_norm_legit_no_training.default", "native_batch_norm.default",
          "_native_batch_norm_legit.default", "_native_batch_norm_legit.no_stats")
def _batch_norm(imp, node, a):
    x = imp.v(a["input"])
    per_channel = (x.shape[1],) + (1,) * (x.type.rank - 2)
    eps = imp.scalar(a["eps"], x.dtype)
    if a.get("training"):
        if a.get("running_mean") is not None:
            raise UnsupportedOpError("batch norm in training mode (call module.eval() before importing)")
        # no running statistics (instance norm, or batch norm without tracking): normalize by batch statistics
        axes = (0,) + tuple(range(2, x.type.rank))
        mean = imp.add("reduce_mean", x, axes=axes, keepdims=True)
        centered = imp.add("sub", x, mean)
        var = imp.add("reduce_mean", imp.add("mul", centered, centered), axes=axes, keepdims=True)
        rstd = imp.add("rsqrt", imp.add("add", var, eps))
        y = _affine(imp, imp.add("mul", centered, rstd), a, per_channel)
        return y, imp.reshape(mean, (x.shape[1],)), imp.reshape(rstd, (x.shape[1],))
    mean = imp.reshape(imp.v(a["running_mean"]), per_channel)
    var = imp.reshape(imp.v(a["running_var"]), per_channel)
    scale = imp.add("rsqrt", imp.add("add", var, eps))
    if a.get("weight") is not None:
        scale = imp.add("mul", scale, imp.reshape(imp.v(a["weight"]), per_channel))
    y = imp.add("mul", imp.add("sub", x, mean), scale)
    if a.get("bias") is not None:
        y = imp.add("add", y, imp.reshape(imp.v(a["bias"]), per_channel))
    return y, Missing("the saved mean of batch norm"), Missing("the saved variance of batch norm")


@handles("native_group_norm.default")
def _group_norm(imp, node, a):
    x = imp.v(a["input"])
    n, groups = x.shape[0], a["group"]
    grouped = imp.reshape(x, (n, groups, D.divide_exact(D.product(x.shape[1:]), groups)))
    mean = imp.add("reduce_mean", grouped, axes=(2,), keepdims=True)
    centered = imp.add("sub", grouped, mean)
    var = imp.add("reduce_mean", imp.add("mul", centered, centered), axes=(2,), keepdims=True)
    rstd = imp.add("rsqrt", imp.add("add", var, imp.scalar(a["eps"], x.dtype)))
    y = imp.reshape(imp.add("mul", centered, rstd), x.shape)
    y = _affine(imp, y, a, (x.shape[1],) + (1,) * (x.type.rank - 2))
    return y, imp.reshape(mean, (n, groups)), imp.reshape(rstd, (n, groups))


@handles("linalg_vector_norm.default")
def _vector_norm(imp, node, a):
    x = imp.cast(imp.v(a["self"]), imp.meta_dtype(node))
    axes, keep, order = norm_axes(a.get("dim"), x.type.rank), bool(a.get("keepdim")), a.get("ord", 2)
    magnitude = imp.add("abs", x)
    if order in (math.inf, -math.inf):
        return imp.add("reduce_max" if order > 0 else "reduce_min", magnitude, axes=axes, keepdims=keep)
    if order == 0:
        nonzero = imp.cast(imp.add("not", imp.add("equal", x, imp.scalar(0, x.dtype))), x.dtype)
        return imp.add("reduce_sum", nonzero, axes=axes, keepdims=keep)
    if order == 1:
        return imp.add("reduce_sum", magnitude, axes=axes, keepdims=keep)
    if order == 2:
        return imp.add("sqrt", imp.add("reduce_sum", imp.add("mul", x, x), axes=axes, keepdims=keep))
    powered = imp.add("pow", magnitude, imp.scalar(order, x.dtype))
    return imp.add("pow", imp.add("reduce_sum", powered, axes=axes, keepdims=keep), imp.scalar(1 / order, x.dtype))
