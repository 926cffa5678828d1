"""Checking run-time inputs against a graph signature and binding its symbolic dims."""
from __future__ import annotations

import numpy as np

from ..ir import dims as D
from ..ir.errors import ShapeError
from ..ir.types import TensorType


def bind_inputs(names: list[str], types: list[TensorType], arrays) -> tuple[list[np.ndarray], dict[str, int]]:
    """Check each array's dtype and shape against its declared type; return the arrays and symbol sizes."""
    if len(arrays) != len(types):
        sig = ", ".join(f"{n}: {t}" for n, t in zip(names, types))
        raise ShapeError(f"expected {len(types)} inputs ({sig}), got {len(arrays)}")
    out, bindings = [], {}
    for name, t, a in zip(names, types, arrays):
        a = np.asarray(a)
        if a.dtype != t.dtype.numpy:
            raise ShapeError(f"input '{name}' expects {t}, got a {a.dtype} array of shape {list(a.shape)}")
        if a.ndim != t.rank:
            raise ShapeError(f"input '{name}' expects {t} (rank {t.rank}), got shape {list(a.shape)}")
        for d, n in zip(t.shape, a.shape):
            if isinstance(d, str) and d != D.UNKNOWN and not D.symbols(d) - {d} and d not in bindings:
                bindings[d] = n
        out.append(np.asarray(a, order="C"))  # (ascontiguousarray would make a 0-d array 1-d)
    for name, t, a in zip(names, types, out):
        for i, (d, n) in enumerate(zip(t.shape, a.shape)):
            if d == D.UNKNOWN:
                continue
            try:
                want = D.evaluate(d, bindings)
            except KeyError as e:
                raise ShapeError(f"input '{name}' dim {i} is {d}, whose symbol {e} no input binds") from None
            if want != n:
                extra = f" ({d} = {want})" if isinstance(d, str) else ""
                raise ShapeError(f"input '{name}' expects {t}, got shape {list(a.shape)}: "
                                 f"dim {i} must be {want}{extra}")
    return out, bindings



def example_bindings(graph_inputs, example_inputs) -> dict[str, int] | None:
    """Symbol sizes of the example inputs (for reports), when there are examples."""
    if example_inputs is None:
        return None
    inputs = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    bindings: dict[str, int] = {}
    for v, a in zip(graph_inputs, inputs):
        shape = tuple(getattr(a, "shape", np.shape(a)))
        for d, n in zip(v.shape, shape):
            if isinstance(d, str) and d.isidentifier():
                bindings[d] = int(n)
    return bindings
