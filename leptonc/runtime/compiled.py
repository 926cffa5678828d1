"""A compiled model: its artifact, its weights and an executor for its library. Callable on numpy arrays."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..ir import dims as D
from . import safetensors
from .artifact import Artifact, ArtifactError, read_artifact, sha256, write_artifact
from .executor import Executor


class CompiledModel:
    """`y = cm(x)`: numpy in, numpy out (one array, or a list when the model has several outputs)."""

    def __init__(self, artifact: Artifact, library_path: str | os.PathLike):
        self.artifact = artifact
        self.manifest = artifact.manifest
        self.weights = artifact.weights if artifact.weights is not None else safetensors.loads(artifact.weights_blob)
        self.executor = Executor(self.manifest["program"], library_path, self.weights)

    def __call__(self, *inputs, **named):
        if named:
            names = self.executor.input_names
            unknown = sorted(set(named) - set(names))
            if unknown:
                raise ArtifactError(f"unknown input names {unknown}; the model takes {names}")
            values = list(inputs) + [None] * (len(names) - len(inputs))
            for k, a in named.items():
                values[names.index(k)] = a
            inputs = tuple(values)
        outs = self.executor.run(inputs)
        return outs[0] if len(outs) == 1 else outs

    def run(self, *inputs) -> list[np.ndarray]:
        """The outputs as a list, whatever their number."""
        return self.executor.run(inputs)

    def save(self, path: str | os.PathLike) -> None:
        write_artifact(path, self.artifact)

    @property
    def signature(self) -> dict:
        return self.manifest["signature"]

    @property
    def source(self) -> str:
        return self.artifact.source

    @property
    def ir_text(self) -> str:
        return self.artifact.ir_text

    def profile(self, *inputs, repeat: int = 10) -> list[tuple[str, float]]:
        """(kernel, seconds per run), most expensive first."""
        return sorted(self.executor.profile(inputs, repeat), key=lambda kv: -kv[1])

    def memory_report(self, bindings: dict[str, int] | None = None) -> tuple[int, int]:
        """(arena bytes, sum of all intermediate sizes) at the given symbol sizes (default: the example's)."""
        bindings = bindings or self.manifest.get("example_bindings") or {s: 1 for s in self.executor.symbols}
        total = sum(D.evaluate(x["bytes"], bindings) for x in self.manifest["program"]["intermediates"])
        return self.executor.arena_bytes(bindings), total

    def __repr__(self) -> str:
        sig = self.signature
        ins = ", ".join(f"{x['name']}: {x['dtype']}{x['shape']}" for x in sig["inputs"])
        return f"<CompiledModel target={self.manifest['target']} ({ins}) kernels={len(self.executor.kernel_names)}>"


def load(path: str | os.PathLike):
    """Load an artifact written by `save` (or `leptonc compile`), verifying it first."""
    art = read_artifact(path)
    if art.manifest.get("target") == "stablehlo":
        from .xla import XlaCompiledModel

        return XlaCompiledModel(art)
    if art.manifest.get("target") == "triton":
        from ..codegen.triton.runtime import TritonModel

        return TritonModel(art)
    return CompiledModel(art, library_for(art))


def library_for(art: Artifact) -> Path:
    """A path to a library this CPU can run: the shipped one, or one rebuilt from the shipped source."""
    from ..codegen.cpu.build import cache_dir, cpu_features, find_compiler, build_library

    missing = sorted(set(art.manifest.get("cpu_features", ())) - set(cpu_features()))
    if missing:
        if find_compiler() is None:
            raise ArtifactError(f"this CPU lacks {', '.join(missing)}, which the artifact's library needs, and "
                                "no C compiler is available to rebuild it from the shipped source")
        return build_library(art.source)[0]
    digest = sha256(art.library)
    path = cache_dir() / f"lib-{digest[:32]}.so"
    if not path.exists() or sha256(path.read_bytes()) != digest:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(art.library)
        os.replace(tmp, path)
    return path
