"""Signal ONNX ops: DFT, STFT, MelWeightMatrix (the window generators expand from their ONNX functions)."""
from __future__ import annotations

import numpy as np

from ....ir.dtypes import DType
from ....ir.ops.signal import mel_weight_matrix_array
from ..importer import dtype_of
from ..registry import onnx_op


def _scalar_i64(b, v, default):
    return b.const(np.array(default, np.int64)) if v is None else b.cast(b.reshape(v, ()) if v.type.rank else v,
                                                                           DType.i64)


@onnx_op("DFT")
def dft(cx):
    b, x = cx.b, cx.x(0)
    length_v = cx.x(1)
    axis_v = cx.x(2) if cx.version >= 20 else None
    inverse, onesided = bool(cx.a("inverse", 0)), bool(cx.a("onesided", 0))
    length = 0 if length_v is None else b.ints(length_v)
    axis = (cx.a("axis", 1) if cx.version < 20 else -2) if axis_v is None else b.ints(axis_v)
    if length is not None and axis is not None:
        length = length if isinstance(length, int) else length[0]
        axis = axis if isinstance(axis, int) else axis[0]
        return b.op("dft", x, axis=axis % (x.type.rank - 1) if axis >= 0 else axis % x.type.rank,
                    length=length, inverse=inverse, onesided=onesided)
    a = cx.a("axis", 1) if cx.version < 20 else -2
    return b.op("dft_dynamic", x, _scalar_i64(b, length_v, 0), _scalar_i64(b, axis_v, a), inverse=inverse,
                onesided=onesided)


@onnx_op("STFT")
def stft(cx):
    b, x, step_v, window, length_v = cx.b, cx.x(0), cx.x(1), cx.x(2), cx.x(3)
    onesided = bool(cx.a("onesided", 1))
    step, length = b.ints(step_v), (0,) if length_v is None else b.ints(length_v)
    if step is not None and length is not None:
        return b.op("stft", x, *([window] if window is not None else []), step=step[0], length=length[0],
                    onesided=onesided)
    if window is None:
        window = b.const(np.zeros(0, x.dtype.numpy))
    return b.op("stft_dynamic", x, _scalar_i64(b, step_v, 1), window, _scalar_i64(b, length_v, 0), onesided=onesided)


@onnx_op("MelWeightMatrix")
def mel_weight_matrix(cx):
    b = cx.b
    dtype = dtype_of(cx.a("output_datatype", 1), "MelWeightMatrix output ")
    vals = [b.known(v) for v in cx.inputs]
    if all(v is not None for v in vals):
        return b.const(mel_weight_matrix_array(*(v.reshape(-1)[0] for v in vals), dtype))
    return b.op("mel_weight_matrix", *cx.inputs, dtype=dtype)
