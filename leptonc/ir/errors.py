"""Errors a user can cause. Each names what was wrong and where."""
from __future__ import annotations

from contextlib import contextmanager


class LeptoncError(Exception):
    """Base of every error that is the user's to fix (bad model, bad input, bad option)."""


class IRError(LeptoncError):
    """A graph breaks a rule of the IR (found by the verifier or an editing helper)."""


class ParseError(LeptoncError):
    """IR text that does not parse; carries line and column."""

    def __init__(self, message: str, line: int, column: int):
        super().__init__(f"{line}:{column}: {message}")
        self.line = line
        self.column = column


class UnsupportedOpError(LeptoncError):
    """A frontend met an operator it cannot map."""


class ShapeError(LeptoncError):
    """Inputs whose shapes or dtypes do not fit an op or a graph signature."""


class MissingDependencyError(LeptoncError):
    """An optional package that a feature needs is not installed; the message names the extra that brings it."""


# optional packages by import name -> the leptonc extra that installs them
EXTRAS = {"onnx": "onnx", "torch": "torch", "jax": "xla", "jaxlib": "xla", "triton": "triton", "uvicorn": "serve",
          "starlette": "serve", "prometheus_client": "serve", "ray": "ray"}


@contextmanager
def optional_dependency(purpose: str):
    """Turn the ImportError of an optional package inside the block into a MissingDependencyError:
    `with optional_dependency("the stablehlo target"): import jax`. Other import errors pass through."""
    try:
        yield
    except ImportError as e:
        root = (e.name or "").split(".")[0]
        if root not in EXTRAS:
            raise
        raise MissingDependencyError(f"{purpose} needs the '{root}' package, which is not installed: "
                                     f"pip install 'leptonc[{EXTRAS[root]}]'") from None


class IndexRangeError(LeptoncError):
    """An index tensor held a position outside the dim it indexes (found when the model ran)."""

    def __init__(self, where: str, index: int, dim: int, size: int):
        super().__init__(f"{where}: index {index} is out of range for dim {dim} of size {size}")
        self.where, self.index, self.dim, self.size = where, index, dim, size
