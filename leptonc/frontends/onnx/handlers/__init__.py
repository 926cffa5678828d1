"""The mappings of ONNX ops to IR ops, one module per family; importing this package registers them."""
from . import control, elementwise, image, ml, nn, reduce, rnn, signal, tensor  # noqa: F401
