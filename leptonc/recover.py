"""Recovery by distillation: fine-tune what pruning and quantization leave of a torch module against the dense
module's outputs, then compile it with the same passes.

    r = leptonc.recover(module, "prune{method=sparsegpt,sparsity=0.5}", calibration=samples, steps=200)
    r.compiled(x)        # the compiled recovered model; r.module is the recovered torch module

1. The module is imported and compressed by `passes` on the calibration data, as compile does.
2. Each linear layer of the compressed graph is read back as an f32 weight W [N, K] (its op applied to the
   identity: sparse, int8 and int4 forms alike), each convolution as W [O, C / group * kernel] (dense or
   conv_bsr), and matched to the torch parameter it came from (the dense weight, as the parameter, its
   transpose, or a conv's weight reshaped). A copy of the module takes those weights; their zeros become
   a fixed mask, and a quantized layer's weights are seen through the quantize pass's round-to-nearest rule
   (symmetric, scale = max|w| / qmax per output or group) with a straight-through estimator.
3. The copy is trained (Adam, `steps` steps, one calibration sample a step, in turn; the learning rate
   decays to 0 along a cosine, or stays at `lr` with schedule="constant") to match the dense
   module's outputs on the calibration samples: KL divergence of the softmax over the last axis
   (loss="kl", for logits) or mean squared error (loss="mse"). Masked weights get no gradient and stay 0;
   every other parameter (biases, norms, layers the passes left alone) is trained too.
4. The recovered weights (masked, and rounded onto their grid) are compiled with the same passes. Pruning
   keeps a layer already pruned to its pattern as it is, and round-to-nearest of a weight on its grid gives
   that grid back, so the compiled model computes the recovered module (r.mismatch: the largest difference
   of their outputs on the calibration data, relative to the outputs' largest magnitude). Passes that
   recompute weights from the calibration data (quantize{method=gptq}) change them again on this compile,
   which r.mismatch shows.
"""
from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass, field

import numpy as np

from .ir.errors import LeptoncError, optional_dependency
from .ir.graph import Graph, Node
from .ir.dtypes import DType
from .ir.registry import get_op
from .ir.sparse import bsr_to_dense

LOSSES = ("kl", "mse")
SCHEDULES = ("cosine", "constant")  # the learning rate: decayed to 0 over the steps (cosine), or held


@dataclass
class Recovered:
    """The result of recover: the recovered torch module, its compiled form, and how the training went."""

    module: object
    compiled: object
    losses: list[float] = field(default_factory=list)  # distillation loss per step
    mismatch: float = 0.0   # max |compiled - module| / max |module| over the calibration data
    seconds: dict = field(default_factory=dict)         # compress, train, compile


@dataclass
class _Layer:
    """A compressed linear layer matched to its torch parameter."""

    owner: object            # the torch module holding the parameter
    attr: str                # its attribute name
    transposed: bool         # parameter is W^T [K, N] (x @ P) rather than W [N, K] (nn.Linear) or W reshaped (conv)
    weight: np.ndarray       # W [N, K] after the passes, f32
    qmax: int                # 127 (int8), 7 (int4), 0 (f32)
    group: int               # inputs per scale, 0: one scale per output


