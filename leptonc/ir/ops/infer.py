"""Shared type-inference helpers for op definitions."""
from __future__ import annotations

from .. import dims as D
from ..dtypes import DType
from ..errors import ShapeError
from ..types import TensorType


def broadcast_shapes(*shapes) -> tuple:
    """numpy broadcasting over dims that may be symbols. A symbol meeting a fixed size other than 1 is
    refused (it would hold for one size of the symbol only); two different symbols give "?"."""
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(rank):
        dim = 1
        for s in shapes:
            d = s[i - rank + len(s)] if i - rank + len(s) >= 0 else 1
            if d == 1:
                continue
            if dim == 1:
                dim = d
            elif D.same(dim, d):
                continue
            elif isinstance(dim, int) and isinstance(d, int):
                raise ShapeError(f"shapes {' and '.join(str(list(x)) for x in shapes)} do not broadcast")
            elif D.UNKNOWN in (dim, d):
                dim = d if isinstance(d, int) else dim  # "?" meeting a size takes it (checked at run time)
            elif isinstance(dim, int) or isinstance(d, int):
                sym, size = (d, dim) if isinstance(dim, int) else (dim, d)
                raise ShapeError(f"shapes {' and '.join(str(list(x)) for x in shapes)} broadcast only if "
                                 f"{sym} is {size} or 1: {D.relation(sym, size)}")
            else:
                dim = D.UNKNOWN
        out.append(dim)
    return tuple(out)


PAD_MODES = ("constant", "reflect", "edge", "wrap")


def require_same(a, b, message: str) -> None:
    """Dims a and b must be equal: refused when they differ, saying what the equality would ask of the
    dynamic dims when a symbol is involved (see dims.compatible)."""
    if not D.compatible(a, b):
        raise ShapeError(message if isinstance(a, int) and isinstance(b, int) else f"{message}: {D.relation(a, b)}")


def same_dtype(*types: TensorType) -> DType:
    dts = {t.dtype for t in types}
    if len(dts) != 1:
        raise ShapeError(f"operand dtypes differ: {', '.join(str(t.dtype) for t in types)}")
    return types[0].dtype


def broadcast(*types: TensorType, **_) -> TensorType:
    return TensorType(same_dtype(*types), broadcast_shapes(*(t.shape for t in types)))


def compare(*types: TensorType, **_) -> TensorType:
    same_dtype(*types)
    return TensorType(DType.bool, broadcast_shapes(*(t.shape for t in types)))


def same_as_first(t: TensorType, *_, **__) -> TensorType:
    return t


def require(cond: bool, message: str) -> None:
    if not cond:
        raise ShapeError(message)


def require_float(t: TensorType, what: str = "operand") -> None:
    require(t.dtype.is_float, f"{what} must be a float type, got {t.dtype}")


def norm_axis(axis: int, rank: int, what: str = "axis") -> int:
    require(-rank <= axis < max(rank, 1), f"{what} {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


def norm_axes(axes, rank: int) -> tuple:
    out = tuple(norm_axis(a, rank) for a in axes)
    require(len(set(out)) == len(out), f"repeated axes {list(axes)}")
    return out
