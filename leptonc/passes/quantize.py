"""quantize: store the weights of matmuls in int8 or int4, optionally with int8 activations.

    quantize{weights=int8,per=channel}            int8 weights, one scale per output channel
    quantize{weights=int4,group=128}              int4 weights, one scale per 32/64/128 inputs of an output
    quantize{weights=int8,activations=int8-dynamic}
                                                  int8 weights and int8 activations (quantized per row
                                                  at run time), int8 x int8 -> int32 products
    quantize{weights=int4,group=128,method=gptq}  int4 weights chosen by GPTQ on the calibration data
                                                  (compile(..., calibration=)) instead of rounded to nearest
    quantize{weights=int8,activations=int8-static,observer=minmax|percentile|mse[,smoothquant=0.5]}
                                                  convs and linear layers W8A8 with uint8 activation scales
                                                  from the calibration data (passes/quantize_static.py)

Every `matmul` whose right operand is a 2-D f32 constant [K, N] (a linear
layer: torch Linear and ONNX MatMul import to this) is replaced: the weight
is transposed to [N, K] (one row per output), quantized symmetrically
(zero point 0, scale = max|w| / qmax over a channel or group, round half to
even), and the matmul becomes `matmul_wq` (weight-only) or `matmul_w8a8`. The new constants are named
after the layer's source (encoder.layer.0.attention.query.q8) when the frontend recorded it, else after
the old weight.
Matmuls of two activations (attention) and everything else stay f32. A
weight whose K is not a multiple of the group size is quantized per channel.
"""
from __future__ import annotations

import numpy as np

from ..ir.dtypes import DType
from ..ir.graph import Graph, Node
from ..ir.ops.quant import dequantize_array, quantize_array
from .calibration import record_layer_error
from .gptq import gptq_weight, output_error, quantize_sequentially
from .quantize_static import quantize_static
from .tolerance import Tolerance, declare_tolerance
from .registry import Option, PassError, register_pass
from .rewrite import replace_result

QMAX = {DType.i8: 127, DType.i4: 7}


