"""The mappings of ONNX ops to IR ops, one module per family; importing this package registers them."""
from . import control, elementwise, image, nn, reduce, rnn, tensor  # noqa: F401
