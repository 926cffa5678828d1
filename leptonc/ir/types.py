"""TensorType: a dtype and a shape whose dims may be symbolic."""
from __future__ import annotations

from dataclasses import dataclass

from . import dims as D
from .dtypes import DType
from .errors import ShapeError

MAX_ELEMENTS = 2 ** 62  # a tensor with more elements than this, or more bytes than MAX_BYTES, is refused
MAX_BYTES = 2 ** 48


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

    def check(self, what: str) -> None:
        """Raise ShapeError naming `what` when a dim is negative (for any size of its symbols) or the shape
        holds more than MAX_ELEMENTS elements or MAX_BYTES bytes with every symbol 1."""
        for i, d in enumerate(self.shape):
            if D.provably_negative(d):
                raise ShapeError(f"{what} {self}: dim {i} ({d}) is negative")
        static = 1  # the element count when every symbol is 1
        for d in self.shape:
            static *= d if isinstance(d, int) else 1 if d == D.UNKNOWN else \
                max(D.evaluate(d, dict.fromkeys(D.symbols(d), 1)), 1)
        if static > MAX_ELEMENTS or static * self.dtype.itemsize > MAX_BYTES:
            raise ShapeError(f"{what} {self}: too large ({static} elements; a tensor holds at most "
                             f"{MAX_ELEMENTS} elements and {MAX_BYTES} bytes)")

    def with_shape(self, shape) -> "TensorType":
        return TensorType(self.dtype, tuple(shape))

    def with_dtype(self, dtype: DType) -> "TensorType":
        return TensorType(dtype, self.shape)

    def __str__(self) -> str:
        return f"{self.dtype.value}[{', '.join(str(d) for d in self.shape)}]"

    def concrete(self, bindings) -> tuple:
        return tuple(D.evaluate(d, bindings) for d in self.shape)
