"""matmul (numpy semantics: batch dims broadcast, 1-D operands promoted and squeezed)."""
from __future__ import annotations

import numpy as np

from .. import dims as D
from ..registry import PURE, define_op
from ..types import TensorType
from .infer import broadcast_shapes, require, same_dtype


def _matmul_infer(a: TensorType, b: TensorType) -> TensorType:
    dtype = same_dtype(a, b)
    require(a.rank >= 1 and b.rank >= 1, "matmul operands must have rank >= 1")
    sa = a.shape if a.rank > 1 else (1,) + a.shape
    sb = b.shape if b.rank > 1 else b.shape + (1,)
    require(D.compatible(sa[-1], sb[-2]),
            f"matmul contraction dims differ: {list(a.shape)} @ {list(b.shape)}")
    batch = broadcast_shapes(sa[:-2], sb[:-2])
    out = batch + ((sa[-2],) if a.rank > 1 else ()) + ((sb[-1],) if b.rank > 1 else ())
    return TensorType(dtype, out)


@define_op("matmul", arity=2, infer=_matmul_infer, traits=PURE | {"structured"})
def matmul(a, b):
    """a @ b; integer operands accumulate in their own type (as numpy does)."""
    if a.dtype.kind == "f" and a.dtype.itemsize < 4 or a.dtype.name == "bfloat16":
        return np.matmul(a.astype(np.float32), b.astype(np.float32)).astype(a.dtype)
    return np.matmul(a, b)
