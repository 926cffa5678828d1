"""Linear layers and their sparse forms: what the prune and sparsify passes share.

    layers = linear_layers(graph)                       # matmuls with a constant weight, in graph order
    lower_layer(graph, layer, encode_bsr(w, (1, 8)), kernels="auto", pass_name="prune")
    layer_table(graph)                                  # per layer: shape, format, sparsity (the report)

A linear layer is `matmul(x, w)` with a 2-D f32 constant w [K, N] (torch
Linear and ONNX MatMul import to this), or `matmul_wq(x, w, scale)` with an
i8 weight [N, K] and a scale per output (quantize{weights=int8}). Its weight,
seen as W [N, K] (one row per output), is what the passes prune and store
sparse; an int8 weight stays int8 and keeps its scale. The name of a layer is
the name of its weight constant; the report names it by its source (the torch
module path) when the frontend recorded one.
"""
from __future__ import annotations

import fnmatch
import warnings
from dataclasses import dataclass

import numpy as np

from ..ir import sparse as S
from ..ir.dtypes import DType
from ..ir.graph import Graph, Node
from ..ir.ops.sparse import SPARSE_MATMULS
from .registry import PassError
from .rewrite import replace_result
from .sparse_cost import SparseLayout, compare


class SparsityWarning(UserWarning):
    """A layer the pass left dense: its sparse kernel would not be faster, or its shape does not fit."""


@dataclass
class LinearLayer:
    node: Node
    name: str
    stored: np.ndarray          # W [N, K] as stored: f32, or i8 with `scale`
    scale: np.ndarray | None    # f32 [N] for an i8 weight

    @property
    def effective(self) -> np.ndarray:
        """W in f32 (an i8 weight times its scale): what magnitudes are measured on."""
        if self.scale is None:
            return self.stored
        return self.stored.astype(np.float32) * self.scale[:, None]

    @property
    def rows(self) -> int:
        """Rows of x the layer's kernel is planned for: its static size (a symbol counts as 1)."""
        n = 1
        for d in self.node.inputs[0].shape[:-1]:
            n *= d if isinstance(d, int) else 1
        return n


def linear_layers(graph: Graph) -> list[LinearLayer]:
    out = []
    for node in graph.nodes:
        x = node.inputs[0] if node.inputs else None
        if x is None or x.dtype is not DType.f32 or x.type.rank < 1:
            continue
        if node.op == "matmul":
            w = graph.constant_of(node.inputs[1])
            if w is not None and w.ndim == 2 and w.dtype == np.float32:
                out.append(LinearLayer(node, node.inputs[1].producer.attrs["name"], w.T, None))
        elif node.op == "matmul_wq" and len(node.inputs) == 3 and node.attrs["group"] == 0:
            w, scale = graph.constant_of(node.inputs[1]), graph.constant_of(node.inputs[2])
            if w is not None and scale is not None and w.dtype == np.int8 and scale.dtype == np.float32:
                out.append(LinearLayer(node, node.inputs[1].producer.attrs["name"], w, scale))
    return out


def select_layers(layers: list[LinearLayer], skip: str, pass_name: str) -> list[LinearLayer]:
    """The layers not named by `skip`: comma-separated weight names, result names or sources (glob patterns),
    'first' and 'last' for the first and last linear layer, 'none' for no layer."""
    patterns = [p.strip() for p in skip.split(",") if p.strip() and p.strip() != "none"]
    skipped = set()
    for p in patterns:
        if p in ("first", "last"):
            if layers:
                skipped.add(id(layers[0 if p == "first" else -1]))
            continue
        hits = [l for l in layers if any(fnmatch.fnmatchcase(n, p) for n in (l.name, l.node.output.name,
                                                                             l.node.loc or ""))]
        if not hits:
            names = ", ".join(l.name for l in layers[:6]) + (", ..." if len(layers) > 6 else "")
            raise PassError(f"{pass_name}: skip={p!r} names no linear layer (layers: {names or 'none'})")
        skipped.update(id(l) for l in hits)
    return [l for l in layers if id(l) not in skipped]


# ---------------------------------------------------------------- encodings

@dataclass
class Encoding:
    """A weight in one sparse format: the layout (for the cost model) and the component arrays."""

    layout: SparseLayout
    arrays: tuple               # (values, cols, rows) for csr/bsr, (values, meta) for nm

    @property
    def zeros(self) -> float:
        """The fraction of W's entries that are zero."""
        return 1.0 - np.count_nonzero(self.arrays[0]) / (self.layout.n_out * self.layout.k_in or 1)


def encode_bsr(w: np.ndarray, block: tuple[int, int]) -> Encoding:
    values, cols, rows = S.bsr_from_dense(w, block)
    fmt = "csr" if block == (1, 1) else "bsr"
    if fmt == "csr":
        values = values.reshape(-1)
    layout = SparseLayout(fmt, w.shape[0], w.shape[1], int(values.size), tuple(block), w.itemsize,
                          cols.itemsize)
    return Encoding(layout, (values, cols, rows))


def encode_nm(w: np.ndarray, n: int, m: int) -> Encoding:
    values, meta = S.nm_from_dense(w, n, m)
    return Encoding(SparseLayout("nm", w.shape[0], w.shape[1], int(values.size), (n, m), w.itemsize), (values, meta))