def quantize_weight(w: np.ndarray, dtype: DType, group: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(quantized weight [N, K], f32 scale [N] or [N, K / group]) of a weight stored [N, K]."""
    n, k = w.shape
    if group:
        amax = np.abs(w.reshape(n, k // group, group)).max(axis=2)
    else:
        amax = np.abs(w).max(axis=1) if k else np.zeros(n, np.float32)
    scale = np.where(amax > 0, amax / QMAX[dtype], 1.0).astype(np.float32)
    return quantize_array(w, scale, None, dtype, axis=1 if group else 0, group=group), scale


def _linear_weight(graph: Graph, node: Node) -> np.ndarray | None:
    """The [K, N] f32 constant weight of a matmul that is a linear layer, else None."""
    if node.op != "matmul":
        return None
    x, w = node.inputs
    arr = graph.constant_of(w)
    if arr is None or arr.ndim != 2 or arr.dtype != np.float32 or x.dtype is not DType.f32 or x.type.rank < 1:
        return None
    return arr


@register_pass("quantize", "int8/int4 weights of linear layers (weight-only), or int8 weights and activations",
               options={
                   "weights": Option(str, "int8", "the weight type", choices=("int8", "int4")),
                   "per": Option(str, "auto", "scale granularity (auto: channel for int8, group for int4)",
                                 choices=("auto", "channel", "group")),
                   "group": Option(int, 128, "inputs per scale when per=group"),
                   "activations": Option(str, "none", "activation quantization",
                                         choices=("none", "int8-dynamic", "int8-static")),
                   "observer": Option(str, "minmax", "activations=int8-static: how an activation's range is "
                                      "chosen from the calibration data (passes/observers.py)",
                                      choices=("minmax", "percentile", "mse")),
                   "smoothquant": Option(float, 0.0, "activations=int8-static: SmoothQuant's migration "
                                         "strength alpha for linear layers (0: off)"),
                   "reduce_range": Option(bool, False, "activations=int8-static: 7-bit weights ([-64, 64]), "
                                          "which the cpu kernels sum in pairs in int16, exactly and faster"),
                   "method": Option(str, "rtn", "how weights are chosen: rtn rounds to nearest, gptq "
                                    "minimises each layer's output error on the calibration data",
                                    choices=("rtn", "gptq")),
               })
def quantize(graph: Graph, weights: str, per: str, group: int, activations: str, method: str, observer: str,
             smoothquant: float, reduce_range: bool) -> bool:
    dtype = DType.i8 if weights == "int8" else DType.i4
    per = per if per != "auto" else ("channel" if dtype is DType.i8 else "group")
    if group <= 0:
        raise PassError(f"quantize: group must be positive, got {group}")
    if activations == "int8-dynamic" and (dtype is not DType.i8 or per != "channel"):
        raise PassError("quantize: activations=int8-dynamic needs weights=int8 and per=channel")
    if method == "gptq" and activations != "none":
        raise PassError("quantize: method=gptq quantizes weights only (activations=none)")
    if activations == "int8-static":
        if dtype is not DType.i8 or per != "channel":
            raise PassError("quantize: activations=int8-static needs weights=int8 and per=channel")
        return quantize_static(graph, observer, smoothquant, reduce_range)
    layers = [n for n in graph.nodes if n.graph is graph and _linear_weight(graph, n) is not None]

    def rewrite(node: Node, h: np.ndarray | None = None) -> None:
        """Replace the linear layer `node` by a quantized matmul (GPTQ when given its input Hessian h)."""
        wt = np.ascontiguousarray(_linear_weight(graph, node).T)
        g = group if per == "group" and wt.shape[1] % group == 0 else 0
        q, scale = quantize_weight(wt, dtype, g)
        name = node.loc or node.inputs[1].name
        if h is not None:  # GPTQ, its error on the calibration data recorded beside round to nearest's
            axis = 1 if g else 0
            rtn_error = output_error(wt, dequantize_array(q, scale, None, axis, g), h)
            q, scale = gptq_weight(wt, h, dtype, g)
            record_layer_error(name, "gptq", output_error(wt, dequantize_array(q, scale, None, axis, g), h),
                               "rtn", rtn_error)
        wq = graph.add_constant(q, f"{name}.q{'8' if dtype is DType.i8 else '4'}", before=node)
        sv = graph.add_constant(scale, f"{name}.scale", before=node)
        x = node.inputs[0]
        if activations == "int8-dynamic":
            y = graph.add("matmul_w8a8", x, wq, sv, name=node.output.name, before=node)
        else:
            y = graph.add("matmul_wq", x, wq, sv, group=g, name=node.output.name, before=node)
        replace_result(graph, node.output, y)

    if method == "gptq":
        quantize_sequentially(graph, layers, rewrite)
    else:
        for node in layers:
            rewrite(node)
    return bool(layers)


def _tolerance(weights: str, per: str, group: int, activations: str, **_) -> Tolerance:
    """Bounds with a margin over the worst error measured on the real models of the test zoo (BERT-base and
    GPT-2 are the worst: int4 SQNR 11.3 dB in groups of 32, 9.7 dB in groups of 128, 8.4 dB per channel).
    GPTQ is held to round-to-nearest's bounds: it lowers the error on data like the calibration set."""
    if activations in ("int8-dynamic", "int8-static"):
        return Tolerance(max_rel_error=0.15, min_sqnr_db=20.0, min_top1=0.9)
    if weights == "int8":
        return Tolerance(max_rel_error=0.1, min_sqnr_db=25.0, min_top1=0.9)
    if per == "channel" or group > 128:
        return Tolerance(max_rel_error=0.75, min_sqnr_db=7.0, min_top1=0.6)
    if group > 32:
        return Tolerance(max_rel_error=0.6, min_sqnr_db=8.0, min_top1=0.6)
    return Tolerance(max_rel_error=0.5, min_sqnr_db=10.0, min_top1=0.6)


declare_tolerance("quantize", _tolerance)
