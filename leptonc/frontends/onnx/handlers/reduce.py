"""ONNX reductions (axes as an attribute before opset 18 -- 13 for ReduceSum -- and an operand after)
and ArgMax/ArgMin."""
from __future__ import annotations

from ....ir.dtypes import DType
from ..registry import onnx_op
from .common import norm_axis

_AXES_INPUT_SINCE = {"ReduceSum": 13}


def reduce_axes(cx):
    """The axes to reduce: a sorted tuple, () for none (noop_with_empty_axes), or a run-time Value."""
    b, x = cx.b, cx.x(0)
    rank = x.type.rank
    if cx.version >= _AXES_INPUT_SINCE.get(cx.op_type, 18):
        v = cx.x(1)
        if v is None:
            axes = ()
        else:
            axes = b.ints(v)
            if axes is None:
                return b.cast(v, DType.i64)
    else:
        axes = tuple(cx.a("axes") or ())
    if not axes:
        return () if cx.a("noop_with_empty_axes", 0) else tuple(range(rank))
    return tuple(sorted({norm_axis(a, rank) for a in axes}))


_KINDS = {  # op type: (pre, primitive reduction, post)
    "ReduceSum": (None, "sum", None), "ReduceMean": (None, "mean", None), "ReduceMax": (None, "max", None),
    "ReduceMin": (None, "min", None), "ReduceProd": (None, "prod", None),
    "ReduceL1": ("abs", "sum", None), "ReduceL2": ("square", "sum", "sqrt"), "ReduceLogSum": (None, "sum", "log"),
    "ReduceSumSquare": ("square", "sum", None), "ReduceLogSumExp": ("exp", "sum", "log"),
}


@onnx_op(*_KINDS)
def reduce(cx):
    b, x = cx.b, cx.x(0)
    keepdims = bool(cx.a("keepdims", 1))
    axes = reduce_axes(cx)
    pre, kind, post = _KINDS[cx.op_type]
    static = isinstance(axes, tuple)
    shift = None
    if cx.op_type == "ReduceLogSumExp" and static and axes and x.dtype.is_float:
        shift = b.op("reduce_max", x, axes=axes, keepdims=True)
        shift = b.op("where", b.op("isinf", shift), b.scalar(0, x.dtype), shift)
        x = b.op("sub", x, shift)
    if pre == "square":
        x = b.op("mul", x, x)
    elif pre is not None:
        x = b.op(pre, x)
    if not static:
        y = b.op("reduce_dynamic", x, axes, kind=kind, keepdims=keepdims,
                 noop_with_empty_axes=bool(cx.a("noop_with_empty_axes", 0)))
    elif axes:
        y = b.op(f"reduce_{kind}", x, axes=axes, keepdims=keepdims)
    else:
        y = x
    if post is not None:
        y = b.op(post, y)
    if shift is not None:
        y = b.op("add", y, shift if keepdims else b.op("reduce_max", shift, axes=axes, keepdims=False))
    return y


@onnx_op("ArgMax", "ArgMin")
def arg(cx):
    x = cx.x(0)
    return cx.b.op("argmax" if cx.op_type == "ArgMax" else "argmin", x, axis=norm_axis(cx.a("axis", 0), x.type.rank),
                   keepdims=bool(cx.a("keepdims", 1)), select_last_index=bool(cx.a("select_last_index", 0)))
