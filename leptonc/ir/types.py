"""TensorType: a dtype and a shape whose dims may be symbolic."""
from __future__ import annotations

from dataclasses import dataclass

from . import dims as D
from .dtypes import DType


@dataclass(frozen=True)
class TensorType:
    dtype: DType
    shape: tuple  # of Dim

    def __post_init__(self):
        if not isinstance(self.dtype, DType):
            raise TypeError(f"dtype must be a DType, got {self.dtype!r}")
        object.__setattr__(self, "shape", tuple(D.canonical(d) for d in self.shape))

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) for d in self.shape)

    @property
    def numel(self):
        return D.product(self.shape)

    def with_shape(self, shape) -> "TensorType":
        return TensorType(self.dtype, tuple(shape))

    def with_dtype(self, dtype: DType) -> "TensorType":
        return TensorType(dtype, self.shape)

    def __str__(self) -> str:
        return f"{self.dtype.value}[{', '.join(str(d) for d in self.shape)}]"

    def concrete(self, bindings) -> tuple:
        return tuple(D.evaluate(d, bindings) for d in self.shape)
