"""Running a triton artifact: import its kernel module, then follow the launch plan on torch tensors.

On a machine with a CUDA GPU the tensors live on the GPU; without one,
TRITON_INTERPRET=1 runs the same kernels on CPU tensors through Triton's
interpreter (slow, for tests). The API stays numpy in, numpy out, like the
cpu target; `run_torch` takes and returns device tensors (no copies), for
benchmarks and for callers that already hold torch tensors.

On a GPU, launching a kernel from Python costs more than a small kernel
runs (tens of microseconds against a few), so a batch-1 model would wait on
its launches. The second run at a set of input sizes records the whole
plan as a CUDA graph (the first one compiles the kernels, which a capture
cannot), and later runs at those sizes copy their inputs into the graph's
own and replay it: one launch per run. `executor.cuda_graphs = False`
launches kernel by kernel instead.

Models may be called from any number of threads. Their launches go one
thread at a time (one lock for the process): Triton's interpreter changes
module state while it runs a kernel, and a CUDA graph capture must see no
other launch. On a GPU the lock is held only while the work is queued (the
kernels run one after another on the GPU's stream anyway), not while it
runs and its results are copied back.
"""
from __future__ import annotations

import importlib.util
import os
import threading
import time
import warnings

import numpy as np

from ..ir import dims as D
from ..ir.dtypes import DType
from ..ir.errors import IndexRangeError, LeptoncError, ShapeError
from ..ir.indices import NO_INDEX_ERROR
from ..ir.types import TensorType
from . import safetensors
from .artifact import Artifact, sha256
from .compiled import ArtifactModel, CompiledModel
from .files import cache_dir, write_atomic
from .signature import bind_inputs

TORCH_TYPES = {  # the torch dtype of each element type a triton program's buffers hold
    DType.f32: "float32", DType.f16: "float16", DType.bf16: "bfloat16", DType.f64: "float64",
    DType.i64: "int64", DType.i32: "int32", DType.i16: "int16", DType.i8: "int8", DType.u8: "uint8",
    DType.u16: "uint16", DType.u32: "uint32", DType.u64: "uint64", DType.bool: "bool",
}
MAX_CUDA_GRAPHS = 8  # input sizes whose CUDA graphs a model keeps at once
_LAUNCH_LOCK = threading.Lock()  # one thread at a time queues kernels (see the module's docstring)


def device() -> str:
    """'cuda' when a GPU runs the kernels, 'cpu' under TRITON_INTERPRET=1; otherwise an error saying so."""
    import torch

    if os.environ.get("TRITON_INTERPRET") == "1":
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    raise LeptoncError("the triton target runs on a CUDA GPU, and none is available; set TRITON_INTERPRET=1 "
                       "(before triton is imported) to run its kernels on the CPU through Triton's interpreter")


