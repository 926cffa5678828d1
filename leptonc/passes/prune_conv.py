"""Convolutions as prunable layers: the prune pass prunes a conv's weight [O, C / group, kernel...] viewed as
W [O, C / group * prod(kernel)] (one row per output channel, K ordered channel, kernel...), as it prunes
a linear layer's W [N, K], and runs it on the sparse convolution (conv_bsr).

    layers = conv_layers(graph)           # channels-first convs with a constant f32 weight, in graph order
    layer.unfold(x)                       # the rows [R, K] W multiplies, one matrix per group (im2col)
    apply_conv(graph, layer, w, block, kernels="auto", pass_name="prune")

What a calibrated method measures of a conv's input is its im2col rows: each output pixel's window of
the group's input channels, the row of x that W's rows are dotted with. A block row of W lies within one
group (the prune pass leaves a conv alone otherwise). The sparse kernel is chosen as for a linear layer,
by the cost model of a sparse matmul of W with one row per output pixel (sparse_cost.py).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..ir import sparse as S
from ..ir.dtypes import DType
from ..ir.graph import Graph, Node
from ..ir.ops.nn import _spatial, _windows
from .rewrite import replace_result
from .sparse_cost import SparseLayout, compare
from .sparse_layers import SparsityWarning

SPARSE_KERNEL_RANKS = (1, 2)  # spatial ranks the cpu target's conv_bsr runs


@dataclass
class ConvLayer:
    """A conv with a constant f32 weight, as the prune pass sees a layer (sparse_layers.LinearLayer's fields)."""

    node: Node
    name: str
    stored: np.ndarray          # W [O, C / group * prod(kernel)], f32
    scale = None                # (convs are pruned in f32 only)

    @property
    def effective(self) -> np.ndarray:
        return self.stored

    @property
    def group(self) -> int:
        return self.node.attrs["group"]

    @property
    def kernel(self) -> tuple:
        return tuple(self.node.inputs[1].shape[2:])

    @property
    def rows(self) -> int:
        """Output pixels of the layer (a symbolic dim counts as 1): the rows of its matmul form."""
        n = 1
        for d in (self.node.output.shape[0],) + tuple(self.node.output.shape[2:]):
            n *= d if isinstance(d, int) else 1
        return n

    def unfold(self, x: np.ndarray) -> list[np.ndarray]:
        """The windows of input x [N, C, spatial...] that W's rows multiply, per group: [N * pixels, K] each."""
        strides, pads, dilations = _spatial(len(self.kernel), self.node.attrs["strides"], self.node.attrs["pads"],
                                            self.node.attrs["dilations"])
        win = _windows(x, self.kernel, strides, pads, dilations)  # N, C, out..., k...
        nsp = len(self.kernel)
        win = np.moveaxis(win, 1, 1 + nsp)                          # N, out..., C, k...
        cg = x.shape[1] // self.group
        k = cg * int(np.prod(self.kernel))
        return [win[(slice(None),) * (1 + nsp) + (slice(g * cg, (g + 1) * cg),)].reshape(-1, k)
                for g in range(self.group)]


def conv_layers(graph: Graph) -> list[ConvLayer]:
    """The channels-first f32 convs of `graph` whose weight is a constant, in graph order."""
    out = []
    for node in graph.nodes:
        if node.op != "conv" or node.attrs["channels_last"] or node.inputs[0].dtype is not DType.f32:
            continue
        w = graph.constant_of(node.inputs[1])
        if w is not None and w.dtype == np.float32 and w.ndim >= 3:
            out.append(ConvLayer(node, node.inputs[1].producer.attrs["name"], w.reshape(w.shape[0], -1)))
    return out


def block_rows_fit(layer: ConvLayer, bh: int) -> bool:
    """Whether block rows of bh outputs stay within the conv's groups."""
    return (layer.stored.shape[0] // layer.group) % bh == 0


def apply_conv(graph: Graph, layer: ConvLayer, w: np.ndarray, block: tuple[int, int], kernels: str,
               pass_name: str, rows: int = 0) -> None:
    """Give the conv its pruned weight W [O, K]: on conv_bsr with `block` where `kernels` says so (sparse, or
    auto and predicted faster for `rows` output pixels, 0: the layer's own) and the cpu kernel runs its spatial
    rank; else as a dense weight holding the zeros (warning when auto chose it)."""
    node = layer.node
    values, cols, offsets = S.bsr_from_dense(w, block)
    if kernels != "dense" and len(layer.kernel) in SPARSE_KERNEL_RANKS:
        layout = SparseLayout("csr" if block == (1, 1) else "bsr", w.shape[0], w.shape[1], int(values.size),
                              tuple(block), 4, cols.itemsize)
        rows = rows or layer.rows
        faster, dense_s, sparse_s = compare(layout, rows)
        if kernels == "sparse" or faster:
            operands = [graph.add_constant(a, f"{layer.name}.{n}", before=node)
                        for a, n in zip((values, cols, offsets), ("values", "cols", "rows"))]
            y = graph.add("conv_bsr", node.inputs[0], *operands, *node.inputs[2:], name=node.output.name,
                          before=node, kernel=layer.kernel, strides=node.attrs["strides"], pads=node.attrs["pads"],
                          dilations=node.attrs["dilations"], group=layer.group)
            replace_result(graph, node.output, y)
            return
        warnings.warn(f"{pass_name}: conv {layer.name} keeps its dense kernel: {layout.describe()} is predicted "
                      f"{sparse_s * 1e6:.0f} us against {dense_s * 1e6:.0f} us dense for {rows} output pixels",
                      SparsityWarning, stacklevel=3)
    dense = w.reshape(graph.constant_of(node.inputs[1]).shape)
    graph.set_input(node, 1, graph.add_constant(np.ascontiguousarray(dense), layer.name, before=node))


def conv_row(graph: Graph, node: Node) -> dict | None:
    """The compile report's row of a channels-first conv with a constant weight (dense or conv_bsr): name, W's
    [O, K], kernel format, fraction of zeros in W, bytes of its weight; None for other convs."""
    arrays = [graph.constant_of(v) for v in node.inputs[1:4 if node.op == "conv_bsr" else 2]]
    if any(a is None for a in arrays) or node.attrs.get("channels_last"):
        return None
    values = arrays[0]
    o, k, fmt = node.output.shape[1], values[0].size, "dense f32"
    if node.op == "conv_bsr":
        k = node.inputs[0].shape[1] // node.attrs["group"] * int(np.prod(node.attrs["kernel"]))
        fmt = f"conv bsr {values.shape[1]}x{values.shape[2]}"
    name = node.inputs[1].producer.attrs["name"].rsplit(".values", 1)[0]
    return {"name": node.loc or name, "shape": [o, k], "format": fmt,
            "sparsity": 1.0 - np.count_nonzero(values) / (o * k), "bytes": int(sum(a.nbytes for a in arrays))}
