"""Lowering of dropout: the identity at inference. Training-mode dropout draws numpy's random
numbers in the reference, which no XLA module can reproduce, so it is refused by name."""
from __future__ import annotations

import numpy as np

from ...ir.dtypes import DType
from ...ir.errors import LeptoncError
from .builder import Builder
from .rules import lowers


@lowers("dropout")
def dropout(b: Builder, node, args, out, attrs):
    x, ratio, training = args
    inference = (training.known is not None and not np.asarray(training.known).any()) or \
        (ratio.known is not None and not np.asarray(ratio.known).any())
    if not inference:
        raise LeptoncError(f"stablehlo: {node.label} may run in training mode (its training flag or ratio is "
                           "not a constant false / 0); the stablehlo target compiles inference graphs")
    return [x, b.full(True, x.type.with_dtype(DType.bool))]
