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
    if CONV_PACKED in name:
        base, layout = name.rsplit(CONV_PACKED, 1)
        return laid_out_conv_weight(graph.constants[base], layout)
    if name.endswith(PACKED):
        return pack_b(graph.constants[name[:-len(PACKED)]])
    if name.endswith(TRANSPOSED):
        return np.ascontiguousarray(graph.constants[name[:-len(TRANSPOSED)]].swapaxes(-1, -2))
    if LAYOUT_MARK in name:
        base, spec = name.split(LAYOUT_MARK, 1)
        return lay_out(spec, graph.constants[base])
    return np.ascontiguousarray(graph.constants[name])
