"""ONNX quantization ops into the IR's quantization ops (leptonc/ir/ops/quant.py).

    QuantizeLinear        -> quantize        (per tensor, per axis, blocked = per group)
    DequantizeLinear      -> dequantize
    DynamicQuantizeLinear -> the u8 scale and zero point of x's range (reductions), then quantize
    MatMulInteger         -> matmul_integer
    QLinearMatMul         -> matmul_integer, dequantize by a_scale * b_scale, quantize to y

These are the ops that onnxruntime.quantization's quantize_dynamic (DynamicQuantizeLinear +
MatMulInteger) and quantize_static (QDQ pairs, or QLinearMatMul in the QOperator format) emit.
Quantized types the IR ops lack (16-bit, u4, float8) keep the decomposition into primitives that
handlers/nn.py gives them. Registered after the handlers package, so these mappings are the ones used.
"""
from __future__ import annotations

import numpy as np

from ...ir.dtypes import DType
from ...ir.graph import Value
from ...ir.ops.quant import QUANT_DTYPES
from .handlers import nn as decomposed
from .handlers.common import norm_axis
from .importer import dtype_of
from .registry import onnx_op


def _param(b, p: Value) -> Value:
    """A scale or zero point in the IR's form: one value is a scalar (per tensor, whatever the axis)."""
    return b.reshape(p, ()) if p.type.rank == 1 and p.shape[0] == 1 else p


def _granularity(x: Value, scale: Value, axis: int, block: int) -> dict:
    if block:
        return {"axis": norm_axis(axis, x.type.rank), "group": block}
    if scale.type.rank == 0:
        return {}
    return {"axis": norm_axis(axis, x.type.rank)}


@onnx_op("QuantizeLinear")
def quantize_linear(cx):
    b, x, zp = cx.b, cx.x(0), cx.x(2)
    axis, block = cx.a("axis", 1), cx.a("block_size", 0)
    if zp is not None:
        out = zp.dtype
    elif cx.a("output_dtype"):
        out = dtype_of(cx.a("output_dtype"), "QuantizeLinear output ")
    else:
        out = DType.u8
    if out not in QUANT_DTYPES or not x.dtype.is_float:
        return decomposed.quantize_linear(cx)
    scale = _param(b, cx.x(1))
    params = [scale] + ([_param(b, zp)] if zp is not None else [])
    return b.op("quantize", x, *params, dtype=out, **_granularity(x, scale, axis, block))


@onnx_op("DequantizeLinear")
def dequantize_linear(cx):
    b, x, zp = cx.b, cx.x(0), cx.x(2)
    axis, block = cx.a("axis", 1), cx.a("block_size", 0)
    out = dtype_of(cx.a("output_dtype"), "DequantizeLinear output ") if cx.a("output_dtype") else cx.x(1).dtype
    if x.dtype not in QUANT_DTYPES + (DType.i32,) or out is not cx.x(1).dtype:
        return decomposed.dequantize_linear(cx)
    scale = _param(b, cx.x(1))
    params = [scale] + ([_param(b, zp)] if zp is not None else [])
    return b.op("dequantize", x, *params, **_granularity(x, scale, axis, block))


@onnx_op("DynamicQuantizeLinear")
def dynamic_quantize_linear(cx):
    """y_scale = (max(x, 0) - min(x, 0)) / 255, y_zero_point = saturate(round(-min(x, 0) / y_scale)), y = u8."""
    b, x = cx.b, cx.x(0)
    axes = tuple(range(x.type.rank))
    zero = b.scalar(0.0, x.dtype)
    lo = b.op("min", b.op("reduce_min", x, axes=axes, keepdims=False), zero)
    hi = b.op("max", b.op("reduce_max", x, axes=axes, keepdims=False), zero)
    scale = b.op("div", b.op("sub", hi, lo), b.scalar(255.0, x.dtype))
    zp_f = b.op("round", b.op("neg", b.op("div", lo, scale)))
    zp_f = b.op("min", b.op("max", zp_f, zero), b.scalar(255.0, x.dtype))
    zp = b.cast(zp_f, DType.u8)
    return [b.op("quantize", x, scale, zp, dtype=DType.u8), scale, zp]


def _zero_point(b, zp: Value | None, like: Value) -> Value:
    return zp if zp is not None else b.const(np.zeros((), like.dtype.numpy))


@onnx_op("MatMulInteger")
def matmul_integer(cx):
    b, a, w, a_zp, w_zp = cx.b, cx.x(0), cx.x(1), cx.x(2), cx.x(3)
    if a_zp is None and w_zp is None:
        return b.op("matmul_integer", a, w)
    return b.op("matmul_integer", a, w, _param(b, _zero_point(b, a_zp, a)),
                _param(b, _zero_point(b, w_zp, w)))


@onnx_op("QLinearMatMul")
def qlinear_matmul(cx):
    b = cx.b
    a, a_s, a_zp, w, w_s, w_zp, y_s, y_zp = (cx.x(i) for i in range(8))
    acc = b.op("matmul_integer", a, w, _param(b, _zero_point(b, a_zp, a)),
               _param(b, _zero_point(b, w_zp, w)))
    scale = b.op("mul", _param(b, a_s), _param(b, w_s))
    y = b.op("dequantize", acc, scale, **({"axis": acc.type.rank - 1} if scale.type.rank == 1 else {}))
    return b.op("quantize", y, _param(b, y_s), _param(b, _zero_point(b, y_zp, a)),
                dtype=y_zp.dtype if y_zp is not None else a.dtype)
