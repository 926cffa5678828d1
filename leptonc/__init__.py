"""leptonc: a model compiler. Import a PyTorch or ONNX model into a graph IR,
optimize it, and run it (see README.md and docs/design.md)."""
from .ir import DType, Graph, LeptoncError, TensorType, parse_ir, print_ir, verify
from .ir.errors import optional_dependency
from .runtime.reference import run_reference
from .api import compile, load, recover  # noqa: E402,A004  (leptonc.compile shadows the builtin on purpose)
from .bisect import bisect  # noqa: E402  (the function, not the module, is leptonc.bisect)

__version__ = "0.1.0"


def import_onnx(model, **options) -> Graph:
    """An ONNX model (path, bytes or onnx.ModelProto) as a Graph."""
    with optional_dependency("importing an ONNX model"):
        from .frontends.onnx import import_onnx as _import

        return _import(model, **options)


def import_torch(module, example_inputs, dynamic_shapes=None) -> Graph:
    """A torch.nn.Module, traced with torch.export on example_inputs, as a Graph."""
    with optional_dependency("importing a torch model"):
        from .frontends.torch import import_torch as _import

        return _import(module, example_inputs, dynamic_shapes=dynamic_shapes)


__all__ = ["DType", "Graph", "LeptoncError", "TensorType", "bisect", "compile", "import_onnx", "load", "import_torch",
           "parse_ir", "print_ir", "recover", "run_reference", "verify"]
