"""Neural-network ONNX ops: convolution, pooling, normalization, matmul/Gemm/Einsum and the
integer/quantized variants."""
from __future__ import annotations

import numpy as np

from ....ir import dims as D
from ....ir.dtypes import DType
from ..importer import dtype_of
from ..registry import onnx_op
from .common import norm_axis, unsupported
from .elementwise import onnx_cast

Q = D.UNKNOWN


def _auto_pads(cx, x, kernel, strides, dilations, transpose=False):
    """Explicit pads (all begins, then all ends) for the node's auto_pad / pads attributes."""
    nsp = len(kernel)
    auto = cx.a("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        return tuple(cx.a("pads") or (0,) * (2 * nsp))
    if auto == "VALID":
        return (0,) * (2 * nsp)
    begins, ends = [], []
    for i in range(nsp):
        size = x.shape[2 + i]
        span = (kernel[i] - 1) * dilations[i] + 1
        if strides[i] == 1:
            total = span - 1
        elif isinstance(size, int):
            out = -(-size // strides[i])
            total = max((out - 1) * strides[i] + span - size, 0)
        else:
            unsupported(cx, f"auto_pad {auto} with stride {strides[i]} on dim {size}, not known before run time")
        small, big = total // 2, total - total // 2
        upper = auto == "SAME_UPPER"
        begins.append(small if upper else big)
        ends.append(big if upper else small)
    return tuple(begins + ends)


def _spatial_attrs(cx, x, kernel):
    nsp = len(kernel)
    strides = tuple(cx.a("strides") or (1,) * nsp)
    dilations = tuple(cx.a("dilations") or (1,) * nsp)
    return strides, _auto_pads(cx, x, kernel, strides, dilations), dilations


@onnx_op("Conv")
def conv(cx):
    b, x, w, bias = cx.b, cx.x(0), cx.x(1), cx.x(2)
    kernel = tuple(cx.a("kernel_shape") or w.shape[2:])
    strides, pads, dilations = _spatial_attrs(cx, x, kernel)
    operands = [x, w] + ([bias] if bias is not None else [])
    return b.op("conv", *operands, strides=strides, pads=pads, dilations=dilations, group=cx.a("group", 1))


@onnx_op("ConvTranspose")
def conv_transpose(cx):
    b, x, w, bias = cx.b, cx.x(0), cx.x(1), cx.x(2)
    kernel = tuple(cx.a("kernel_shape") or w.shape[2:])
    nsp = len(kernel)
    strides = tuple(cx.a("strides") or (1,) * nsp)
    dilations = tuple(cx.a("dilations") or (1,) * nsp)
    out_pad = list(cx.a("output_padding") or (0,) * nsp)
    output_shape = cx.a("output_shape")
    auto = cx.a("auto_pad", "NOTSET")
    pads = tuple(cx.a("pads") or (0,) * (2 * nsp))
    if output_shape is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
        out_sp = list(output_shape[-nsp:]) if output_shape is not None else None
        begins, ends = [], []
        for i in range(nsp):
            size = x.shape[2 + i]
            if not isinstance(size, int):
                unsupported(cx, "output_shape / auto_pad need static spatial dims")
            want = out_sp[i] if out_sp is not None else size * strides[i]
            total = strides[i] * (size - 1) + out_pad[i] + (kernel[i] - 1) * dilations[i] + 1 - want
            if total < 0:  # the requested output is bigger: extend the end
                out_pad[i] -= total
                total = 0
            if auto == "SAME_UPPER" or (auto != "SAME_LOWER" and output_shape is not None):
                begins.append(total // 2)
                ends.append(total - total // 2)
            else:
                begins.append(total - total // 2)
                ends.append(total // 2)
        pads = tuple(begins + ends)
    elif auto == "VALID":
        pads = (0,) * (2 * nsp)
    operands = [x, w] + ([bias] if bias is not None else [])
    return b.op("conv_transpose", *operands, strides=strides, pads=pads, dilations=dilations,
                group=cx.a("group", 1), output_padding=tuple(out_pad))


def _pool(cx):
    b, x = cx.b, cx.x(0)
    kernel = tuple(cx.a("kernel_shape"))
    strides, pads, dilations = _spatial_attrs(cx, x, kernel)
    return b, x, dict(kernel=kernel, strides=strides, pads=pads, dilations=dilations,
                      ceil_mode=bool(cx.a("ceil_mode", 0)))


@onnx_op("MaxPool")
def max_pool(cx):
    b, x, attrs = _pool(cx)
    if cx.wants(1):
        return b.ops("max_pool_with_indices", [x], storage_order=cx.a("storage_order", 0), **attrs)
    return b.op("max_pool", x, **attrs)


@onnx_op("AveragePool")
def avg_pool(cx):
    b, x, attrs = _pool(cx)
    return b.op("avg_pool", x, count_include_pad=bool(cx.a("count_include_pad", 0)), **attrs)


@onnx_op("LpPool")
def lp_pool(cx):
    b, x, attrs = _pool(cx)
    return b.op("lp_pool", x, p=float(cx.a("p", 2)), **attrs)


@onnx_op("GlobalAveragePool", "GlobalMaxPool")
def global_pool(cx):
    x = cx.x(0)
    axes = tuple(range(2, x.type.rank))
    return cx.b.op("reduce_mean" if cx.op_type == "GlobalAveragePool" else "reduce_max", x, axes=axes)


@onnx_op("GlobalLpPool")
def global_lp_pool(cx):
    b, x = cx.b, cx.x(0)
    p = float(cx.a("p", 2))
    axes = tuple(range(2, x.type.rank))
    s = b.op("reduce_sum", b.op("pow", b.op("abs", x), b.scalar(p, x.dtype)), axes=axes)
    return b.op("pow", s, b.scalar(1.0 / p, x.dtype))


@onnx_op("MaxUnpool")
def max_unpool(cx):
    b, x, idx = cx.b, cx.x(0), cx.x(1)
    if cx.x(2) is not None:
        shape = b.ints(cx.x(2))
        if shape is None:
            unsupported(cx, "a run-time output_shape")
    else:
        kernel = tuple(cx.a("kernel_shape"))
        nsp = len(kernel)
        strides = tuple(cx.a("strides") or (1,) * nsp)
        pads = tuple(cx.a("pads") or (0,) * (2 * nsp))
        shape = tuple(x.shape[:2]) + tuple(
            D.add(D.mul(D.sub(x.shape[2 + i], 1), strides[i]), kernel[i] - pads[i] - pads[i + nsp])
            for i in range(nsp))
    return b.op("max_unpool", x, idx, output_shape=tuple(shape))


@onnx_op("LRN")
def lrn(cx):
    return cx.b.op("lrn", cx.x(0), size=cx.a("size"), alpha=cx.a("alpha", 1e-4), beta=cx.a("beta", 0.75),
                   bias=cx.a("bias", 1.0))


@onnx_op("Col2Im")
def col2im(cx):
    b = cx.b
    image, block = b.ints(cx.x(1)), b.ints(cx.x(2))
    attrs = dict(strides=tuple(cx.a("strides") or ()), dilations=tuple(cx.a("dilations") or ()))
    if image is None or block is None:
        return b.op("col2im_dynamic", cx.x(0), b.cast(cx.x(1), DType.i64), b.cast(cx.x(2), DType.i64),
                    pads=tuple(cx.a("pads") or ()), **attrs)
    return b.op("col2im", cx.x(0), image_shape=image, block_shape=block,
                pads=tuple(cx.a("pads") or (0,) * (2 * len(image))), **attrs)


def _per_channel(b, v, x):
    """A (C,) parameter shaped to broadcast over (N, C, spatial...), in x's dtype."""
    v = b.cast(v, x.dtype)
    return b.reshape(v, tuple(v.shape) + (1,) * (x.type.rank - 2))


@onnx_op("BatchNormalization")
def batch_norm(cx):
    b, x = cx.b, cx.x(0)
    scale, bias, mean, var = (_per_channel(b, cx.x(i), x) for i in range(1, 5))
    eps = b.scalar(cx.a("epsilon", 1e-5), x.dtype)
    training = bool(cx.a("training_mode", 0))
    outs = []
    if training:
        axes = tuple(i for i in range(x.type.rank) if i != 1)
        bmean = b.op("reduce_mean", x, axes=axes)
        centered = b.op("sub", x, bmean)
        bvar = b.op("reduce_mean", b.op("mul", centered, centered), axes=axes)
        y = b.op("add", b.op("mul", b.op("div", centered, b.op("sqrt", b.op("add", bvar, eps))), scale), bias)
        mom = b.scalar(cx.a("momentum", 0.9), x.dtype)
        rest = b.scalar(1 - cx.a("momentum", 0.9), x.dtype)
        c = (x.shape[1],)
        run_mean = b.op("add", b.op("mul", mean, mom), b.op("mul", bmean, rest))
        run_var = b.op("add", b.op("mul", var, mom), b.op("mul", bvar, rest))
        outs = [y, b.reshape(run_mean, c), b.reshape(run_var, c)]
        return outs
    inv = b.op("div", scale, b.op("sqrt", b.op("add", var, eps)))
    return b.op("add", b.op("mul", b.op("sub", x, mean), inv), bias)


@onnx_op("InstanceNormalization")
def instance_norm(cx):
    b, x = cx.b, cx.x(0)
    scale, bias = _per_channel(b, cx.x(1), x), _per_channel(b, cx.x(2), x)
    axes = tuple(range(2, x.type.rank))
    mean = b.op("reduce_mean", x, axes=axes)
    centered = b.op("sub", x, mean)
    var = b.op("reduce_mean", b.op("mul", centered, centered), axes=axes)
    inv = b.op("div", scale, b.op("sqrt", b.op("add", var, b.scalar(cx.a("epsilon", 1e-5), x.dtype))))
    return b.op("add", b.op("mul", centered, inv), bias)


@onnx_op("LpNormalization")
def lp_normalization(cx):
    b, x = cx.b, cx.x(0)
    axis = norm_axis(cx.a("axis", -1), x.type.rank)
    p = cx.a("p", 2)
    if p == 1:
        norm = b.op("reduce_sum", b.op("abs", x), axes=(axis,))
    else:
        norm = b.op("sqrt", b.op("reduce_sum", b.op("mul", x, x), axes=(axis,)))
    zero = b.op("equal", norm, b.scalar(0, x.dtype))
    return b.op("where", zero, b.scalar(0, x.dtype), b.op("div", x, b.op("where", zero, b.scalar(1, x.dtype), norm)))


@onnx_op("MatMul")
def matmul(cx):
    return cx.b.op("matmul", cx.x(0), cx.x(1))


@onnx_op("Gemm")
def gemm(cx):
    b, a, bb, c = cx.b, cx.x(0), cx.x(1), cx.x(2)
    if cx.a("transA", 0):
        a = b.op("transpose", a, perm=(1, 0))
    if cx.a("transB", 0):
        bb = b.op("transpose", bb, perm=(1, 0))
    y = b.op("matmul", a, bb)
    alpha, beta = cx.a("alpha", 1.0), cx.a("beta", 1.0)
    if alpha != 1.0:
        y = b.op("mul", y, b.scalar(alpha, y.dtype))
    if c is not None:
        if beta != 1.0:
            c = b.op("mul", c, b.scalar(beta, c.dtype))
        y = b.op("add", y, c)
    return y


@onnx_op("Einsum")
def einsum(cx):
    return cx.b.op("einsum", *[x for x in cx.inputs if x is not None], equation=cx.a("equation"))


@onnx_op("Det")
def det(cx):
    return cx.b.op("det", cx.x(0))


def _minus_zero_point(b, v, zp, axis_rows=False):
    """v - zero_point in i32 (a per-row zero point of a 2-D left operand is a column)."""
    v = b.cast(v, DType.i32)
    if zp is None:
        return v
    z = b.cast(zp, DType.i32)
    if axis_rows and z.type.rank == 1:
        z = b.reshape(z, (z.shape[0], 1))
    return b.op("sub", v, z)


@onnx_op("MatMulInteger")
def matmul_integer(cx):
    b = cx.b
    a = _minus_zero_point(b, cx.x(0), cx.x(2), axis_rows=True)
    w = _minus_zero_point(b, cx.x(1), cx.x(3))
    return b.op("matmul", a, w)


@onnx_op("ConvInteger")
def conv_integer(cx):
    b, x, w = cx.b, cx.x(0), cx.x(1)
    kernel = tuple(cx.a("kernel_shape") or w.shape[2:])
    strides, pads, dilations = _spatial_attrs(cx, x, kernel)
    xf = b.cast(_minus_zero_point(b, x, cx.x(2)), DType.f64)
    wz = cx.x(3)
    if wz is not None and wz.type.rank == 1:
        wz = b.reshape(wz, (wz.shape[0],) + (1,) * (w.type.rank - 1))
    wf = b.cast(_minus_zero_point(b, w, wz), DType.f64)
    y = b.op("conv", xf, wf, strides=strides, pads=pads, dilations=dilations, group=cx.a("group", 1))
    return b.cast(y, DType.i32)


# -- quantization -------------------------------------------------------------------------------
def _q_param(b, p, x, axis, block_size):
    """A scale / zero point shaped to broadcast against x: per-tensor, per-axis or blocked."""
    if p.type.rank == 0 or (p.type.rank == 1 and p.shape[0] == 1 and not block_size):
        return b.reshape(p, ()) if p.type.rank else p
    rank = x.type.rank
    axis = norm_axis(axis, rank)
    if block_size:
        reps = np.repeat(np.arange(p.shape[axis]), block_size)[: x.shape[axis]]
        return b.op("gather", p, b.const(reps.astype(np.int64)), axis=axis)
    return b.reshape(p, tuple(p.shape) + (1,) * (rank - axis - 1))


def _saturate(b, y, dtype: DType):
    import ml_dtypes

    info = ml_dtypes.iinfo(dtype.numpy)
    return b.op("min", b.op("max", y, b.scalar(info.min, y.dtype)), b.scalar(info.max, y.dtype))


@onnx_op("QuantizeLinear")
def quantize_linear(cx):
    """y = saturate(round(x / y_scale) + y_zero_point) in an integer type (round half to even, clamp to
    the type's range); in a float type (8-bit floats, float4e2m1) y = cast(x / y_scale + y_zero_point),
    which rounds to nearest even and clamps out-of-range values as the node's `saturate` says."""
    b, x, scale, zp = cx.b, cx.x(0), cx.x(1), cx.x(2)
    axis, block = cx.a("axis", 1), cx.a("block_size", 0)
    if zp is not None:
        out = zp.dtype
    elif cx.a("output_dtype"):
        out = dtype_of(cx.a("output_dtype"), "QuantizeLinear output ")
    else:
        out = DType.u8
    if out is DType.bool:
        unsupported(cx, f"quantizing to {out}")
    work = DType.f64 if x.dtype is DType.f64 else DType.f32
    s = b.cast(_q_param(b, scale, x, axis, block), work)
    y = b.op("div", b.cast(x, work), s)
    if out.is_int:
        y = b.op("round", y)
    if zp is not None:
        y = b.op("add", y, b.cast(_q_param(b, zp, x, axis, block), work))
    if out.is_float:
        return onnx_cast(cx, y, out)
    return b.cast(_saturate(b, y, out), out)


@onnx_op("DequantizeLinear")
def dequantize_linear(cx):
    b, x, scale, zp = cx.b, cx.x(0), cx.x(1), cx.x(2)
    axis, block = cx.a("axis", 1), cx.a("block_size", 0)
    out = dtype_of(cx.a("output_dtype"), "DequantizeLinear output ") if cx.a("output_dtype") else scale.dtype
    work = DType.f64 if out is DType.f64 else DType.f32
    y = b.cast(x, work)
    if zp is not None:
        y = b.op("sub", y, b.cast(_q_param(b, zp, x, axis, block), work))
    return b.cast(b.op("mul", y, b.cast(_q_param(b, scale, x, axis, block), work)), out)


def _requantize(b, acc, scale, y_scale, y_zp):
    """Round(acc * scale / y_scale) + y_zp, saturated to y_zp's dtype (acc, scale in f64)."""
    y = b.op("round", b.op("div", b.op("mul", acc, scale), b.cast(y_scale, DType.f64)))
    y = b.op("add", y, b.cast(y_zp, DType.f64))
    return b.cast(_saturate(b, y, y_zp.dtype), y_zp.dtype)


@onnx_op("QLinearMatMul")
def qlinear_matmul(cx):
    b = cx.b
    a, a_s, a_zp, w, w_s, w_zp, y_s, y_zp = (cx.x(i) for i in range(8))
    af = b.cast(_minus_zero_point(b, a, a_zp, axis_rows=True), DType.f64)
    wf = b.cast(_minus_zero_point(b, w, w_zp), DType.f64)
    acc = b.op("matmul", af, wf)
    a_s = b.cast(a_s, DType.f64)
    if a_s.type.rank == 1 and a_s.shape[0] != 1:
        a_s = b.reshape(a_s, (a_s.shape[0], 1))
    scale = b.op("mul", a_s, b.cast(w_s, DType.f64))
    return _requantize(b, acc, scale, y_s, y_zp)


@onnx_op("QLinearConv")
def qlinear_conv(cx):
    b = cx.b
    x, x_s, x_zp, w, w_s, w_zp, y_s, y_zp, bias = (cx.x(i) for i in range(9))
    kernel = tuple(cx.a("kernel_shape") or w.shape[2:])
    strides, pads, dilations = _spatial_attrs(cx, x, kernel)
    xf = b.cast(_minus_zero_point(b, x, x_zp), DType.f64)
    if w_zp is not None and w_zp.type.rank == 1 and w_zp.shape[0] != 1:
        w_zp = b.reshape(w_zp, (w_zp.shape[0],) + (1,) * (w.type.rank - 1))
    wf = b.cast(_minus_zero_point(b, w, w_zp), DType.f64)
    acc = b.op("conv", xf, wf, strides=strides, pads=pads, dilations=dilations, group=cx.a("group", 1))
    nsp = x.type.rank - 2
    if bias is not None:
        acc = b.op("add", acc, b.reshape(b.cast(bias, DType.f64), (bias.shape[0],) + (1,) * nsp))
    w_s = b.cast(w_s, DType.f64)
    if w_s.type.rank == 1 and w_s.shape[0] != 1:
        w_s = b.reshape(w_s, (w_s.shape[0],) + (1,) * nsp)
    scale = b.op("mul", b.cast(x_s, DType.f64), w_s)
    return _requantize(b, acc, scale, y_s, y_zp)


@onnx_op("DeformConv")
def deform_conv(cx):
    b, x, w, offset, bias, mask = cx.b, cx.x(0), cx.x(1), cx.x(2), cx.x(3), cx.x(4)
    kernel = tuple(cx.a("kernel_shape") or w.shape[2:])
    nsp = len(kernel)
    if nsp != 2:
        unsupported(cx, f"{nsp}-D deformable convolution (2-D only)")
    operands = [x, w, offset] + [v for v in (bias, mask) if v is not None]
    return b.op("deform_conv", *operands, strides=tuple(cx.a("strides") or (1,) * nsp),
                pads=tuple(cx.a("pads") or (0,) * (2 * nsp)), dilations=tuple(cx.a("dilations") or (1,) * nsp),
                group=cx.a("group", 1), offset_group=cx.a("offset_group", 1), has_bias=bias is not None,
                has_mask=mask is not None)


def _stash(cx, x):
    """The dtype LayerNormalization / RMSNormalization compute in (stash_type; f64 stays f64)."""
    dt = dtype_of(cx.a("stash_type", 1), "stash_type ")
    return DType.f64 if x.dtype is DType.f64 else dt


@onnx_op("LayerNormalization")
def layer_norm(cx):
    b, x, scale, bias = cx.b, cx.x(0), cx.x(1), cx.x(2)
    rank = x.type.rank
    axes = tuple(range(norm_axis(cx.a("axis", -1), rank), rank))
    xs = b.cast(x, _stash(cx, x))
    mean = b.op("reduce_mean", xs, axes=axes)
    d = b.op("sub", xs, mean)
    var = b.op("reduce_mean", b.op("mul", d, d), axes=axes)
    inv = b.op("div", b.scalar(1, xs.dtype), b.op("sqrt", b.op("add", var, b.scalar(cx.a("epsilon", 1e-5), xs.dtype))))
    y = b.op("mul", b.cast(b.op("mul", d, inv), x.dtype), scale)
    if bias is not None:
        y = b.op("add", y, bias)
    return [y, mean, inv]


@onnx_op("RMSNormalization")
def rms_norm(cx):
    b, x, scale = cx.b, cx.x(0), cx.x(1)
    rank = x.type.rank
    axes = tuple(range(norm_axis(cx.a("axis", -1), rank), rank))
    xs = b.cast(x, _stash(cx, x))
    ms = b.op("reduce_mean", b.op("mul", xs, xs), axes=axes)
    inv = b.op("div", b.scalar(1, xs.dtype), b.op("sqrt", b.op("add", ms, b.scalar(cx.a("epsilon", 1e-5), xs.dtype))))
    return b.op("mul", b.cast(b.op("mul", xs, inv), x.dtype), scale)
