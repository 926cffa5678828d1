"""PyTorch frontend: torch.export a module, decompose it to the core ATen op set, map each ATen op to IR ops.

    g = import_torch(module, (x,), dynamic_shapes={"x": {0: torch.export.Dim("batch")}})

Parameters and buffers become named constants under their state-dict names
(`fc1.weight`). Dynamic sizes become dim symbols named after the user's
torch.export.Dim objects ("batch", "seq"); sizes derived from them become
expressions ("batch*seq"). Composite ATen ops (softmax, layer norm, gelu,
batch norm, attention...) are decomposed into the IR's primitive ops.
An ATen op without a mapping raises UnsupportedOpError listing SUPPORTED_OPS.

Modules: importer (the export and the walk over its FX graph), registry (the
table of mappings), and the mappings by family: elementwise, reductions
(with softmax and normalizations), nn (matmul, conv, pooling, attention,
resize), layout (shapes, data movement, assignment, creating tensors).
"""
from . import elementwise, layout, nn, reductions  # noqa: F401  (each registers its mappings)
from .importer import import_torch
from .registry import supported_ops

SUPPORTED_OPS: tuple = supported_ops()

__all__ = ["SUPPORTED_OPS", "import_torch"]