def recover(module, passes: str, calibration, steps: int = 200, example_inputs=None, *, loss: str = "mse",
            lr: float = 1e-3, schedule: str = "cosine", target: str = "cpu", quiet: bool = True) -> Recovered:
    """Fine-tune the weights `passes` leave of torch `module` against its own outputs on `calibration` (an
    iterable of input tuples, or an .npz path, as compile takes), masks and quantization grids fixed, then
    compile the recovered module with the same passes (see the module docstring)."""
    with optional_dependency("recovering a torch model"):
        import torch
    if not isinstance(module, torch.nn.Module):
        raise LeptoncError(f"recover fine-tunes a torch.nn.Module, got {type(module).__name__} (compile an ONNX "
                           "model or a Graph with leptonc.compile)")
    if schedule not in SCHEDULES:
        raise LeptoncError(f"recover: schedule={schedule!r} is not one of {', '.join(SCHEDULES)}")
    if loss not in LOSSES:
        raise LeptoncError(f"recover: loss={loss!r} is not one of {', '.join(LOSSES)}")
    if steps < 0:
        raise LeptoncError(f"recover: steps must be 0 or more, got {steps}")
    if not passes:
        raise LeptoncError("recover needs the passes that compress the model (e.g. 'prune{method=sparsegpt}')")
    from .api import compile as compile_model, import_graph
    from .passes import run_pipeline
    from .passes.calibration import calibrating, load_calibration

    if calibration is not None and not isinstance(calibration, (str, os.PathLike)):
        calibration = list(calibration)
    if calibration is None:
        raise LeptoncError("recover needs calibration data: the inputs the dense model's outputs are taught on")
    seconds = {}
    t0 = time.perf_counter()
    graph = run_pipeline(import_graph(module, _example(example_inputs, calibration, torch)), "default")
    samples = load_calibration(calibration, graph)
    with calibrating(samples):
        compressed = run_pipeline(graph, passes)
    student = copy.deepcopy(module).eval()
    layers = _match_layers(graph, compressed, student, torch)
    seconds["compress"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    inputs = [tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in s) for s in samples.samples]
    with torch.no_grad():
        module.eval()
        targets = [module(*x).detach() for x in inputs]
    losses = _train(student, layers, inputs, targets, steps, loss, lr, schedule, torch)
    _bake(layers, torch)
    seconds["train"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    compiled = compile_model(student, inputs[0], target=target, passes=passes, calibration=samples.samples,
                             quiet=quiet)
    seconds["compile"] = time.perf_counter() - t0
    with torch.no_grad():
        mismatch = max(_relative(compiled(*s), student(*x).numpy()) for s, x in zip(samples.samples, inputs))
    return Recovered(student, compiled, losses, mismatch, seconds)


def _example(example_inputs, calibration, torch) -> tuple:
    if example_inputs is not None:
        return example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    if isinstance(calibration, (str, os.PathLike)):
        raise LeptoncError("recover: give example_inputs with an .npz calibration file")
    first = calibration[0] if calibration else None
    if first is None:
        raise LeptoncError("recover: no calibration samples")
    first = first if isinstance(first, (tuple, list)) else (first,)
    return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in first)


def _relative(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30))


# ---------------------------------------------------------------- layers

def layer_weight(graph: Graph, node: Node) -> np.ndarray:
    """The f32 weight W [N, K] a linear layer's node computes with, whatever its form (dense, sparse, int8,
    int4): the node's op applied to the identity gives W^T. A conv's (conv, conv_bsr): W [O, C / group *
    kernel]."""
    if node.op in ("conv", "conv_bsr"):
        arrays = [graph.constant_of(v) for v in node.inputs[1:4 if node.op == "conv_bsr" else 2]]
        if any(a is None for a in arrays):
            raise LeptoncError(f"recover: conv {node.label} has no constant weight to read back")
        if node.op == "conv":
            return arrays[0].reshape(arrays[0].shape[0], -1).astype(np.float32)
        k = node.inputs[0].shape[1] // node.attrs["group"] * int(np.prod(node.attrs["kernel"]))
        return bsr_to_dense(*arrays, k).astype(np.float32)
    k = node.inputs[0].shape[-1]
    operands = [graph.constant_of(v) for v in node.inputs[1:]]
    if not isinstance(k, int) or any(a is None for a in operands):
        raise LeptoncError(f"recover: layer {node.label} has no constant weight to read back")
    out = get_op(node.op).reference(np.eye(k, dtype=np.float32), *operands, **node.attrs)
    return np.ascontiguousarray(np.asarray(out, np.float32).T)


def _grid(graph: Graph, node: Node) -> tuple[int, int]:
    """(qmax, group) of a layer's integer weight, (0, 0) for an f32 one."""
    qmax = {DType.i8: 127, DType.i4: 7}.get(node.inputs[1].dtype, 0)
    return qmax, int(node.attrs.get("group", 0) or 0) if qmax else 0


def _match_layers(dense: Graph, compressed: Graph, student, torch) -> list[_Layer]:
    """Every linear layer of `dense`, its compressed form in `compressed` (the node with the same result
    name) and the parameter of `student` it came from (found by its source module, else by value)."""
    from .passes.prune_conv import conv_layers
    from .passes.sparse_layers import linear_layers

    by_name = {n.output.name: n for n in compressed.nodes if n.outputs}
    params = dict(student.named_parameters())
    layers = []
    for layer in linear_layers(dense) + conv_layers(dense):
        node = by_name.get(layer.node.output.name)
        if node is None:
            continue
        weight = layer_weight(compressed, node)
        qmax, group = _grid(compressed, node)
        if not qmax and np.array_equal(weight, layer.effective):
            continue  # the passes left it as it was
        owner, attr, transposed = _parameter(layer.effective, layer.node.loc, student, params, torch)
        layers.append(_Layer(owner, attr, transposed, weight, qmax, group))
    return layers


