"""Errors a user can cause. Each names what was wrong and where."""


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