def load_module(source: str):
    """Import a generated kernel module (Triton reads kernel source from files, so it is written to the cache)."""
    digest = sha256(source.encode())[:32]
    path = cache_dir() / f"triton-{digest}.py"
    if not path.exists() or path.read_text() != source:
        write_atomic(path, source)
    spec = importlib.util.spec_from_file_location(f"leptonc_triton_{digest}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TritonExecutor:
    """Runs one launch plan (`meta`, see codegen/triton/program.py) with its kernel module and weights."""

    def __init__(self, meta: dict, source: str, weights: dict[str, np.ndarray], allow_tf32: bool = False):
        self.meta, self.source, self.host_weights, self.allow_tf32 = meta, source, weights, allow_tf32
        self.input_names = [x["name"] for x in meta["inputs"]]
        self.input_types = [_tensor_type(x) for x in meta["inputs"]]
        self.symbols = list(meta["symbols"])
        self.signed_dims = [tuple(x) for x in meta["signed_dims"]]
        self.kernel_names = [s["kernel"] for s in meta["steps"]]
        self.allocated_at = [[b for b, buf in enumerate(meta["buffers"]) if buf["first"] == i]
                             for i in range(len(meta["steps"]))]
        self._module = None
        self._load_lock = threading.Lock()
        self.cuda_graphs = True
        self._graphs: dict[tuple, CapturedRun | None] = {}  # input sizes -> their graph (None: run once)

    def load(self) -> None:
        """Import the kernel module and place the weights on the device, once (compiling and inspecting need
        no GPU; running does)."""
        if self._module is not None:
            return
        with self._load_lock:
            if self._module is not None:
                return
            import torch

            self.torch = torch
            self.device = device()
            module = load_module(self.source)
            module.DOT_PRECISION = "tf32" if self.allow_tf32 and self.device == "cuda" else "ieee"
            self.launchers = [getattr(module, "launch_" + name) for name in self.kernel_names]
            self.weights = {name: _torch_tensor(torch, self.host_weights[name]).to(self.device)
                            for name in self.meta["weights"]}
            self._module = module

    @property
    def module(self):
        """The imported kernel module (its DOT_PRECISION says how tl.dot multiplies fp32)."""
        self.load()
        return self._module

    def bind(self, inputs) -> tuple[list, dict[str, int]]:
        arrays, bindings = bind_inputs(self.input_names, self.input_types, inputs, self.signed_dims, self.symbols)
        return arrays, bindings

    def run(self, inputs) -> list[np.ndarray]:
        arrays, _ = self.bind(inputs)
        self.load()
        tensors = [_torch_tensor(self.torch, a).to(self.device) for a in arrays]
        return [_numpy(self.torch, t) for t in self.run_torch(tensors)]

    def run_torch(self, tensors) -> list:
        """Run on device tensors (contiguous, of the signature's dtypes); returns device tensors."""
        self.load()
        tensors = [t.contiguous() for t in tensors]
        with _LAUNCH_LOCK:
            return self._queue(tensors)

    def _queue(self, tensors) -> list:
        """Launch the plan, or replay (first recording) its CUDA graph at these sizes."""
        if self.device != "cuda" or not self.cuda_graphs:
            return self.launch(tensors)
        key = tuple((tuple(t.shape), t.dtype, t.device) for t in tensors)
        if key not in self._graphs:  # the first run at these sizes compiles the kernels
            self._graphs[key] = None
            return self.launch(tensors)
        if self._graphs[key] is None:
            captured = [k for k, g in self._graphs.items() if g is not None]
            if len(captured) >= MAX_CUDA_GRAPHS:  # each graph holds its own intermediates: drop the oldest
                self._graphs[captured[0]] = None
            try:
                self._graphs[key] = CapturedRun(self, tensors)
            except IndexRangeError:  # this run's indices, met by the launch before the recording
                raise
            except Exception as e:  # noqa: BLE001 (a launch the graph cannot record: launch kernel by kernel)
                warnings.warn(f"the triton target could not record its launches as a CUDA graph ({e}); "
                              "it launches kernel by kernel instead")
                self.cuda_graphs = False
                return self.launch(tensors)
        return self._graphs[key].replay(tensors)

    def launch(self, tensors, timings: np.ndarray | None = None, checks: IndexChecks | None = None) -> list:
        """Launch every kernel of the plan in turn (`timings`: add each kernel's seconds there). An index out of
        range raises IndexRangeError after the plan; a caller that passes its own `checks` (a CUDA graph's, or
        one that would rather wait for the GPU elsewhere) calls checks.raise_first() itself."""
        torch = self.torch
        bindings = self._bindings(tensors)
        sym = [bindings[s] for s in self.symbols]
        live: dict[int, object] = {}
        own = checks is None
        checks = checks or IndexChecks(self)
        checks.start(bindings)
        for i, (step, launch) in enumerate(zip(self.meta["steps"], self.launchers)):
            for b in self.allocated_at[i]:
                live[b] = self._empty(self.meta["buffers"][b], bindings)
            args = [checks.slot(a) if "index_error" in a else self._arg(a, tensors, live) for a in step["args"]]
            checks.launched(i, args)
            start = time.perf_counter() if timings is not None else 0.0
            launch(*args, *sym)
            if timings is not None:
                if self.device == "cuda":
                    torch.cuda.synchronize()
                timings[i] += time.perf_counter() - start
            for b in step["free"]:
                live.pop(b, None)
        if own:
            checks.raise_first()
        outs = []
        for o in self.meta["outputs"]:
            src = self._arg(o["source"], tensors, live)
            shape = tuple(D.evaluate(d, bindings) for d in o["shape"])
            t = src.reshape(shape)
            outs.append(t.clone() if "buffer" not in o["source"] else t)
        return outs

    def _bindings(self, tensors) -> dict[str, int]:
        if len(tensors) != len(self.input_types):
            raise ShapeError(f"expected {len(self.input_types)} inputs, got {len(tensors)}")
        bindings: dict[str, int] = {}
        for t, ty in zip(tensors, self.input_types):
            for d, n in zip(ty.shape, t.shape):
                if isinstance(d, str) and d.isidentifier():
                    bindings[d] = int(n)
        return bindings

    def _empty(self, buf: dict, bindings: dict[str, int]):
        shape = tuple(D.evaluate(d, bindings) for d in buf["shape"])
        return self.torch.empty(shape, dtype=getattr(self.torch, TORCH_TYPES[DType(buf["dtype"])]),
                                device=self.device)

    def _arg(self, ref: dict, tensors, live):
        if "input" in ref:
            return tensors[ref["input"]]
        if "weight" in ref:
            return self.weights[ref["weight"]]
        return live[ref["buffer"]]

    def profile(self, inputs, repeat: int = 10) -> list[tuple[str, float]]:
        """(kernel name, seconds per run) for every kernel, over `repeat` runs (synchronized on a GPU)."""
        arrays, _ = self.bind(inputs)
        self.load()
        tensors = [_torch_tensor(self.torch, a).to(self.device) for a in arrays]
        times = np.zeros(len(self.kernel_names))
        with _LAUNCH_LOCK:
            self.launch(tensors)
            for _ in range(repeat):
                self.launch(tensors, timings=times)
        return [(name, t / repeat) for name, t in zip(self.kernel_names, times)]

    def arena_bytes(self, bindings: dict[str, int]) -> int:
        """Peak bytes of intermediates alive at once, with each buffer freed after its last reader."""
        peak = 0
        bufs = self.meta["buffers"]
        for i in range(len(self.meta["steps"]) + 1):
            alive = sum(D.evaluate(D.mul(D.product(b["shape"]), b["itemsize"]), bindings)
                        for b in bufs if b["first"] <= i <= b["last"])
            peak = max(peak, alive)
        return peak


class CapturedRun:
    """The whole launch plan recorded as one CUDA graph at fixed input sizes, replayed on new input data."""

    def __init__(self, executor: TritonExecutor, tensors: list):
        torch = executor.torch
        self.inputs = [t.clone() for t in tensors]  # the graph reads its inputs from these
        side = torch.cuda.Stream()  # capture from a side stream, as CUDA graphs require
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            executor.launch(self.inputs)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        self.checks = IndexChecks(executor)
        with torch.cuda.graph(self.graph):
            self.outputs = executor.launch(self.inputs, checks=self.checks)

    def replay(self, tensors: list) -> list:
        for mine, t in zip(self.inputs, tensors):
            mine.copy_(t)
        self.graph.replay()
        self.checks.raise_first()
        return [o.clone() for o in self.outputs]  # the next replay overwrites the graph's own outputs


class IndexChecks:
    """The index errors of one run (ir/indices.py). Each kernel that reads positions from a tensor records the
    lowest position of an index out of range in its int64 slot of `record` (tl.atomic_min; INT64_MAX while
    none); the run keeps each such kernel's index tensor, so that after the run the first bad index is
    reported as the reference interpreter reports it."""

    NONE = NO_INDEX_ERROR

    def __init__(self, executor: TritonExecutor):
        self.checks = executor.meta.get("index_checks", [])
        self.at_step = {c["step"]: c for c in self.checks}
        self.record = executor.torch.full((len(self.checks),), self.NONE, dtype=executor.torch.int64,
                                          device=executor.device) if self.checks else None
        self.indices: dict[int, object] = {}

    def start(self, bindings: dict[str, int]) -> None:
        self.bindings = bindings
        if self.record is not None:
            self.record.fill_(self.NONE)  # (recorded into a CUDA graph: each replay starts clean)

    def slot(self, ref: dict):
        return self.record[ref["index_error"]:]

    def launched(self, step: int, args: list) -> None:
        check = self.at_step.get(step)
        if check is not None:
            self.indices[step] = args[check["arg"]]

    def raise_first(self) -> None:
        if not self.checks:
            return
        for check, pos in zip(self.checks, self.record.tolist()):
            if pos != self.NONE:
                dims = check["dims"]
                index = int(self.indices[check["step"]].reshape(-1)[pos])
                j = pos % len(dims)
                raise IndexRangeError(check["where"], index, dims[j], D.evaluate(check["sizes"][j], self.bindings))


class TritonModel(CompiledModel):
    """A compiled model of the triton target: callable on numpy arrays, `run_torch` on device tensors."""

    def __init__(self, artifact: Artifact, allow_tf32: bool = False):
        ArtifactModel.__init__(self, artifact)  # the weights go to the GPU, not to a cpu library
        self.weights = safetensors.loads(artifact.weights_blob)
        self._executor = TritonExecutor(self.manifest["program"], artifact.source, self.weights, allow_tf32)

    @property
    def kernel_names(self) -> list[str]:
        return self.executor.kernel_names

    def _arena_bytes(self, bindings: dict[str, int]) -> int:
        return self.executor.arena_bytes(bindings)

    def run_torch(self, *tensors) -> list:
        return self.executor.run_torch(list(tensors))

    def kernel_sources(self) -> dict[str, str]:
        """Each kernel's Triton source, by kernel name."""
        return kernel_sources(self.artifact.source)


def kernel_sources(source: str) -> dict[str, str]:
    """Each Triton function (header comment included) of a generated module, by the name of the first kernel
    that runs it (its header names the kernels that share it)."""
    out: dict[str, str] = {}
    for chunk in source.split("\n\n\n"):
        lines = chunk.strip("\n").splitlines()
        if lines and lines[0].startswith("# k") and ": " in lines[0]:
            out[lines[0][2:].split(":")[0]] = "\n".join(lines)
    return out


def _tensor_type(entry: dict) -> TensorType:
    return TensorType(DType(entry["dtype"]), tuple(entry["shape"]))


def _torch_tensor(torch, array: np.ndarray):
    """An array (weight or input) as a torch tensor; bf16 (which torch.from_numpy cannot read) through its
    16-bit pattern."""
    arr = np.array(array, order="C")
    if arr.dtype.name == "bfloat16":
        return torch.from_numpy(arr.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(arr)


def _numpy(torch, tensor) -> np.ndarray:
    """A result as a numpy array; bf16 (which .numpy() cannot write) through its 16-bit pattern."""
    t = tensor.cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(DType.bf16.numpy)
    return t.numpy()
