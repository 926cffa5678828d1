"""A compiled model: its artifact, its weights and an executor for its library. Callable on numpy arrays."""
from __future__ import annotations

import json
import os
import threading

import numpy as np

from ..ir import dims as D
from . import safetensors
from .artifact import Artifact, ArtifactError, write_artifact
from .executor import Executor
from .files import copy_atomic
from .memory import plan_buffers


class ArtifactModel:
    """What a compiled model of any target offers: `y = cm(x)` (inputs by position or by name; one array,
    or a list when the model has several outputs), `cm.run(...)` (always a list), `cm.save(path)`, and
    its manifest, signature, source and IR text."""

    _file: "FileStamp | None" = None  # a file that holds exactly this artifact (saved or loaded)

    def __init__(self, artifact: Artifact):
        self.artifact = artifact
        self.manifest = artifact.manifest

    def run(self, *inputs) -> list[np.ndarray]:
        """The outputs as a list, whatever their number."""
        raise NotImplementedError

    def __call__(self, *inputs, **named):
        if named:
            names = [x["name"] for x in self.signature["inputs"]]
            unknown = sorted(set(named) - set(names))
            if unknown:
                raise ArtifactError(f"unknown input names {unknown}; the model takes {names}")
            values = list(inputs) + [None] * (len(names) - len(inputs))
            for k, a in named.items():
                values[names.index(k)] = a
            inputs = tuple(values)
        outs = self.run(*inputs)
        return outs[0] if len(outs) == 1 else outs

    def save(self, path: str | os.PathLike) -> None:
        """Write the artifact to `path` atomically: a copy of the file it came from, when that is unchanged, else
        written from memory. The saved file is always a file of its own (never a compile cache entry)."""
        path = os.path.abspath(path)
        if self._file is None or not self._file.holds(self.manifest):
            write_artifact(path, self.artifact)
        elif path != self._file.path:
            copy_atomic(self._file.path, path)
        self._file = FileStamp.of(path, self.manifest)

    def held_by(self, stamp: "FileStamp") -> None:
        """Record that the file of `stamp` holds exactly this artifact: a later save copies it."""
        self._file = stamp

    @property
    def signature(self) -> dict:
        return self.manifest["signature"]

    @property
    def source(self) -> str:
        return self.artifact.source

    @property
    def ir_text(self) -> str:
        return self.artifact.ir_text


class CompiledModel(ArtifactModel):
    """A model of the cpu target: its weights and an executor for its library."""

    def __init__(self, artifact: Artifact, library_path: str | os.PathLike):
        super().__init__(artifact)
        self.weights = artifact.weights if artifact.weights is not None else safetensors.loads(artifact.weights_blob)
        self.library_path = library_path
        self._executor: Executor | None = None
        self._executor_lock = threading.Lock()

    @property
    def kernel_names(self) -> list[str]:
        return [k["name"] for k in self.manifest["program"]["kernels"]]

    @property
    def executor(self) -> Executor:
        """The library loaded with its weights laid out: made on the first run (once, whatever the number of
        threads asking), so that a model loaded to be saved or inspected never copies its weights. The model's
        weights then become the executor's (i4 aside, which the executor packs), and a loaded file's bytes are
        let go: one copy of each weight in memory."""
        if self._executor is None:
            with self._executor_lock:
                if self._executor is None:
                    executor = Executor(self.manifest["program"], self.library_path, self.weights)
                    for name, w in executor.weights.items():
                        if w.dtype == self.weights[name].dtype:
                            self.weights[name] = w
                    self.artifact.weights, self.artifact.weights_blob = self.weights, b""
                    self._executor = executor
        return self._executor

    def run(self, *inputs) -> list[np.ndarray]:
        return self.executor.run(inputs)

    def profile(self, *inputs, repeat: int = 10) -> list[tuple[str, float]]:
        """(kernel, seconds per run), most expensive first."""
        return sorted(self.executor.profile(inputs, repeat), key=lambda kv: -kv[1])

    def memory_report(self, bindings: dict[str, int] | None = None) -> tuple[int, int]:
        """(arena bytes, sum of all intermediate sizes) at the given symbol sizes (default: the example's)."""
        program = self.manifest["program"]
        bindings = bindings or self.manifest.get("example_bindings") or {s: 1 for s in program["symbols"]}
        total = sum(D.evaluate(x["bytes"], bindings) for x in program["intermediates"])
        return self._arena_bytes(bindings), total

    def _arena_bytes(self, bindings: dict[str, int]) -> int:
        return plan_buffers(self.manifest["program"]["buffers"], bindings)[1]

    def __repr__(self) -> str:
        sig = self.signature
        ins = ", ".join(f"{x['name']}: {x['dtype']}{x['shape']}" for x in sig["inputs"])
        return f"<CompiledModel target={self.manifest['target']} ({ins}) kernels={len(self.kernel_names)}>"


class FileStamp:
    """A file as it was when it held an artifact: later saves copy it while it is unchanged (same inode, size,
    and modification and change times)."""

    def __init__(self, path: str, stat: os.stat_result, manifest_json: str):
        self.path, self.stat, self.manifest_json = path, stat, manifest_json

    @classmethod
    def of(cls, path, manifest: dict) -> "FileStamp":
        return cls(os.path.abspath(path), os.stat(path), json.dumps(manifest, sort_keys=True))

    def holds(self, manifest: dict) -> bool:
        try:
            now = os.stat(self.path)
        except OSError:
            return False
        return _identity(now) == _identity(self.stat) and json.dumps(manifest, sort_keys=True) == self.manifest_json


def _identity(st: os.stat_result) -> tuple:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns
