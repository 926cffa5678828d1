"""Static int8 quantization (W8A8) of convolutions and linear layers, its activation ranges from calibration.

    quantize{weights=int8,activations=int8-static,observer=minmax|percentile|mse[,smoothquant=0.5]
             [,reduce_range=true]}

Each 2-D conv (channels-first, constant f32 weight) and each linear layer (a matmul by a constant 2-D f32
weight, with the bias `add` that follows it) becomes qlinear_conv / qlinear_matmul (ir/ops/qlinear.py):
per-output-channel symmetric int8 weights, the bias in int32, and its input quantized to uint8 with one
scale and zero point from the observer's range of that input over the calibration samples
(passes/observers.py).

Quantized values stay uint8 between layers: when a layer's result reaches only quantized layers, through
relu, max_pool and reshape (each with a single use), the layer requantizes its result to the next layers'
input scale and those ops run on the uint8 values (a relu is the clip at the zero point 0 of a range that
starts at 0; max_pool and reshape commute with a monotone per-tensor quantization). The others produce f32
(relu and the rest stay after them), and a graph input or f32 value a layer reads is quantized once.

reduce_range=true quantizes the weights to 7 bits, [-64, 64] (one bit less of precision): the cpu kernels
then sum a pair of u8 x i8 products in int16 (AVX2's vpmaddubsw, twice as many products an instruction),
exactly, since |255 * 64 * 2| < 2^15. The default keeps 8-bit weights, [-127, 127], summed in int32.

smoothquant=alpha (0 < alpha <= 1; SmoothQuant, Xiao et al. 2023) first migrates the outliers of a linear
layer's input channels into its weight: x / s and s * W with s_j = max|x_j|^alpha / max|W_j|^(1 - alpha), for
the layers whose input is f32 (as in transformers: after a layer norm), so that one per-tensor scale fits x.
"""
from __future__ import annotations

import numpy as np

from ..ir.dtypes import DType
from ..ir.graph import Graph, Node, Value
from ..ir.ops.quant import quantize_array
from .calibration import Calibration, require_calibration
from .observers import OBSERVERS, histograms, uint8_params
from .registry import PassError
from .rewrite import erase_dead, replace_result

INT32 = np.iinfo(np.int32)
REDUCED_QMAX = 64  # reduce_range's weight bound: the qlinear ops' weight_max (see ir/ops/qlinear.py)
THROUGH = ("relu", "max_pool", "reshape")  # ops a uint8 result passes through to the next quantized layer


def _weight(graph: Graph, node: Node) -> np.ndarray | None:
    """The f32 weight of a layer this pass quantizes: conv [O, C/g, kh, kw] or linear [K, N]; else None."""
    if node.op == "conv" and not node.attrs["channels_last"] and node.inputs[0].type.rank == 4:
        w = graph.constant_of(node.inputs[1])
        bias_ok = len(node.inputs) < 3 or graph.constant_of(node.inputs[2]) is not None
        ok = w is not None and w.dtype == np.float32 and bias_ok
    elif node.op == "matmul":
        w = graph.constant_of(node.inputs[1])
        ok = w is not None and w.ndim == 2 and w.dtype == np.float32 and node.inputs[0].type.rank >= 1
    else:
        return None
    return w if ok and node.inputs[0].dtype is DType.f32 else None


def _bias_add(graph: Graph, node: Node) -> tuple[Node | None, np.ndarray | None]:
    """The `add` of a constant [N] (or [1, ..., N]) bias that is the only use of a linear layer's result."""
    y = node.output
    if len(y.uses) != 1 or any(o is y for o in graph.outputs):
        return None, None
    user, _ = y.uses[0]
    if user.op != "add":
        return None, None
    other = user.inputs[1] if user.inputs[0] is y else user.inputs[0]
    b = graph.constant_of(other)
    n = node.output.type.shape[-1]
    if b is None or b.dtype != np.float32 or b.size != n or b.shape[-1:] != (n,) or user.output.type != y.type:
        return None, None
    return user, b.reshape(n)


def _fed_by_layer(x: Value, layers: set) -> bool:
    """Whether x is a layer's result (after its bias add) through relu, max_pool and reshape: a value the
    layers can pass on in uint8."""
    p = x.producer
    while p is not None and p.op in THROUGH:
        p = p.inputs[0].producer
    if p is not None and p.op == "add":
        return any(v.producer is not None and id(v.producer) in layers for v in p.inputs)
    return p is not None and id(p) in layers


def _smooth(graph: Graph, cal: Calibration, layers: list[Node], alpha: float) -> None:
    """SmoothQuant's migration for the linear layers whose input is not another layer's result (a graph
    input, a layer norm's...): x / s before the layer, s * W in it."""
    ids = {id(n) for n in layers}
    linear = [n for n in layers if n.op == "matmul" and not _fed_by_layer(n.inputs[0], ids)]
    if not linear:
        return
    xs = list({id(n.inputs[0]): n.inputs[0] for n in linear}.values())
    amax = [np.zeros(v.type.shape[-1]) for v in xs]
    for arrays in cal.observe(graph, xs):
        for i, a in enumerate(arrays):
            amax[i] = np.maximum(amax[i], np.abs(a.reshape(-1, a.shape[-1])).max(axis=0))
    index = {id(v): i for i, v in enumerate(xs)}
    for node in linear:
        x, w = node.inputs[0], graph.constant_of(node.inputs[1])
        wmax = np.abs(w).max(axis=1)
        s = np.power(np.maximum(amax[index[id(x)]], 1e-5), alpha) / np.power(np.maximum(wmax, 1e-5), 1 - alpha)
        s = np.where((amax[index[id(x)]] > 0) & (wmax > 0), s, 1.0).astype(np.float32)
        name = node.loc or node.inputs[1].name
        inv = graph.add_constant((1 / s).astype(np.float32), f"{name}.smooth", before=node)
        graph.set_input(node, 0, graph.add("mul", x, inv, name=f"{x.name}_smooth", before=node))
        old = node.inputs[1]
        graph.set_input(node, 1, graph.add_constant(w * s[:, None], f"{name}.weight_smooth", before=node))
        erase_dead(graph, old.producer)


def _chain(graph: Graph, y: Value, layers: set) -> tuple[list[Node], Value] | None:
    """The ops a layer's result y passes through (relu, max_pool, reshape, each its producer's only use) to
    a value that only quantized layers read, as their input (ids in `layers`); None when it reaches anything
    else."""
    outputs = {id(o) for o in graph.outputs}
    ops, v = [], y
    while len(v.uses) == 1 and id(v) not in outputs and v.uses[0][0].op in THROUGH and v.uses[0][1] == 0:
        ops.append(v.uses[0][0])
        v = ops[-1].output
    if id(v) in outputs or not v.uses or not all(id(u) in layers and i == 0 for u, i in v.uses):
        return None
    return ops, v


def quantize_static(graph: Graph, observer: str, smoothquant: float, reduce_range: bool = False) -> bool:
    """Rewrite the graph's convs and linear layers as W8A8 static (see the module docstring)."""
    if not 0 <= smoothquant <= 1:
        raise PassError(f"quantize: smoothquant must be in (0, 1] (0: off), got {smoothquant}")
    cal = require_calibration("quantize")
    layers = [n for n in graph.nodes if n.graph is graph and _weight(graph, n) is not None]
    if not layers:
        return False
    if smoothquant:
        _smooth(graph, cal, layers, smoothquant)
    inputs = {id(n.inputs[0]): n.inputs[0] for n in layers}
    try:
        hists = histograms(cal, graph, list(inputs.values()))
    except ValueError as e:
        raise PassError(f"quantize: {e}") from None
    params = {vid: uint8_params(*OBSERVERS[observer](h)) for vid, h in zip(inputs, hists)}
    quantized: dict[int, tuple] = {}  # f32 value -> its uint8 form, scale and zero point
    ids = {id(n) for n in layers}
    for node in layers:
        _rewrite(graph, node, ids, params, quantized, REDUCED_QMAX if reduce_range else 127)
    for node in reversed(list(graph.nodes)):  # the f32 layers and ops that fed uint8 ones only
        erase_dead(graph, node)
    return True


