"""The ONNX frontend: `import_onnx(path_or_proto_or_bytes) -> Graph`.

ONNX opset 13 and later is mapped natively; older models are converted to opset 13 with
onnx.version_converter first. SUPPORTED_OPS lists the op types the importer maps (domain-qualified
outside the default domain): those with a mapping in `handlers/`, and every op whose ONNX schema
defines a function body (expanded into that body).
"""
from .importer import import_onnx, supported_op_types
from . import quantization  # noqa: F401,E402  (ONNX quantization ops into the IR's; after the handlers)

SUPPORTED_OPS = supported_op_types()

__all__ = ["SUPPORTED_OPS", "import_onnx"]
