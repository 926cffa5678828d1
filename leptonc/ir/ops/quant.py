"""Quantization: quantize / dequantize, and the matmuls over quantized operands.

Granularity of a scale (and its zero point, which has the scale's shape and
the quantized dtype):
  - per tensor:  scale is a scalar (rank 0);
  - per channel: scale is 1-D, one entry per index of x along `axis`;
  - per group:   `group` = g > 0; scale has x's rank, x's shape except along
                 `axis`, where it has x.shape[axis] / g entries: consecutive
                 runs of g elements along `axis` share one scale.

    quantize(x, scale[, zero_point]) = clip(round_half_even(x / scale) + zero_point, qmin, qmax)
    dequantize(q, scale[, zero_point]) = (q - zero_point) * scale

The quantized matmuls:
  - matmul_wq(x, w, scale[, zero_point]): weight-only. x is float [..., K],
    w is i8/u8/i4 [N, K] (the layout of a linear layer's weight: one row per
    output), scale [N] (per output channel) or [N, K / group] (groups along K).
    y = x @ dequantize(w).T, in f32.
  - matmul_integer(a, b[, a_zero_point, b_zero_point]): i8/u8 x i8/u8 -> i32,
    numpy matmul semantics (ONNX MatMulInteger): (a - a_zp) @ (b - b_zp).
  - matmul_w8a8(x, w, scale): x float [..., K] quantized per row to int8
    (symmetric: s = max|row| / 127, q = round(x * (127 / max|row|))), times
    w i8 [N, K] with per-output-channel scale [N], accumulated in int32:
    y = (q @ w.T) * s * scale.
"""
from __future__ import annotations

import numpy as np

from .. import dims as D
from ..dtypes import DType
from ..registry import PURE, define_op
from ..samples import op_samples
from ..types import TensorType
from .infer import norm_axis, require

QUANT_DTYPES = (DType.i8, DType.u8, DType.i4)
RANGES = {DType.i8: (-128, 127), DType.u8: (0, 255), DType.i4: (-8, 7), DType.i32: (-2**31, 2**31 - 1)}


def scale_shape(shape: tuple, axis: int, group: int, granularity: str) -> tuple:
    """The shape a scale has for a tensor of `shape` at a granularity ('tensor', 'channel' or 'group')."""
    if granularity == "tensor":
        return ()
    axis = norm_axis(axis, len(shape))
    if granularity == "channel":
        return (shape[axis],)
    return tuple(D.divide_exact(d, group) if i == axis else d for i, d in enumerate(shape))


def _granularity(x: TensorType, scale: TensorType, axis: int, group: int) -> str:
    """Which granularity the scale's shape says, checked against x."""
    if group:
        require(group > 0, f"group must be positive, got {group}")
        require(x.rank >= 1, "per-group quantization needs rank >= 1")
        a = norm_axis(axis, x.rank)
        require(not isinstance(x.shape[a], int) or x.shape[a] % group == 0,
                f"dim {a} of size {x.shape[a]} is not a multiple of the group size {group}")
        want = scale_shape(x.shape, axis, group, "group")
        require(scale.rank == x.rank and all(D.compatible(s, w) for s, w in zip(scale.shape, want)),
                f"per-group scale must have shape {list(want)}, got {list(scale.shape)}")
        return "group"
    if scale.rank == 0:
        return "tensor"
    require(scale.rank == 1, f"scale must be a scalar (per tensor) or 1-D (per channel), got rank {scale.rank}")
    a = norm_axis(axis, x.rank)
    require(D.compatible(scale.shape[0], x.shape[a]),
            f"per-channel scale has {scale.shape[0]} entries, dim {a} of the tensor has {x.shape[a]}")
    return "channel"


def _check_params(x: TensorType, scale: TensorType, zero_point: TensorType | None, axis: int, group: int,
                  qdtype: DType) -> None:
    require(scale.dtype.is_float, f"scale must be a float type, got {scale.dtype}")
    _granularity(x, scale, axis, group)
    if zero_point is not None:
        require(zero_point.dtype is qdtype, f"zero point must be {qdtype} (the quantized type), got {zero_point.dtype}")
        require(zero_point.rank == scale.rank and all(D.compatible(a, b) for a, b in zip(zero_point.shape, scale.shape)),
                f"zero point shape {list(zero_point.shape)} differs from the scale's {list(scale.shape)}")


def expand(param: np.ndarray, rank: int, axis: int, group: int) -> np.ndarray:
    """A scale or zero point shaped to broadcast against the tensor it quantizes."""
    if param.ndim == 0:
        return param
    axis = axis % rank
    if group:
        return np.repeat(param, group, axis=axis)
    return param.reshape((1,) * axis + (-1,) + (1,) * (rank - axis - 1))


def quantize_array(x: np.ndarray, scale: np.ndarray, zero_point, dtype: DType, axis: int = 0,
                   group: int = 0) -> np.ndarray:
    """The numpy definition of `quantize` (round half to even, saturate)."""
    s = expand(np.asarray(scale), x.ndim, axis, group).astype(np.float32)
    q = np.rint(x.astype(np.float32) / s)
    if zero_point is not None:
        q = q + expand(np.asarray(zero_point), x.ndim, axis, group).astype(np.float32)
    lo, hi = RANGES[dtype]
    return np.clip(q, lo, hi).astype(np.int32).astype(dtype.numpy)


