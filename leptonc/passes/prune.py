"""prune: zero the least important weights of linear layers and convolutions, and run them on sparse kernels.

    prune{method=magnitude,sparsity=0.9}              unstructured: the smallest |w| of each layer
    prune{method=magnitude,sparsity=0.9,scope=global} one threshold over every pruned layer
    prune{method=nm,n=2,m=4}                          n of every m consecutive inputs of an output
    prune{method=block,block=1x8,sparsity=0.9}        whole BH x BW blocks of W [N, K], the smallest L2 norms
    prune{method=sparsegpt,sparsity=0.5}              chosen and reconstructed on calibration data (SparseGPT)
    prune{method=wanda,pattern=nm,n=2,m=4}            scored |w| * ||x|| on calibration data (Wanda)

sparsegpt and wanda (obs_prune.py) need calibration data (compile(..., calibration=)) and take the mask's
pattern from `pattern`: unstructured (sparsity), nm (n, m) or block (block, sparsity); `pattern` must be
left as it is (auto) or match for magnitude, nm and block, which name theirs.

W is a layer's weight as [N, K], one row per output (as torch stores it), so
block=1x8 keeps or drops 8 consecutive inputs of one output and block=8x1 the
same input of 8 consecutive outputs. A convolution's weight [O, C / group,
kernel...] is W [O, C / group * prod(kernel)] (prune_conv.py): 1x8 drops 8
consecutive (channel, tap) inputs of an output channel, 8x1 one input tap of 8
output channels; sparsegpt and wanda measure its input's windows (im2col).
convs=false leaves convolutions dense. The pruned fraction is exact per layer
(scope=layer) or over all pruned layers together (scope=global); ties go to
the lower index. `skip` names layers to leave alone (weight or result names,
glob patterns; `first` and `last` are the first and last layer, linear or
conv), and layers whose shape does not divide into the blocks or groups are
left alone with a warning. Int8 layers (quantize{weights=int8} before prune) are pruned
on their dequantized magnitudes and stay int8.

A pruned layer then runs on the sparse kernel of its method's format (CSR,
BSR with the block shape, N:M; a conv on conv_bsr with the block shape, 1x1 for
unstructured and N:M) where the cost model (sparse_cost.py)
predicts it faster for the layer's rows of x (kernels=auto; the pass warns
once per layer it keeps dense; `rows` plans for another batch than the
graph's static one), always (kernels=sparse), or never (kernels=dense: the
zeros stay in a dense weight).

Pruning is lossy: the pass declares a tolerance (below) and the compile
report gives the error it introduced and each layer's sparsity.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from ..ir.graph import Graph
from .prune_conv import ConvLayer, apply_conv, block_rows_fit, conv_layers
from .registry import Option, PassError, register_pass
from .sparse_layers import (SparsityWarning, encode_bsr, encode_nm, linear_layers, lower_layer,
                            replace_weight, select_layers)
from .tolerance import Tolerance, declare_tolerance

KERNELS = Option(str, "auto", "sparse kernels where faster (auto), always (sparse) or never (dense)",
                 choices=("auto", "sparse", "dense"))
SKIP = Option(str, "first,last", "layers left dense: weight or result names (globs), first, last, or none")
ROWS = Option(int, 0, "rows of x the kernels are chosen for (0: each layer's static rows, a symbol as 1)")


def parse_block(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    try:
        bh, bw = (int(p) for p in parts)
    except ValueError:
        raise PassError(f"prune: block={text!r} is not ROWSxCOLS (e.g. 1x8)") from None
    if bh < 1 or bw < 1:
        raise PassError(f"prune: block={text!r} must have positive sides")
    return bh, bw


@register_pass("prune", "zero the least important weights of linear layers and convs (magnitude, or sparsegpt/wanda on "
                        "calibration data; unstructured, n:m or block) and run them on sparse kernels where faster",
               options={
                   "method": Option(str, "magnitude", "what is pruned",
                                    choices=("magnitude", "nm", "block", "sparsegpt", "wanda")),
                   "pattern": Option(str, "auto", "mask shape of sparsegpt and wanda (auto: unstructured)",
                                     choices=("auto", "unstructured", "nm", "block")),
                   "sparsity": Option(float, 0.9, "fraction of weights (or blocks) zeroed (unstructured, block)"),
                   "scope": Option(str, "layer", "the fraction holds per layer or over all layers together",
                                   choices=("layer", "global")),
                   "n": Option(int, 2, "weights kept in each group (nm)"),
                   "m": Option(int, 4, "inputs per group (nm)"),
                   "block": Option(str, "1x8", "block shape ROWSxCOLS of W [N, K] (block)"),
                   "sequential": Option(bool, True, "sparsegpt, wanda: each layer observed with the layers "
                                        "before it pruned (false: all on the unpruned graph, one run)"),
                   "convs": Option(bool, True, "prune convolutions too (false: linear layers only)"),
                   "skip": SKIP,
                   "kernels": KERNELS,
                   "rows": ROWS,
               })
def prune(graph: Graph, method: str, pattern: str, sparsity: float, scope: str, n: int, m: int, block: str,
          sequential: bool, convs: bool, skip: str, kernels: str, rows: int) -> bool:
    kind = _pattern_kind(method, pattern)
    if not 0.0 <= sparsity < 1.0:
        raise PassError(f"prune: sparsity must be in [0, 1), got {sparsity}")
    if rows < 0:
        raise PassError(f"prune: rows must be 0 (the graph's) or positive, got {rows}")
    if kind == "nm" and not 1 <= n <= m <= 256:
        raise PassError(f"prune: n:m needs 1 <= n <= m <= 256, got {n}:{m}")
    shape = parse_block(block) if kind == "block" else (1, 1)
    layers = [l for l in select_layers(_layers(graph, convs), skip, "prune") if _fits(l, kind, shape, m)]
    if method in ("sparsegpt", "wanda"):
        from .obs_prune import Pattern, prune_calibrated

        if scope != "layer":
            raise PassError(f"prune: method={method} prunes each layer on its own (scope=layer), got scope={scope}")
        prune_calibrated(graph, layers, method, Pattern(kind, sparsity, n, m, shape),
                         lambda layer, w: _apply(graph, layer, w, kind, n, m, shape, kernels, rows), sequential)
        return bool(layers)
    if method == "nm":
        masks = [_nm_mask(l.effective, n, m) for l in layers]
    else:
        scores = [_block_scores(l.effective, shape) for l in layers]
        masks = [_expand(k, shape) for k in _keep(scores, sparsity, scope)]
    for layer, mask in zip(layers, masks):
        _apply(graph, layer, np.where(mask, layer.effective, np.float32(0)), kind, n, m, shape, kernels, rows)
    return bool(layers)


def _pattern_kind(method: str, pattern: str) -> str:
    """The mask's shape: unstructured, nm or block."""
    named = {"nm": "nm", "block": "block", "magnitude": "unstructured"}.get(method)
    if named is None:
        return "unstructured" if pattern == "auto" else pattern
    if pattern not in ("auto", named):
        raise PassError(f"prune: method={method} prunes {named}; pattern={pattern} is for sparsegpt and wanda "
                        f"(or method=nm, method=block)")
    return named


