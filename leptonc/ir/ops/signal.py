"""Signal ops: dft and stft on the ONNX layout (a last dim of 1 for real or 2 for complex
values), computed with numpy's FFT in double precision."""
from __future__ import annotations

import numpy as np

from .. import dims as D
from ..registry import PURE, define_op
from ..samples import op_samples
from ..types import TensorType
from .infer import norm_axis, require, require_float

Q = D.UNKNOWN


def _complex(x):
    return x[..., 0].astype(np.float64) if x.shape[-1] == 1 else x[..., 0] + 1j * x[..., 1].astype(np.float64)


def _pack(z, dtype):
    return np.stack([np.real(z), np.imag(z)], axis=-1).astype(dtype)


def dft_array(x, axis: int, length: int, inverse: bool, onesided: bool):
    axis %= x.ndim - 1
    if length <= 0:
        length = 2 * (x.shape[axis] - 1) if inverse and onesided else x.shape[axis]
    z = _complex(x)
    if inverse:
        if onesided:
            return np.fft.irfft(z, n=length, axis=axis)[..., None].astype(x.dtype)
        return _pack(np.fft.ifft(z, n=length, axis=axis), x.dtype)
    out = np.fft.fft(z, n=length, axis=axis)
    if onesided:
        out = np.take(out, np.arange(length // 2 + 1), axis=axis)
    return _pack(out, x.dtype)


def _dft_infer(x: TensorType, axis, length, inverse, onesided) -> TensorType:
    require_float(x, "dft input")
    require(x.rank >= 2 and x.shape[-1] in (1, 2), "dft input needs a last dim of 1 (real) or 2 (complex)")
    ax = norm_axis(axis, x.rank - 1)
    n = x.shape[ax]
    if length <= 0:
        length = D.sub(D.mul(n, 2), 2) if inverse and onesided else n
    size = length if not onesided or inverse else (length // 2 + 1 if isinstance(length, int) else Q)
    shape = list(x.shape)
    shape[ax] = size
    shape[-1] = 1 if inverse and onesided else 2
    return x.with_shape(shape)


@define_op("dft", infer=_dft_infer, traits=PURE | {"structured"},
           attrs={"axis": ("int", -2), "length": ("int", 0), "inverse": ("bool", False), "onesided": ("bool", False)})
def dft(x, axis, length, inverse, onesided):
    """Discrete Fourier transform along axis (length 0: the axis' size); onesided keeps the
    non-negative frequencies (and, inverse, reads them to a real signal)."""
    return dft_array(x, axis, length, inverse, onesided)


def _dft_dynamic_infer(x, length, axis, inverse, onesided) -> TensorType:
    require_float(x, "dft input")
    require(length.numel == 1 and axis.numel == 1, "dft_dynamic length and axis must be single integers")
    return x.with_shape((Q,) * (x.rank - 1) + ((1 if inverse and onesided else 2),))


@define_op("dft_dynamic", arity=3, infer=_dft_dynamic_infer, traits=PURE | {"structured"},
           attrs={"inverse": ("bool", False), "onesided": ("bool", False)})
def dft_dynamic(x, length, axis, inverse, onesided):
    """dft with a run-time length (<= 0: the default) and axis."""
    return dft_array(x, int(np.asarray(axis).reshape(-1)[0]), int(np.asarray(length).reshape(-1)[0]), inverse,
                     onesided)


def stft_array(x, step: int, window, length: int, onesided: bool):
    if length <= 0:
        length = x.shape[-2] if window is None else window.shape[0]
    w = np.ones(length) if window is None else window.astype(np.float64)
    frames = 1 + (x.shape[-2] - length) // step
    starts = np.arange(frames) * step
    idx = starts[:, None] + np.arange(length)[None, :]  # frames, length
    z = _complex(x)  # batch, signal
    framed = z[:, idx] * w[None, None, :]
    out = np.fft.fft(framed, n=length, axis=-1)
    if onesided:
        out = out[..., : length // 2 + 1]
    return _pack(out, x.dtype)


def _stft_infer(x: TensorType, *window, step, length, onesided) -> TensorType:
    require_float(x, "stft input")
    require(x.rank == 3 and x.shape[-1] in (1, 2), "stft input must be (batch, signal, 1 or 2)")
    if length <= 0:
        require(bool(window), "stft needs a frame length or a window")
        length = window[0].shape[0]
    n = x.shape[1]
    frames = 1 + (n - length) // step if isinstance(n, int) and isinstance(length, int) else Q
    bins = (length // 2 + 1 if onesided else length) if isinstance(length, int) else Q
    return x.with_shape((x.shape[0], frames, bins, 2))


@define_op("stft", arity=(1, 2), infer=_stft_infer, traits=PURE | {"structured"},
           attrs={"step": "int", "length": ("int", 0), "onesided": ("bool", True)})
def stft(x, *window, step, length, onesided):
    """Short-time Fourier transform: frames of `length` every `step` samples, each weighted by the
    window (if given) and transformed."""
    return stft_array(x, step, window[0] if window else None, length, onesided)


def _stft_dynamic_infer(x, step, window, length, onesided) -> TensorType:
    require_float(x, "stft input")
    require(x.rank == 3 and x.shape[-1] in (1, 2), "stft input must be (batch, signal, 1 or 2)")
    return x.with_shape((x.shape[0], Q, Q, 2))


@define_op("stft_dynamic", arity=4, infer=_stft_dynamic_infer, traits=PURE | {"structured"},
           attrs={"onesided": ("bool", True)})
def stft_dynamic(x, step, window, length, onesided):
    """stft with a run-time step and frame length (<= 0: the window's); an empty window is none."""
    w = window if window.size else None
    return stft_array(x, int(np.asarray(step).reshape(-1)[0]), w, int(np.asarray(length).reshape(-1)[0]), onesided)


def mel_weight_matrix_array(num_mel_bins, dft_length, sample_rate, lower_hz, upper_hz, dtype):
    """The triangular mel filter bank (dft_length // 2 + 1, num_mel_bins) of ONNX MelWeightMatrix."""
    num_mel_bins, dft_length, sample_rate = int(num_mel_bins), int(dft_length), int(sample_rate)
    bins = np.arange(num_mel_bins + 2, dtype=np.float64)
    low = 2595 * np.log1p(float(lower_hz) / 700) / np.log(10)
    high = 2595 * np.log1p(float(upper_hz) / 700) / np.log(10)
    hz = 700 * np.expm1((bins * (high - low) / bins.shape[0] + low) / 2595 * np.log(10))
    edges = (((dft_length + 1) * hz) // sample_rate).astype(np.int64)
    out = np.zeros((dft_length // 2 + 1, num_mel_bins))
    j = np.arange(out.shape[0])[:, None]
    left, center, right = edges[:-2][None, :], edges[1:-1][None, :], edges[2:][None, :]
    rise = np.where(center > left, (j - left) / np.maximum(center - left, 1), 0.0)
    out = np.where((j >= left) & (j <= center) & (center > left), rise, out)
    out = np.where((j == center) & (center == left), 1.0, out)
    fall = (right - j) / np.maximum(right - center, 1)
    out = np.where((j >= center) & (j < right) & (right > center), fall, out)
    return out.astype(dtype.numpy)


def _mel_infer(*ts, dtype) -> TensorType:
    require(all(t.numel == 1 for t in ts), "mel_weight_matrix operands are single values")
    return TensorType(dtype, (Q, Q))


@define_op("mel_weight_matrix", arity=5, infer=_mel_infer, attrs={"dtype": "dtype"})
def mel_weight_matrix(num_mel_bins, dft_length, sample_rate, lower_hz, upper_hz, dtype):
    """A mel filter bank from run-time sizes and frequencies (see mel_weight_matrix_array)."""
    return mel_weight_matrix_array(*(np.asarray(a).reshape(-1)[0] for a in
                                     (num_mel_bins, dft_length, sample_rate, lower_hz, upper_hz)), dtype)


@op_samples
def _samples(s):
    return {
        "dft": [
            s(s.f32(2, 8, 1), axis=1),
            s(s.f32(3, 6, 2), axis=0, inverse=True),
            s(s.f32(2, 8, 1), axis=1, onesided=True, length=6),
            s(s.f32(2, 5, 2), axis=1, onesided=True, inverse=True),
        ],
        "dft_dynamic": [s(s.f32(4, 2, 2), s.scalar(5), s.scalar(0))],
        "stft": [
            s(s.f32(2, 20, 1), s.f32(8, low=0, high=1), step=4),
            s(s.f32(1, 16, 2), step=3, length=6, onesided=False),
        ],
        "stft_dynamic": [s(s.f32(2, 20, 1), s.scalar(5), s.f32(6, low=0, high=1), s.scalar(0))],
        "mel_weight_matrix": [
            s(s.scalar(8), s.scalar(64), s.scalar(16000), s.scalar(0.0, np.float32), s.scalar(8000.0, np.float32), dtype="f32"),
        ],
    }
