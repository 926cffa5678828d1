"""Statically quantized convolution and matmul: uint8 activations in, uint8 or f32 out (int8 W8A8).

    qlinear_conv(x, x_scale, x_zero_point, w, w_scale, bias[, y_scale, y_zero_point])
    qlinear_matmul(x, x_scale, x_zero_point, w, w_scale, bias[, y_scale, y_zero_point])

as ONNX QLinearConv / QLinearMatMul with symmetric weights (no weight zero point):
  - x is u8 with a per-tensor scale and zero point (x_scale f32 and x_zero_point u8 scalars): the real
    value of x is (x - x_zero_point) * x_scale;
  - w is i8, symmetric, one scale per output channel (w_scale f32 [O]); qlinear_conv's w is [O, C / group,
    kernel...] (in both layouts), qlinear_matmul's is [N, K] (a linear layer's weight, one row per output);
  - bias is i32 [O], in units of x_scale * w_scale (bias_real / (x_scale * w_scale), rounded);
  - acc = sum of (x - x_zero_point) * w over the window or row, plus bias: exact, in int32;
    v = f32(acc) * f32(x_scale * w_scale), rounded once;
  - with y_scale and y_zero_point (f32 and u8 scalars) the result is u8:
    clip(round_half_even(v / y_scale) + y_zero_point, 0, 255), so that the next quantized layer reads it as
    it is (a relu between them is the clip at 0 when y_zero_point is 0); without them it is v, in f32.
qlinear_conv takes conv's attributes (strides, pads, dilations, group) and `channels_last` (x and the result
N, spatial..., C; padding reads as x_zero_point, a real 0). Both take `weight_max` (1 to 128, default 128:
any int8): the weights lie in [-weight_max, weight_max], which the reference checks; at 64 or less a pair of u8 x i8
products fits int16 (2 * 255 * 64 < 2^15), which the cpu kernels use (the quantize pass's reduce_range).
"""
from __future__ import annotations

import numpy as np

from .. import dims as D
from ..dtypes import DType
from ..registry import PURE, define_op
from ..samples import op_samples
from ..types import TensorType
from .infer import require
from .nn import _CONV_ATTRS, _conv_infer, _permuted, channels_first_perm, channels_last_perm, conv

STRUCTURED = PURE | {"structured"}


WEIGHT_ATTRS = {"weight_max": ("int", 128)}


def _check_params(op: str, x: TensorType, x_scale, x_zp, w: TensorType, w_scale, bias, y_params,
                  weight_max: int) -> TensorType:
    """The result type's dtype after checking every operand but x's and w's shapes."""
    require(1 <= weight_max <= 128, f"{op}: weight_max must be in [1, 128], got {weight_max}")
    require(x.dtype is DType.u8, f"{op} takes u8 activations, got {x.dtype}")
    require(w.dtype is DType.i8, f"{op} takes an i8 weight, got {w.dtype}")
    require(x_scale.dtype is DType.f32 and x_scale.rank == 0, f"{op}: x_scale must be an f32 scalar, got {x_scale}")
    require(x_zp.dtype is DType.u8 and x_zp.rank == 0, f"{op}: x_zero_point must be a u8 scalar, got {x_zp}")
    o = w.shape[0]
    require(w_scale.dtype is DType.f32 and w_scale.rank == 1 and D.compatible(w_scale.shape[0], o),
            f"{op}: w_scale must be f32 [{o}] (one per output channel), got {w_scale}")
    require(bias.dtype is DType.i32 and bias.rank == 1 and D.compatible(bias.shape[0], o),
            f"{op}: bias must be i32 [{o}], got {bias}")
    if not y_params:
        return DType.f32
    require(len(y_params) == 2, f"{op}: y_scale comes with y_zero_point")
    y_scale, y_zp = y_params
    require(y_scale.dtype is DType.f32 and y_scale.rank == 0, f"{op}: y_scale must be an f32 scalar, got {y_scale}")
    require(y_zp.dtype is DType.u8 and y_zp.rank == 0, f"{op}: y_zero_point must be a u8 scalar, got {y_zp}")
    return DType.u8


def _check_weight(op: str, w: np.ndarray, weight_max: int) -> None:
    top = int(np.abs(w.astype(np.int32)).max(initial=0))
    require(top <= weight_max, f"{op}: a weight of magnitude {top} exceeds weight_max {weight_max}")