def _scalar(graph: Graph, value, name: str, before: Node) -> Value:
    return graph.add_constant(np.asarray(value), name, before=before)


def _weight_i8(w: np.ndarray, qmax: int) -> tuple[np.ndarray, np.ndarray]:
    """(int8 weight [N, K] in [-qmax, qmax], f32 scale [N]): symmetric, one scale per row (output channel)."""
    amax = np.abs(w).max(axis=1) if w.shape[1] else np.zeros(w.shape[0], np.float32)
    scale = np.where(amax > 0, amax / qmax, 1.0).astype(np.float32)
    return quantize_array(w, scale, None, DType.i8), scale


def _rewrite(graph: Graph, node: Node, layers: set, params: dict, quantized: dict, qmax: int) -> None:
    """node as its quantized op, reading x in uint8 (quantized here unless a layer before made it), its weights
    in [-qmax, qmax]."""
    x = node.inputs[0]
    name = node.loc or node.inputs[1].name
    x_scale, x_zp = params[id(x)]
    if id(x) not in quantized:
        sv, zv = _scalar(graph, x_scale, f"{name}.x_scale", node), _scalar(graph, x_zp, f"{name}.x_zero_point", node)
        quantized[id(x)] = (graph.add("quantize", x, sv, zv, dtype=DType.u8, name=f"{x.name}_q", before=node), sv, zv)
    xq, sv, zv = quantized[id(x)]
    w = graph.constant_of(node.inputs[1])
    if node.op == "conv":
        wn = w.reshape(w.shape[0], -1)
        bias = graph.constant_of(node.inputs[2]) if len(node.inputs) > 2 else np.zeros(w.shape[0], np.float32)
        last = node
    else:
        wn = np.ascontiguousarray(w.T)
        last, bias = _bias_add(graph, node)
        if last is None:
            last, bias = node, np.zeros(wn.shape[0], np.float32)
    wq, w_scale = _weight_i8(wn, qmax)
    wq = wq.reshape(w.shape[0], *w.shape[1:]) if node.op == "conv" else wq
    acc_scale = (np.float32(x_scale) * w_scale).astype(np.float64)
    bq = np.clip(np.rint(bias.astype(np.float64) / acc_scale), INT32.min, INT32.max).astype(np.int32)
    operands = [xq, sv, zv, graph.add_constant(wq, f"{name}.q8", before=node),
                graph.add_constant(w_scale, f"{name}.scale", before=node),
                graph.add_constant(bq, f"{name}.bias_q", before=node)]
    chain = _chain(graph, last.output, layers)
    relu_ok = chain is not None and (params[id(chain[1])][1] == 0 or all(n.op != "relu" for n in chain[0]))
    if chain is not None and relu_ok:
        ops, reached = chain
        y_scale, y_zp = params[id(reached)]
        operands += [_scalar(graph, y_scale, f"{name}.y_scale", node),
                     _scalar(graph, y_zp, f"{name}.y_zero_point", node)]
    op = "qlinear_conv" if node.op == "conv" else "qlinear_matmul"
    attrs = {k: node.attrs[k] for k in ("strides", "pads", "dilations", "group")} if node.op == "conv" else {}
    attrs["weight_max"] = qmax
    y = graph.add_node(op, operands, attrs, names=[last.output.name + ("_q" if len(operands) == 8 else "")],
                       before=node).output
    if len(operands) == 6:
        replace_result(graph, last.output, y)
        return
    for op_node in ops:  # the chain again, on uint8 (a relu is the requantization's clip at 0)
        if op_node.op != "relu":
            y = graph.add_node(op_node.op, [y] + op_node.inputs[1:], dict(op_node.attrs),
                               names=[op_node.output.name + "_q"], before=op_node).output
    quantized[id(reached)] = (y, *operands[6:])  # its readers read y; the f32 chain dies with them
