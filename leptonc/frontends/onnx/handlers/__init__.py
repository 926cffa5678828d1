"""The mappings of ONNX ops to IR ops, one module per family; importing this package registers them."""
from . import elementwise, nn, reduce, tensor  # noqa: F401