def requantize(acc: np.ndarray, x_scale, w_scale, y_params, channel_axis: int) -> np.ndarray:
    """The result from the int32 sums `acc` (bias included): f32, or u8 with y_params = (y_scale, y_zero_point)."""
    m = (np.float32(x_scale) * w_scale.astype(np.float32)).astype(np.float32)
    shape = [1] * acc.ndim
    shape[channel_axis] = -1
    v = acc.astype(np.float32) * m.reshape(shape)
    if not y_params:
        return v
    y_scale, y_zp = y_params
    q = np.rint(v / np.float32(y_scale)) + np.float32(y_zp)
    return np.clip(q, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- qlinear_conv

def _qlinear_conv_infer(x, x_scale, x_zp, w, w_scale, bias, *y_params, strides, pads, dilations, group,
                        channels_last=False, weight_max=128) -> TensorType:
    dtype = _check_params("qlinear_conv", x, x_scale, x_zp, w, w_scale, bias, y_params, weight_max)
    xf = _permuted(x, channels_first_perm(x.rank)) if channels_last and x.rank >= 3 else x
    y = _conv_infer(xf.with_dtype(DType.f32), w.with_dtype(DType.f32), strides=strides, pads=pads,
                    dilations=dilations, group=group)
    if channels_last:
        y = _permuted(y, channels_last_perm(y.rank))
    return y.with_dtype(dtype)


@define_op("qlinear_conv", arity=(6, 8), infer=_qlinear_conv_infer, traits=STRUCTURED,
           attrs={**_CONV_ATTRS, "channels_last": ("bool", False), **WEIGHT_ATTRS})
def qlinear_conv(x, x_scale, x_zp, w, w_scale, bias, *y_params, strides, pads, dilations, group,
                 channels_last=False, weight_max=128):
    """Convolution of u8 activations (per-tensor scale and zero point) by i8 weights (a scale per output
    channel) with an i32 bias, summed exactly; the result requantized to u8, or f32."""
    _check_weight("qlinear_conv", w, weight_max)
    rank = x.ndim
    if channels_last:
        x = np.transpose(x, channels_first_perm(rank))
    xc = x.astype(np.float64) - float(x_zp)  # padding reads as 0: the zero point
    acc = conv(xc, w.astype(np.float64), strides=strides, pads=pads, dilations=dilations, group=group)
    acc = acc.astype(np.int64) + bias.astype(np.int64).reshape((1, -1) + (1,) * (rank - 2))
    y = requantize(acc, x_scale, w_scale, y_params, 1)
    return np.ascontiguousarray(np.transpose(y, channels_last_perm(rank)) if channels_last else y)


# ---------------------------------------------------------------- qlinear_matmul

def _qlinear_matmul_infer(x, x_scale, x_zp, w, w_scale, bias, *y_params, weight_max=128) -> TensorType:
    dtype = _check_params("qlinear_matmul", x, x_scale, x_zp, w, w_scale, bias, y_params, weight_max)
    require(x.rank >= 1 and w.rank == 2, f"qlinear_matmul takes x [..., K] and a weight [N, K], got {x} and {w}")
    require(D.compatible(x.shape[-1], w.shape[1]),
            f"qlinear_matmul contraction dims differ: x {list(x.shape)}, weight [N, K] = {list(w.shape)}")
    return TensorType(dtype, tuple(x.shape[:-1]) + (w.shape[0],))


@define_op("qlinear_matmul", arity=(6, 8), infer=_qlinear_matmul_infer, traits=STRUCTURED, attrs=WEIGHT_ATTRS)
def qlinear_matmul(x, x_scale, x_zp, w, w_scale, bias, *y_params, weight_max=128):
    """x [..., K] (u8, per-tensor scale and zero point) times an i8 weight [N, K] (a scale per output) plus an
    i32 bias, summed exactly; the result requantized to u8, or f32."""
    _check_weight("qlinear_matmul", w, weight_max)
    xc = x.astype(np.int64) - int(x_zp)
    acc = np.matmul(xc, w.astype(np.int64).T) + bias.astype(np.int64)
    return requantize(acc, x_scale, w_scale, y_params, acc.ndim - 1)


@op_samples
def _samples(s):
    def params(o):  # x_scale, x_zero_point, then (after w) w_scale and bias, as constants
        return (s.scalar(0.05, np.float32), s.scalar(128, np.uint8)), \
            (s.constant(s.f32(o, low=0.01, high=0.05)), s.constant(s.ints(o, low=-50, high=50, dtype=np.int32)))
    y = (s.scalar(0.1, np.float32), s.scalar(3, np.uint8))
    (xs, xz), (ws, b) = params(3)
    conv_w = s.constant(s.ints(3, 2, 3, 3, low=-127, high=128, dtype=np.int8))
    (mxs, mxz), (mws, mb) = params(5)
    mm_w = s.constant(s.ints(5, 8, low=-127, high=128, dtype=np.int8))
    conv_w7 = s.constant(s.ints(3, 2, 3, 3, low=-64, high=65, dtype=np.int8))  # weight_max=64
    mm_w7 = s.constant(s.ints(5, 8, low=-64, high=65, dtype=np.int8))
    return {
        "qlinear_conv": [
            s(s.ints(1, 2, 6, 6, low=0, high=256, dtype=np.uint8), xs, xz, conv_w, ws, b, pads=(1, 1, 1, 1)),
            s(s.ints(1, 2, 6, 6, low=0, high=256, dtype=np.uint8), xs, xz, conv_w, ws, b, *y, strides=(2, 2)),
            s(s.ints(1, 2, 6, 6, low=0, high=256, dtype=np.uint8), xs, xz, conv_w7, ws, b, *y, pads=(1, 1, 1, 1),
              weight_max=64),
        ],
        "qlinear_matmul": [
            s(s.ints(2, 3, 8, low=0, high=256, dtype=np.uint8), mxs, mxz, mm_w, mws, mb),
            s(s.ints(4, 8, low=0, high=256, dtype=np.uint8), mxs, mxz, mm_w, mws, mb, *y),
            s(s.ints(4, 8, low=0, high=256, dtype=np.uint8), mxs, mxz, mm_w7, mws, mb, *y, weight_max=64),
        ],
    }