def _layers(graph: Graph, convs: bool) -> list:
    """The linear layers (and convs) of graph, in graph order."""
    if not convs:
        return linear_layers(graph)
    order = {id(node): i for i, node in enumerate(graph.nodes)}
    return sorted(linear_layers(graph) + conv_layers(graph), key=lambda l: order[id(l.node)])


def _apply(graph: Graph, layer, w: np.ndarray, kind: str, n: int, m: int, shape: tuple[int, int],
           kernels: str, rows: int) -> None:
    """Give `layer` its pruned weight w [N, K] (f32; an int8 layer's is put back on its grid), on the sparse
    kernel of the pattern where `kernels` says so."""
    if isinstance(layer, ConvLayer):
        apply_conv(graph, layer, w, shape, kernels, "prune", rows)
        return
    pruned = w if layer.scale is None else \
        np.clip(np.rint(w / layer.scale[:, None]), -127, 127).astype(np.int8)
    enc = encode_nm(pruned, n, m) if kind == "nm" else encode_bsr(pruned, shape)
    if not lower_layer(graph, layer, enc, kernels, "prune", rows):
        replace_weight(graph, layer, pruned)


def _fits(layer, kind: str, shape: tuple[int, int], m: int) -> bool:
    n_out, k_in = layer.stored.shape
    if kind == "nm" and k_in % m:
        reason = f"its {k_in} inputs do not divide into groups of {m}"
    elif kind == "block" and (n_out % shape[0] or k_in % shape[1]):
        reason = f"[{n_out}, {k_in}] does not divide into {shape[0]}x{shape[1]} blocks"
    elif kind == "block" and isinstance(layer, ConvLayer) and not block_rows_fit(layer, shape[0]):
        reason = f"its {layer.group} groups of {n_out // layer.group} outputs do not divide into rows of {shape[0]}"
    else:
        return True
    warnings.warn(f"prune: layer {layer.name} is not pruned: {reason}", SparsityWarning, stacklevel=3)
    return False


