"""Frontends: PyTorch (torch.export) and ONNX models into the graph IR."""
from __future__ import annotations

import importlib.util
import os

from ..ir.errors import LeptoncError
from ..ir.graph import Graph


def load_python_model(spec: str):
    """'path/to/file.py:build' -> what build() returns: (torch.nn.Module, example_inputs[, dynamic_shapes])."""
    path, _, func = spec.rpartition(":")
    if not path or not func:
        raise LeptoncError(f"model spec {spec!r}: expected FILE.py:FUNCTION")
    if not os.path.isfile(path):
        raise LeptoncError(f"model file {path!r} does not exist")
    mod_spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    if not hasattr(module, func):
        raise LeptoncError(f"{path} has no function {func!r}")
    return getattr(module, func)()


def import_model(spec: str) -> Graph:
    """Import what the command line names: an .onnx file, or FILE.py:FUNCTION building a torch model."""
    if spec.endswith(".onnx") or (":" not in spec and os.path.isfile(spec)):
        from .onnx import import_onnx

        return import_onnx(spec)
    built = load_python_model(spec)
    if not isinstance(built, tuple) or len(built) not in (2, 3):
        raise LeptoncError(f"{spec} must return (module, example_inputs) or (module, example_inputs, dynamic_shapes)")
    from .torch import import_torch

    return import_torch(*built)
