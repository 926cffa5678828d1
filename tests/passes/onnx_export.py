"""Zoo models through torch.onnx.export's TorchScript exporter, which writes shape arithmetic out as
Shape/Gather/Unsqueeze/Concat nodes (the dynamo exporter folds most of it away before leptonc sees it)."""
from __future__ import annotations

import inspect
import warnings

import torch

from tests.model_zoo import build


class Tokens(torch.nn.Module):
    """A Hugging Face model called with keyword tensors (token ids, mask, pixels), returning its last hidden state."""

    def __init__(self, model: torch.nn.Module, names: list[str]):
        super().__init__()
        self.model = model
        self.names = names

    def forward(self, *tensors):
        return self.model(**dict(zip(self.names, tensors))).last_hidden_state


def export_onnx(name: str, path: str, dynamic: bool = False, exporter_folding: bool = True) -> None:
    """Export zoo model `name` to `path`; with dynamic, batch (and sequence) sizes are the symbols B (and S);
    without exporter_folding, torch does not fold constants (batchnorm stays BatchNormalization)."""
    module, inputs = build(name)
    names = ["x"]
    if type(module).__module__.startswith("transformers"):  # inputs passed by keyword, in forward's order
        names = list(inspect.signature(module.forward).parameters)[:len(inputs)]
        module = Tokens(module, names)
    axes = None
    if dynamic:
        axes = {n: ({0: "B", 1: "S"} if n in ("input_ids", "attention_mask") else {0: "B"}) for n in names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, inputs, path, dynamo=False, opset_version=17, input_names=names,
                          dynamic_axes=axes, do_constant_folding=exporter_folding)