def _block_scores(w: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """L2 norm of each block of W (|w| for 1 x 1 blocks), [N / BH, K / BW]."""
    bh, bw = shape
    if shape == (1, 1):
        return np.abs(w)
    n, k = w.shape
    tiles = w.reshape(n // bh, bh, k // bw, bw).astype(np.float64)
    return np.sqrt(np.einsum("ibjc,ibjc->ij", tiles, tiles))


def _keep(scores: list[np.ndarray], sparsity: float, scope: str) -> list[np.ndarray]:
    """Boolean masks keeping all but the round(sparsity * count) lowest scores, per array or over all."""
    if scope == "layer":
        return [_keep_one(s.ravel(), sparsity).reshape(s.shape) for s in scores]
    if not scores:
        return []
    flat = _keep_one(np.concatenate([s.ravel() for s in scores]), sparsity)
    out, at = [], 0
    for s in scores:
        out.append(flat[at:at + s.size].reshape(s.shape))
        at += s.size
    return out


def _keep_one(scores: np.ndarray, sparsity: float) -> np.ndarray:
    drop = int(round(sparsity * scores.size))
    keep = np.ones(scores.size, bool)
    if drop:
        keep[np.argsort(scores, kind="stable")[:drop]] = False
    return keep


def _expand(keep: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A block mask [N / BH, K / BW] as a mask of W [N, K]."""
    return np.repeat(np.repeat(keep, shape[0], axis=0), shape[1], axis=1)


def _nm_mask(w: np.ndarray, n: int, m: int) -> np.ndarray:
    """Keep the n largest |w| of each run of m inputs of a row (ties to the lower index)."""
    rows, k = w.shape
    groups = np.abs(w).reshape(rows, k // m, m)
    order = np.argsort(-groups, axis=2, kind="stable")[:, :, :n]
    mask = np.zeros(groups.shape, bool)
    np.put_along_axis(mask, order, True, axis=2)
    return mask.reshape(rows, k)


def removed_energy_bound(method: str, sparsity: float, n: int, m: int) -> float:
    """The most of a layer's weight energy (sum of w^2) the pass may remove: dropping the smallest
    fraction s of entries or blocks removes at most s of it; keeping n of m in each group, 1 - n / m."""
    return 1.0 - n / m if method == "nm" else sparsity


def _tolerance(method: str, pattern: str, sparsity: float, scope: str, n: int, m: int, block: str,
               sequential: bool, convs: bool, skip: str, kernels: str, rows: int) -> Tolerance:
    """A pruned layer keeps at least 1 - e of its weight energy (e = removed_energy_bound; a global
    threshold may take up to twice the average from one layer), so on isotropic inputs its output's SQNR
    is at least -10 log10(e) and its relative error at most sqrt(e). The model-level bound allows twice
    that loss (3 dB) for errors compounding through the layers; pruning without retraining promises
    nothing about top-1 agreement. sparsegpt and wanda spend weight energy where the calibration inputs are
    small, so on other inputs they are allowed twice the energy, as a global threshold is."""
    kind = _pattern_kind(method, pattern)
    e = removed_energy_bound(kind if kind in ("nm", "block") else "magnitude", sparsity, n, m)
    if scope == "global" or method in ("sparsegpt", "wanda"):
        e = 2 * e
    e = min(max(e, 1e-6), 1.0)
    return Tolerance(max_rel_error=2.0 * math.sqrt(e), min_sqnr_db=-10.0 * math.log10(2.0 * e), min_top1=0.0)


declare_tolerance("prune", _tolerance)
