"""Lowering of dft, stft and mel_weight_matrix. A DFT is a linear map of the (real, imaginary) values along its axis,
so its matrix is the reference applied to a basis at emission; stft gathers its frames, weights
them by the window, and applies the DFT matrix of one frame."""
from __future__ import annotations

import numpy as np

from ...ir.dtypes import DType
from ...ir.errors import LeptoncError
from ...ir.ops.signal import dft_array, mel_weight_matrix_array
from .builder import Builder, Val
from .dynamic import known_ints
from .layout import take_along_axis
from .linalg import apply_matrix
from .rules import lowers


def dft_matrix(n: int, parts: int, length: int, inverse: bool, onesided: bool) -> np.ndarray:
    """(n * parts) x (m * parts_out): the DFT of one axis of n values of `parts` (1 real, 2 complex) numbers."""
    basis = np.eye(n * parts).reshape(n * parts, n, parts)
    return dft_array(basis, 1, length, inverse, onesided).reshape(n * parts, -1)


def dft_along(b: Builder, x: Val, axis: int, length: int, inverse: bool, onesided: bool, out) -> Val:
    """Move axis next to the (real, imag) dim, flatten the two, multiply, and move back."""
    rank = len(x.shape)
    axis %= rank - 1
    acc = DType.f64 if x.dtype is DType.f64 else DType.f32
    order = [d for d in range(rank - 1) if d != axis] + [axis, rank - 1]
    moved = b.transpose(b.convert(x, acc), order)
    n, parts = x.shape[axis], x.shape[-1]
    flat = b.reshape(moved, tuple(moved.shape[:-2]) + (n * parts,))
    y = apply_matrix(b, flat, len(flat.shape) - 1, dft_matrix(n, parts, length, inverse, onesided))
    m, parts_out = out.shape[axis], out.shape[-1]
    y = b.reshape(y, tuple(moved.shape[:-2]) + (m, parts_out))
    back = [order.index(d) for d in range(rank)]
    return b.convert(b.transpose(y, back), out.dtype)


@lowers("dft")
def dft(b: Builder, node, args, out, attrs):
    return dft_along(b, args[0], attrs["axis"], attrs["length"], attrs["inverse"], attrs["onesided"], out[0])


@lowers("dft_dynamic")
def dft_dynamic(b: Builder, node, args, out, attrs):
    (length,), (axis,) = known_ints(node, args[1], "length"), known_ints(node, args[2], "the axis")
    return dft_along(b, args[0], axis, length, attrs["inverse"], attrs["onesided"], out[0])


def stft_of(b: Builder, x: Val, window: Val | None, step: int, length: int, onesided: bool, out) -> Val:
    """Frames (batch, frames, length, parts) gathered at static offsets, windowed, then one DFT each."""
    if length <= 0:
        length = x.shape[1] if window is None else window.shape[0]
    acc = DType.f64 if x.dtype is DType.f64 else DType.f32
    batch, frames, parts = x.shape[0], out.shape[1], x.shape[2]
    starts = np.arange(frames)[:, None] * step + np.arange(length)[None, :]
    idx = np.broadcast_to(starts.reshape(1, frames * length, 1), (batch, frames * length, parts))
    framed = take_along_axis(b, b.convert(x, acc), b.constant(np.ascontiguousarray(idx)), 1)
    framed = b.reshape(framed, (batch, frames, length, parts))
    if window is not None:
        w = b.broadcast_in_dim(b.convert(window, acc), framed.shape, [2])
        framed = b.binary("multiply", framed, w)
    return dft_along(b, framed, 2, length, False, onesided, out)


@lowers("stft")
def stft(b: Builder, node, args, out, attrs):
    return stft_of(b, args[0], args[1] if len(args) > 1 else None, attrs["step"], attrs["length"],
                   attrs["onesided"], out[0])


@lowers("stft_dynamic")
def stft_dynamic(b: Builder, node, args, out, attrs):
    x, step, window, length = args
    (step,), (length,) = known_ints(node, step, "step"), known_ints(node, length, "the frame length")
    return stft_of(b, x, window if int(np.prod(window.shape)) else None, step, length, attrs["onesided"], out[0])


@lowers("mel_weight_matrix")
def mel_weight_matrix(b: Builder, node, args, out, attrs):
    """A constant: its operands (sizes and frequencies) are known at emission."""
    values = []
    for v, what in zip(args, ("num_mel_bins", "dft_length", "sample_rate", "lower_edge_hertz", "upper_edge_hertz")):
        if v.known is None:
            raise LeptoncError(f"stablehlo: the {what} of {node.label} is only known at run time; "
                               "XLA needs it static")
        values.append(np.asarray(v.known).reshape(-1)[0])
    return b.constant(mel_weight_matrix_array(*values, attrs["dtype"]).astype(out[0].dtype.numpy), out[0].dtype)
