"""The graph IR: types, Value/Node/Graph, the op registry, text form and verifier."""
from .dtypes import DType
from .errors import IRError, LeptoncError, ParseError, ShapeError, UnsupportedOpError
from .graph import Graph, Node, Value
from .parser import parse_ir
from .printer import print_ir
from .registry import all_ops, define_op, get_op
from .types import TensorType
from .verifier import VerifyError, verify

__all__ = ["DType", "Graph", "IRError", "LeptoncError", "Node", "ParseError", "ShapeError", "TensorType",
           "UnsupportedOpError", "Value", "VerifyError", "all_ops", "define_op", "get_op", "parse_ir",
           "print_ir", "verify"]
