"""Lowering of the *_dynamic ops, whose sizes come from tensor operands.

The module is specialized per size (specialize.py), so those operands are known
at emission and the result types are concrete: each op lowers as its static
counterpart. Operands that carry data rather than sizes (pad_dynamic's value,
range_dynamic's start and delta) stay run-time values.
"""
from __future__ import annotations

import numpy as np

from ...ir.dtypes import DType
from ...ir.errors import LeptoncError
from .builder import Builder, Val, i64_array
from .layout import pad, running, slice_, split, tile, topk
from .nn import col2im
from .reduction import reduce_axes
from .rules import lowers


def known_ints(node, v: Val, what: str) -> tuple[int, ...]:
    if v.known is None:
        raise LeptoncError(f"stablehlo: {what} of {node.label} is only known at run time; XLA needs it static")
    return tuple(int(i) for i in np.asarray(v.known).reshape(-1))


def scalar_operand(b: Builder, v: Val, dtype: DType) -> Val:
    """A one-element operand as a scalar of dtype."""
    return b.convert(b.reshape(v, ()), dtype)


@lowers("reshape_dynamic", "squeeze_dynamic", "unsqueeze_dynamic")
def reshape_dynamic(b: Builder, node, args, out, attrs):
    return b.reshape(args[0], out[0].shape)


@lowers("expand_dynamic")
def expand_dynamic(b: Builder, node, args, out, attrs):
    return b.broadcast_to(args[0], out[0].shape)


@lowers("tile_dynamic")
def tile_dynamic(b: Builder, node, args, out, attrs):
    return tile(b, node, args[:1], out, {"repeats": known_ints(node, args[1], "repeats")})


@lowers("slice_dynamic")
def slice_dynamic(b: Builder, node, args, out, attrs):
    names = ("starts", "ends", "axes", "steps")
    bounds = {n: known_ints(node, v, n) for n, v in zip(names, args[1:])}
    return slice_(b, node, args[:1], out, bounds)


@lowers("pad_dynamic")
def pad_dynamic(b: Builder, node, args, out, attrs):
    x, pads, value, axes = args
    rank = len(x.shape)
    pads, axes = known_ints(node, pads, "pads"), [a % rank for a in known_ints(node, axes, "axes")]
    full = [0] * (2 * rank)
    for i, a in enumerate(axes):
        full[a], full[a + rank] = pads[i], pads[i + len(axes)]
    if attrs["mode"] != "constant":
        return pad(b, node, [x], out, {"pads": tuple(full), "mode": attrs["mode"], "value": 0.0})
    fill = scalar_operand(b, value, x.dtype) if int(np.prod(value.shape)) else b.scalar(0, x.dtype)
    return b.op1("stablehlo.pad", [x, fill], out[0],
                 {"edge_padding_low": i64_array(full[:rank]), "edge_padding_high": i64_array(full[rank:]),
                  "interior_padding": i64_array([0] * rank)})


@lowers("full_dynamic")
def full_dynamic(b: Builder, node, args, out, attrs):
    return b.full(attrs["value"], out[0])


@lowers("range_dynamic")
def range_dynamic(b: Builder, node, args, out, attrs):
    """start + delta * i (in f64 for floats, as the reference), with start and delta read at run time."""
    t = out[0] if out[0].dtype.is_int else out[0].with_dtype(DType.f64)
    start, _, delta = (b.broadcast_in_dim(scalar_operand(b, v, t.dtype), t.shape, ()) for v in args)
    y = b.binary("add", start, b.binary("multiply", b.iota(t, 0), delta))
    return b.convert(y, out[0].dtype)


@lowers("topk_dynamic")
def topk_dynamic(b: Builder, node, args, out, attrs):
    axis = attrs["axis"] % len(args[0].shape)
    return topk(b, node, args[:1], out, {**attrs, "k": out[0].shape[axis]})


@lowers("split_dynamic")
def split_dynamic(b: Builder, node, args, out, attrs):
    return split(b, node, args[:1], out, {"axis": attrs["axis"], "sizes": known_ints(node, args[1], "sizes")})


@lowers("reduce_dynamic")
def reduce_dynamic(b: Builder, node, args, out, attrs):
    x = args[0]
    axes = known_ints(node, args[1], "axes")
    if not axes and not attrs["noop_with_empty_axes"]:
        axes = tuple(range(len(x.shape)))
    return reduce_axes(b, f"reduce_{attrs['kind']}", x, axes, out[0])


@lowers("cumulative_dynamic")
def cumulative_dynamic(b: Builder, node, args, out, attrs):
    (axis,) = known_ints(node, args[1], "the axis")
    return running(b, "cum" + attrs["kind"], args[0], axis, attrs["exclusive"], attrs["reverse"])


@lowers("col2im_dynamic")
def col2im_dynamic(b: Builder, node, args, out, attrs):
    image, block = known_ints(node, args[1], "image_shape"), known_ints(node, args[2], "block_shape")
    return col2im(b, node, args[:1], out, {**attrs, "image_shape": image, "block_shape": block,
                                           "pads": attrs["pads"] or (0,) * (2 * len(image))})
