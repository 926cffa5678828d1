"""Weights as the generated cpu code reads them: the layout each weight's name asks for."""
from __future__ import annotations

import numpy as np

from ...ir.graph import Graph
from .conv import CONV_PACKED, laid_out_conv_weight
from .matmul import PACKED, TRANSPOSED, pack_b
from .quantized import LAYOUT_MARK, lay_out


def laid_out_weight(graph: Graph, name: str) -> np.ndarray:
    """A weight as the generated code reads it: contiguous, stored transposed (matmul.TRANSPOSED), packed
    into GEMM panels (matmul.PACKED; conv.CONV_PACKED and its layout for a conv's weight) or in the
    layout of a quantized kernel (quantized.LAYOUT_MARK)."""
    source = graph.constants[source_constant(name)]
    if CONV_PACKED in name:
        return laid_out_conv_weight(source, name.rsplit(CONV_PACKED, 1)[1])
    if name.endswith(PACKED):
        return pack_b(source)
    if name.endswith(TRANSPOSED):
        return np.ascontiguousarray(source.swapaxes(-1, -2))
    if LAYOUT_MARK in name:
        return lay_out(name.split(LAYOUT_MARK, 1)[1], source)
    return np.ascontiguousarray(source)


def source_constant(name: str) -> str:
    """The graph constant that weight `name` lays out (its layout a function of that constant alone)."""
    if CONV_PACKED in name:
        return name.rsplit(CONV_PACKED, 1)[0]
    for mark in (PACKED, TRANSPOSED):
        if name.endswith(mark):
            return name[:-len(mark)]
    return name.split(LAYOUT_MARK, 1)[0]