def _parameter(w: np.ndarray, loc: str | None, student, params: dict, torch):
    """(module, attribute, transposed) of the parameter of `student` equal to W [N, K], its transpose, or (a
    conv's) W reshaped."""
    candidates = []
    if loc:
        try:
            sub = student.get_submodule(loc)
            candidates = [(f"{loc}.{n}", p) for n, p in sub.named_parameters(recurse=False)]
        except AttributeError:
            pass
    candidates += list(params.items())
    for name, p in candidates:
        a = p.detach().numpy()
        for transposed, view in ((False, a.reshape(a.shape[0], -1) if a.ndim > 2 else a),
                                 (True, a.T if a.ndim == 2 else a)):
            if view.shape == w.shape and np.array_equal(view, w):
                path, _, attr = name.rpartition(".")
                return (student.get_submodule(path) if path else student), attr, transposed
    raise LeptoncError(f"recover: a linear layer {('of ' + loc) if loc else ''} [{w.shape[0]}, {w.shape[1]}] "
                       "matches no parameter of the module (is its weight computed, not a parameter?)")


# ---------------------------------------------------------------- training

def _fake_quant(w, qmax: int, group: int, torch):
    """w [N, K] rounded onto the quantize pass's grid (scale = max|w| / qmax per output or group), with the
    straight-through gradient."""
    n, k = w.shape
    g = w.reshape(n, k // group, group) if group else w.reshape(n, 1, k)
    amax = g.detach().abs().amax(dim=2, keepdim=True)
    scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))
    q = (torch.clamp(torch.round(g / scale), -qmax, qmax) * scale).reshape(n, k)
    return w + (q - w).detach()


def _as_parameter(layer: _Layer, w: np.ndarray) -> np.ndarray:
    """W [N, K] (or a mask of it) in the layout of the layer's parameter."""
    p = getattr(layer.owner, layer.attr)
    return np.ascontiguousarray(w.T if layer.transposed else w.reshape(tuple(p.shape)))


def _parametrization(layer: _Layer, torch):
    mask = torch.from_numpy(_as_parameter(layer, (layer.weight != 0).astype(np.float32)))

    class Compressed(torch.nn.Module):
        """The parameter as the passes leave it: masked, and on its quantization grid."""

        def forward(self, p):
            p = p * mask
            if not layer.qmax:
                return p
            w = p.T if layer.transposed else p.reshape(layer.weight.shape)
            w = _fake_quant(w, layer.qmax, layer.group, torch)
            return w.T if layer.transposed else w.reshape(p.shape)

    return Compressed()


def _train(student, layers: list[_Layer], inputs, targets, steps: int, loss: str, lr: float, schedule: str,
           torch) -> list[float]:
    from torch.nn.utils import parametrize

    with torch.no_grad():
        for layer in layers:
            getattr(layer.owner, layer.attr).copy_(torch.from_numpy(_as_parameter(layer, layer.weight)))
    for layer in layers:
        parametrize.register_parametrization(layer.owner, layer.attr, _parametrization(layer, torch))
    student.train()
    optimizer = torch.optim.Adam([p for p in student.parameters() if p.requires_grad], lr=lr)
    decay = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(steps, 1)) if schedule == "cosine" else None
    losses = []
    for step in range(steps):
        i = step % len(inputs)
        out = student(*inputs[i])
        if loss == "kl":
            value = torch.nn.functional.kl_div(torch.log_softmax(out, -1).reshape(-1, out.shape[-1]),
                                               torch.log_softmax(targets[i], -1).reshape(-1, out.shape[-1]),
                                               reduction="batchmean", log_target=True)
        else:
            value = torch.nn.functional.mse_loss(out, targets[i])
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        if decay is not None:
            decay.step()
        losses.append(float(value.detach()))
    student.eval()
    return losses


def _bake(layers: list[_Layer], torch) -> None:
    """Replace each parametrized parameter by its masked, rounded value (a plain module again)."""
    from torch.nn.utils import parametrize

    for layer in layers:
        if parametrize.is_parametrized(layer.owner, layer.attr):
            parametrize.remove_parametrizations(layer.owner, layer.attr, leave_parametrized=True)