def dequantize_array(q: np.ndarray, scale: np.ndarray, zero_point, axis: int = 0, group: int = 0) -> np.ndarray:
    """The numpy definition of `dequantize`, in the scale's dtype."""
    s = np.asarray(scale)
    v = q.astype(np.int32)
    if zero_point is not None:
        v = v - expand(np.asarray(zero_point), q.ndim, axis, group).astype(np.int32)
    return (v.astype(np.float32) * expand(s, q.ndim, axis, group).astype(np.float32)).astype(s.dtype)


# ---------------------------------------------------------------- quantize / dequantize

def _quantize_infer(x, scale, zero_point=None, *, dtype, axis, group) -> TensorType:
    require(x.dtype.is_float, f"quantize takes a float tensor, got {x.dtype}")
    require(dtype in QUANT_DTYPES, f"quantize produces {', '.join(map(str, QUANT_DTYPES))}, not {dtype}")
    _check_params(x, scale, zero_point, axis, group, dtype)
    return TensorType(dtype, x.shape)


@define_op("quantize", arity=(2, 3), infer=_quantize_infer,
           attrs={"dtype": "dtype", "axis": ("int", 0), "group": ("int", 0)}, traits=PURE)
def quantize(x, scale, zero_point=None, *, dtype, axis, group):
    """clip(round(x / scale) + zero_point) in a narrow integer type; per tensor, channel or group."""
    return quantize_array(x, scale, zero_point, dtype, axis, group)


def _dequantize_infer(q, scale, zero_point=None, *, axis, group) -> TensorType:
    require(q.dtype in QUANT_DTYPES or q.dtype is DType.i32,
            f"dequantize takes {', '.join(map(str, QUANT_DTYPES))} or i32, not {q.dtype}")
    _check_params(q, scale, zero_point, axis, group, q.dtype)
    return TensorType(scale.dtype, q.shape)


@define_op("dequantize", arity=(2, 3), infer=_dequantize_infer,
           attrs={"axis": ("int", 0), "group": ("int", 0)}, traits=PURE)
def dequantize(q, scale, zero_point=None, *, axis, group):
    """(q - zero_point) * scale, in the scale's float type; per tensor, channel or group."""
    return dequantize_array(q, scale, zero_point, axis, group)


# ---------------------------------------------------------------- quantized matmuls

def _matmul_wq_infer(x, w, scale, zero_point=None, *, group) -> TensorType:
    require(x.dtype.is_float and x.rank >= 1, f"matmul_wq takes float activations, got {x}")
    require(w.dtype in QUANT_DTYPES and w.rank == 2, f"matmul_wq takes a 2-D i8/u8/i4 weight [N, K], got {w}")
    require(D.compatible(x.shape[-1], w.shape[1]),
            f"matmul_wq contraction dims differ: x {list(x.shape)}, weight [N, K] = {list(w.shape)}")
    if group:
        require(scale.rank == 2, f"per-group weight scale must be [N, K / group], got {list(scale.shape)}")
        _check_params(w, scale, zero_point, 1, group, w.dtype)
    else:
        require(scale.rank == 1, f"per-channel weight scale must be [N], got {list(scale.shape)}")
        _check_params(w, scale, zero_point, 0, 0, w.dtype)
    return TensorType(x.dtype, tuple(x.shape[:-1]) + (w.shape[0],))


@define_op("matmul_wq", arity=(3, 4), infer=_matmul_wq_infer, attrs={"group": ("int", 0)},
           traits=PURE | {"structured"}, fusion="anchor")
def matmul_wq(x, w, scale, zero_point=None, *, group):
    """x @ dequantize(w).T: float activations, quantized weight [N, K] per output channel or per group."""
    axis = 1 if group else 0
    wf = dequantize_array(w, scale.astype(np.float32), zero_point, axis, group)
    return np.matmul(x.astype(np.float32), wf.T).astype(x.dtype)


def _matmul_integer_infer(a, b, a_zero_point=None, b_zero_point=None) -> TensorType:
    for name, t in (("a", a), ("b", b)):
        require(t.dtype in (DType.i8, DType.u8) and t.rank >= 1, f"matmul_integer operand {name} must be i8 or u8, got {t}")
    if a_zero_point is not None:
        require(a_zero_point.dtype is a.dtype, f"a_zero_point must be {a.dtype}, got {a_zero_point.dtype}")
        require(a_zero_point.rank <= 1, "a_zero_point must be a scalar or one per row")
    if b_zero_point is not None:
        require(b_zero_point.dtype is b.dtype, f"b_zero_point must be {b.dtype}, got {b_zero_point.dtype}")
        require(b_zero_point.rank <= 1, "b_zero_point must be a scalar or one per column")
    from .linalg import _matmul_infer

    return _matmul_infer(a.with_dtype(DType.i32), b.with_dtype(DType.i32))