# ---------------------------------------------------------------- lowering

def lower_layer(graph: Graph, layer: LinearLayer, enc: Encoding, kernels: str, pass_name: str, rows: int = 0) \
        -> bool:
    """Replace the layer's matmul by the sparse matmul of `enc` when `kernels` is 'sparse', or 'auto' and
    the cost model predicts it faster for `rows` rows of x (0: the layer's own, see LinearLayer.rows); else
    warn (SparsityWarning) naming the layer. True if replaced."""
    if kernels == "dense":
        return False
    rows = rows or layer.rows
    faster, dense_s, sparse_s = compare(enc.layout, rows)
    if kernels == "auto" and not faster:
        warnings.warn(f"{pass_name}: layer {layer.name} keeps its dense kernel: {enc.layout.describe()} at "
                      f"{100 * enc.zeros:.0f}% zeros is predicted {sparse_s * 1e6:.0f} us against "
                      f"{dense_s * 1e6:.0f} us dense for {rows} row(s)", SparsityWarning, stacklevel=2)
        return False
    node, x = layer.node, layer.node.inputs[0]
    names = ("values", "cols", "rows") if enc.layout.format != "nm" else ("values", "meta")
    operands = [graph.add_constant(a, f"{layer.name}.{n}", before=node) for a, n in zip(enc.arrays, names)]
    if layer.scale is not None:
        operands.append(node.inputs[2])
    op = {"csr": "matmul_csr", "bsr": "matmul_bsr", "nm": "matmul_nm"}[enc.layout.format]
    attrs = {"n": enc.layout.block[0], "m": enc.layout.block[1]} if op == "matmul_nm" else {}
    y = graph.add(op, x, *operands, name=node.output.name, before=node, **attrs)
    replace_result(graph, node.output, y)
    return True


def replace_weight(graph: Graph, layer: LinearLayer, stored: np.ndarray) -> None:
    """Give the (still dense) layer the weight `stored` [N, K], in the layout its op reads: in place when
    no other node reads the old constant, else as a new constant."""
    node = layer.node
    if node.op == "matmul":
        stored = stored.T  # [K, N], a transposed view as torch weights are: BLAS reads it in place
    old = node.inputs[1]
    cname = old.producer.attrs["name"]
    if len(old.uses) == 1 and sum(n.op == "const" and n.attrs["name"] == cname for n in graph.nodes) == 1:
        graph.constants[cname] = stored
    else:
        graph.set_input(node, 1, graph.add_constant(stored, layer.name, before=node))


def sparsity(w: np.ndarray) -> float:
    return 1.0 - np.count_nonzero(w) / w.size if w.size else 0.0


# ---------------------------------------------------------------- the report

def layer_table(graph: Graph) -> list[dict]:
    """Every linear layer and conv (W [O, C / group * kernel]), dense or sparse, in graph order: name, [N, K],
    kernel format, fraction of zeros in W, bytes of its weight."""
    dense = {id(l.node): l for l in linear_layers(graph)}
    rows = []
    for node in graph.nodes:
        layer = dense.get(id(node))
        if layer is not None:
            w = layer.stored
            rows.append({"name": node.loc or layer.name, "shape": list(w.shape),
                         "format": "dense " + ("i8" if layer.scale is not None else "f32"), "sparsity": sparsity(w),
                         "bytes": int(w.nbytes + (layer.scale.nbytes if layer.scale is not None else 0))})
        elif node.op in SPARSE_MATMULS:
            rows.append(_sparse_row(graph, node))
        elif node.op in ("conv", "conv_bsr"):
            from .prune_conv import conv_row

            row = conv_row(graph, node)
            if row is not None:
                rows.append(row)
    return rows


def _sparse_row(graph: Graph, node: Node) -> dict:
    arrays = [graph.constant_of(v) for v in node.inputs[1:]]
    values = arrays[0]
    name = node.inputs[1].producer.attrs["name"].rsplit(".values", 1)[0] if node.inputs[1].producer else node.label
    n_out, k_in = node.output.shape[-1], node.inputs[0].shape[-1]
    if node.op == "matmul_nm":
        fmt = f"{node.attrs['n']}:{node.attrs['m']}"
    elif node.op == "matmul_bsr":
        fmt = f"bsr {values.shape[1]}x{values.shape[2]}" if values is not None else "bsr"
    else:
        fmt = "csr"
    fmt += " i8" if values is not None and values.dtype == np.int8 else ""
    nonzero = np.count_nonzero(values) if values is not None else 0
    total = n_out * k_in if isinstance(n_out, int) and isinstance(k_in, int) else 0
    return {"name": node.loc or name, "shape": [n_out, k_in], "format": fmt,
            "sparsity": 1.0 - nonzero / total if total else 0.0,
            "bytes": int(sum(a.nbytes for a in arrays if a is not None))}


__all__ = ["Encoding", "LinearLayer", "SparsityWarning", "encode_bsr", "encode_nm",
           "layer_table", "linear_layers", "lower_layer", "replace_weight", "select_layers", "sparsity"]
