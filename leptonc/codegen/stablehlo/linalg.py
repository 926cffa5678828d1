"""Lowering of matmul to stablehlo.dot_general (numpy semantics: batch dims broadcast,
1-D operands promoted and squeezed)."""
from __future__ import annotations

from ...ir.dtypes import DType
from .builder import Builder, Val, dims_list
from .rules import lowers

# HIGHEST keeps f32 dots in f32 on every backend (a TPU's DEFAULT rounds operands to bf16)
PRECISION = "[#stablehlo<precision HIGHEST>, #stablehlo<precision HIGHEST>]"


def dot_general(b: Builder, lhs: Val, rhs: Val, batch: int, lhs_contract: int, rhs_contract: int, shape) -> Val:
    """dot_general with the first `batch` dims of both operands as batch dims."""
    fields = []
    if batch:
        fields += [f"lhs_batching_dimensions = {dims_list(range(batch))}",
                   f"rhs_batching_dimensions = {dims_list(range(batch))}"]
    fields += [f"lhs_contracting_dimensions = [{lhs_contract}]", f"rhs_contracting_dimensions = [{rhs_contract}]"]
    return b.op1("stablehlo.dot_general", [lhs, rhs], lhs.type.with_shape(shape),
                 {"dot_dimension_numbers": f"#stablehlo.dot<{', '.join(fields)}>", "precision_config": PRECISION})


def widen(b: Builder, v: Val) -> Val:
    """f16 and bf16 operands are multiplied and accumulated in f32, as the reference does."""
    return b.convert(v, DType.f32) if v.dtype in (DType.f16, DType.bf16) else v


@lowers("matmul")
def matmul(b: Builder, node, args, out, attrs):
    a, w = (widen(b, v) for v in args)
    if len(a.shape) == 1:
        a = b.reshape(a, (1,) + tuple(a.shape))
    if len(w.shape) == 1:
        w = b.reshape(w, tuple(w.shape) + (1,))
    if len(w.shape) == 2:  # no batch on the right: contract a's last dim with w's first, no broadcast
        y = dot_general(b, a, w, 0, len(a.shape) - 1, 0, tuple(a.shape[:-1]) + (w.shape[1],))
    else:
        nb = max(len(a.shape), len(w.shape)) - 2
        batch = tuple(max(x, y) for x, y in zip((1,) * (nb - len(a.shape) + 2) + tuple(a.shape[:-2]),
                                               (1,) * (nb - len(w.shape) + 2) + tuple(w.shape[:-2])))
        a = b.broadcast_to(a, batch + tuple(a.shape[-2:]))
        w = b.broadcast_to(w, batch + tuple(w.shape[-2:]))
        y = dot_general(b, a, w, nb, nb + 1, nb, batch + (a.shape[-2], w.shape[-1]))
    return b.reshape(b.convert(y, out[0].dtype), out[0].shape)