@define_op("matmul_integer", arity=(2, 4), infer=_matmul_integer_infer, traits=PURE | {"structured"})
def matmul_integer(a, b, a_zero_point=None, b_zero_point=None):
    """(a - a_zero_point) @ (b - b_zero_point) for i8/u8 operands, accumulated in i32."""
    ai = a.astype(np.int32)
    bi = b.astype(np.int32)
    if a_zero_point is not None:
        zp = a_zero_point.astype(np.int32)
        ai = ai - (zp.reshape(-1, 1) if zp.ndim == 1 and a.ndim > 1 else zp)
    if b_zero_point is not None:
        bi = bi - b_zero_point.astype(np.int32)
    return np.matmul(ai, bi).astype(np.int32)


def _matmul_w8a8_infer(x, w, scale) -> TensorType:
    require(x.dtype is DType.f32 and x.rank >= 1, f"matmul_w8a8 takes f32 activations, got {x}")
    require(w.dtype is DType.i8 and w.rank == 2, f"matmul_w8a8 takes an i8 weight [N, K], got {w}")
    require(scale.dtype is DType.f32 and scale.rank == 1 and D.compatible(scale.shape[0], w.shape[0]),
            f"matmul_w8a8 takes an f32 scale per output channel [{w.shape[0]}], got {scale}")
    require(D.compatible(x.shape[-1], w.shape[1]),
            f"matmul_w8a8 contraction dims differ: x {list(x.shape)}, weight [N, K] = {list(w.shape)}")
    return TensorType(DType.f32, tuple(x.shape[:-1]) + (w.shape[0],))


def quantize_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int8 rows, f32 scale per row): the dynamic symmetric activation quantization of matmul_w8a8."""
    x = x.astype(np.float32)
    amax = np.max(np.abs(x), axis=-1, keepdims=True) if x.shape[-1] else np.zeros(x.shape[:-1] + (1,), np.float32)
    amax = np.where(amax > 0, amax, np.float32(1)).astype(np.float32)
    q = np.clip(np.rint(x * (np.float32(127) / amax)), -127, 127).astype(np.int8)
    return q, (amax / np.float32(127)).astype(np.float32)


@define_op("matmul_w8a8", arity=3, infer=_matmul_w8a8_infer, traits=PURE | {"structured"}, fusion="anchor")
def matmul_w8a8(x, w, scale):
    """x quantized per row to int8 on the fly, times an int8 weight [N, K], int32 accumulation, rescaled."""
    q, s = quantize_rows(x)
    acc = np.matmul(q.astype(np.int32), w.astype(np.int32).T)
    return (acc.astype(np.float32) * s * scale.astype(np.float32)).astype(np.float32)


@op_samples
def _samples(s):
    return {
        "quantize": [
            s(s.f32(3, 4), np.array(0.05, np.float32), dtype="i8"),
            s(s.f32(3, 4), s.f32(4, low=0.01, high=0.1), s.ints(4, low=100, high=150, dtype=np.uint8), dtype="u8", axis=1),
            s(s.f32(4, 6), s.f32(4, 3, low=0.1, high=0.5), dtype="i4", axis=1, group=2),
        ],
        "dequantize": [
            s(s.ints(3, 4, low=-128, high=128, dtype=np.int8), s.f32(3, low=0.01, high=0.1)),
            s(s.ints(3, 4, low=0, high=256, dtype=np.uint8), np.array(0.1, np.float32), np.array(128, np.uint8)),
            s(s.ints(2, 6, low=-128, high=128, dtype=np.int8), s.f32(2, 2, low=0.1, high=0.5), s.ints(2, 2, low=-3, high=3, dtype=np.int8), axis=1, group=3),
        ],
        "matmul_wq": [  # the weights and their scales are constants, as a quantize pass leaves them
            s(s.f32(2, 3, 8), s.constant(s.ints(5, 8, low=-128, high=128, dtype=np.int8)),
              s.constant(s.f32(5, low=0.01, high=0.1))),
            s(s.f32(3, 8), s.constant(s.ints(5, 8, low=0, high=16, dtype=np.uint8)),
              s.constant(s.f32(5, 2, low=0.01, high=0.1)), s.constant(s.ints(5, 2, low=6, high=10, dtype=np.uint8)),
              group=4),
        ],
        "matmul_integer": [
            s(s.ints(3, 4, low=0, high=256, dtype=np.uint8), s.ints(4, 5, low=-128, high=128, dtype=np.int8)),
            s(s.ints(2, 3, 4, low=0, high=256, dtype=np.uint8), s.ints(4, 5, low=0, high=256, dtype=np.uint8), s.ints(3, low=0, high=256, dtype=np.uint8), np.array(7, np.uint8)),
        ],
        "matmul_w8a8": [
            s(s.f32(2, 3, 8), s.constant(s.ints(5, 8, low=-127, high=128, dtype=np.int8)),
              s.constant(s.f32(5, low=0.01, high=0.1))),
            s(np.zeros((2, 8), np.float32), s.constant(s.ints(5, 8, low=-127, high=128, dtype=np.int8)),
              s.constant(s.f32(5, low=0.01, high=0.1))),
        ],
    }
