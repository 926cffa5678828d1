"""The Python API: compile a model to a callable compiled model, and load a saved one.

    cm = leptonc.compile(model, example_inputs, target="cpu", passes=None)
    y = cm(x); cm.save("m.lep"); y2 = leptonc.load("m.lep")(x)

`model` is a torch.nn.Module (traced with torch.export on example_inputs), an
ONNX model (path, bytes or onnx.ModelProto) or a Graph. The pipeline that runs
is the default cleanup pipeline, then `passes`, then the target's lowering.
"""
from __future__ import annotations

import math
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .ir.errors import LeptoncError, optional_dependency
from .ir.graph import Graph
from .ir.printer import print_ir
from .runtime.accuracy import accuracy_samples, record_accuracy, start_reference
from .loader import load
from .recover import Recovered, recover
from .runtime.compiled import CompiledModel
from .runtime.signature import example_bindings

TARGETS = ("cpu", "triton", "stablehlo")
CLEANUP_PIPELINE = "default"


def check_target(target: str) -> str:
    """`target` if it is a code generation target, else a LeptoncError that lists them and names the GPU one."""
    if target not in TARGETS:
        raise LeptoncError(f"unknown target {target!r} ({', '.join(TARGETS)}; a CUDA GPU is --target triton)")
    return target


class Progress:
    """Stage lines on stderr for compiles that run longer than a second (quiet turns them off)."""

    def __init__(self, quiet: bool = False, delay: float = 1.0):
        self.quiet, self.delay = quiet, delay
        self.start = time.perf_counter()
        self.shown = False
        self._timer: threading.Timer | None = None
        self._counted = -math.inf

    def stage(self, text: str) -> None:
        self._cancel()
        if self.quiet:
            return
        elapsed = time.perf_counter() - self.start
        if elapsed >= self.delay:
            self._show(text)
        else:
            self._timer = threading.Timer(self.delay - elapsed, self._show, args=(text,))
            self._timer.daemon = True
            self._timer.start()

    def _show(self, text: str) -> None:
        self.shown = True
        print(f"leptonc: [{time.perf_counter() - self.start:6.1f}s] {text}", file=sys.stderr, flush=True)

    def count(self, text: str, done: int, total: int) -> None:
        """A stage with a count ("text: done/total"), shown at most once a second."""
        now = time.perf_counter()
        if done in (0, total) or now - self._counted >= 1.0:
            self._counted = now
            self.stage(f"{text}: {done}/{total}")

    def done(self, text: str) -> None:
        self._cancel()
        if self.shown and not self.quiet:
            self._show(text)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def import_graph(model, example_inputs=None, dynamic_shapes=None) -> Graph:
    """A Graph from a torch.nn.Module, an ONNX model (path, bytes or ModelProto), or a Graph."""
    if isinstance(model, Graph):
        return model
    if isinstance(model, (str, os.PathLike, bytes)) or type(model).__name__ == "ModelProto":
        with optional_dependency("importing an ONNX model"):
            from .frontends.onnx import import_onnx

            if dynamic_shapes is None:
                return import_onnx(model)
            return import_onnx(model, input_shapes=_onnx_input_shapes(model, dynamic_shapes))
    if type(model).__module__.startswith("torch") or hasattr(model, "state_dict"):
        if example_inputs is None:
            raise LeptoncError("compiling a torch module needs example_inputs (a tuple of tensors)")
        with optional_dependency("importing a torch model"):
            from .frontends.torch import import_torch

            inputs = example_inputs if isinstance(example_inputs, tuple) else tuple(example_inputs) \
                if isinstance(example_inputs, list) else (example_inputs,)
            return import_torch(model, inputs, dynamic_shapes=dynamic_shapes)
    raise LeptoncError(f"cannot compile a {type(model).__name__}: give a torch.nn.Module, an ONNX model "
                       "(path, bytes or ModelProto) or a leptonc Graph")


def _onnx_input_shapes(model, dynamic_shapes) -> dict[str, list]:
    """ONNX input shapes with symbolic dims: `dynamic_shapes` names the leading dims of every input
    (["batch", "seq"]), or maps input names to whole shapes ({"x": ["B", 3, 224, 224]})."""
    if isinstance(dynamic_shapes, dict):
        return {name: list(shape) for name, shape in dynamic_shapes.items()}
    from .frontends.onnx.importer import load_model

    names = list(dynamic_shapes)
    proto, _ = load_model(model)
    init = {t.name for t in proto.graph.initializer}
    shapes = {}
    for inp in proto.graph.input:
        if inp.name not in init:
            dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
            shapes[inp.name] = [names[i] if i < len(names) else d for i, d in enumerate(dims)]
    return shapes


def compile(model, example_inputs=None, target: str = "cpu", passes: str | None = None, *,
            dynamic_shapes=None, quiet: bool = False, cache: bool = True, calibration=None, accuracy=True):
    """Compile `model` for `target`; returns a callable compiled model (numpy in, numpy out).

    `calibration` gives the passes that need real activations their samples: an iterable of input tuples
    (numpy arrays) or the path of an .npz, one key per input (passes/calibration.py).

    When `passes` hold a lossy pass, the compile measures its error against the fp32 graph (compiled too, in
    parallel) on random inputs (runtime/accuracy.py): `accuracy` is their number (True: 64 for a model with a
    classification or LM head, else 8), or False (0) to skip that check.

    With `cache`, compiling the same ONNX file (or bytes) with the same options again for the cpu target
    loads the artifact of the first compile (leptonc/cache.py); the C build cache serves every model."""
    check_target(target)
    from . import cache as compile_cache
    from .passes import run_pipeline
    from .passes.calibration import calibrating, load_calibration
    from .passes.sparse_layers import layer_table
    from .passes.tolerance import tolerance_of

    progress = Progress(quiet)
    accuracy_samples(accuracy)  # (a bad value fails before the model is imported)
    if calibration is not None and not isinstance(calibration, (str, os.PathLike)):
        calibration = list(calibration)  # (an iterator is read once, for the key and for the passes)

    def cache_key() -> str | None:
        return compile_cache.artifact_key(model, target=target, passes=passes, dynamic_shapes=dynamic_shapes,
                                          example_inputs=example_inputs, calibration=calibration,
                                          accuracy=accuracy) \
            if cache and target == "cpu" else None

    key = cache_key()
    cm = compile_cache.load_entry(key) if key else None
    if cm is not None:
        progress.done(f"compiled: {len(cm.kernel_names)} kernels (from the compile cache)")
        return cm
    progress.stage("importing the model")
    graph = import_graph(model, example_inputs, dynamic_shapes)
    samples = load_calibration(calibration, graph) if calibration is not None else None
    progress.stage("running passes")
    pipeline = [CLEANUP_PIPELINE] + ([passes] if passes else [])
    fp32_graph = graph = run_pipeline(graph, CLEANUP_PIPELINE)
    tolerance = tolerance_of(passes) if passes else None
    fp32 = start_reference(fp32_graph, tolerance, accuracy, example_inputs, _fp32_build(cache, example_inputs))
    if passes:
        with calibrating(samples):
            graph = run_pipeline(graph, passes)
    from .specialize import needs_specializing, specializing_model

    if needs_specializing(graph, target):  # dynamic ops: a program per value of their shape operands
        from . import __version__

        progress.stage("specializing on the shape operands of the example inputs")
        cm = specializing_model(graph, target, pipeline, example_inputs, cache=cache, leptonc_version=__version__)
        done = f"compiled: specialized on {', '.join(cm.manifest['specialized_on']) or 'the sizes'} per call"
    elif target == "stablehlo":
        from . import __version__
        from .codegen.stablehlo import compile_stablehlo

        progress.stage("emitting StableHLO")
        manifest = {"leptonc_version": __version__, "pipeline": ",".join(pipeline)}
        with optional_dependency("the stablehlo target"):
            cm = compile_stablehlo(graph, manifest, example_bindings(graph.inputs, example_inputs))
        done = "compiled"
    elif target == "triton":
        from .codegen.triton import compile_triton

        with optional_dependency("the triton target"):
            cm = compile_triton(graph, pipeline, progress, example_inputs=example_inputs)
        done = f"compiled: {len(cm.kernel_names)} Triton kernels"
    else:
        cm = compile_cpu(graph, pipeline, progress, cache=cache, example_inputs=example_inputs)
        done = f"compiled: {len(cm.kernel_names)} kernels"
    if fp32 is not None:
        record_accuracy(cm, fp32, tolerance, passes, layer_table(graph), progress,
                        samples.layer_error_rows() if samples else None)
    if key and cache_key() == key:  # (a model file written while it compiled: the result is not the key's)
        progress.stage("storing the artifact in the compile cache")
        compile_cache.store(key, cm)
    progress.done(done)
    return cm


def compile_cpu(graph: Graph, pipeline: list[str], progress: Progress, *, cache: bool = True,
                example_inputs=None, shared_weights=None) -> CompiledModel:
    """The cpu target's lowering of an optimized graph: fusion, C generation, build, artifact.
    `shared_weights(graph, name)`, when given, gives the placed layout of a weight that other programs
    may read too (specialize.SharedWeights), or None for one this program lays out itself."""
    from .codegen.cpu import TARGET_PIPELINE
    from .codegen.cpu.build import build_library, compiler_version, cpu_features, find_compiler
    from .codegen.cpu.program import generate
    from .passes import run_pipeline
    from .runtime.artifact import Artifact, program_manifest
    from .runtime.memory import HugePageArena

    graph = run_pipeline(graph, TARGET_PIPELINE)
    progress.stage("generating C")
    program = generate(graph)
    progress.stage(f"building {len(program.meta['kernels'])} kernels with the C compiler")
    # the C compiler runs while the weights are laid out as the kernels read them and placed on huge pages
    # (where the executor reads them in place), on every core: most of that time is the first touch of new
    # memory, which the cores take in parallel. Each laid-out copy is dropped once placed.
    arena = HugePageArena(4 * sum(a.nbytes for a in graph.constants.values()) + (64 << 20))
    with ThreadPoolExecutor(max_workers=1 + (os.cpu_count() or 1)) as pool:
        build = pool.submit(build_library, program.source, use_cache=cache, drivers=program.drivers)
        layouts = {name: pool.submit(_placed_layout, graph, name, arena, shared_weights)
                   for name in program.meta["weights"]}
        weights = {name: layout.result() for name, layout in layouts.items()}
        library, _ = build.result()
    manifest = program_manifest("cpu", compiler_version(find_compiler()), ",".join(pipeline + [TARGET_PIPELINE]),
                                program.meta, program.plan.report(), example_bindings(graph.inputs, example_inputs))
    manifest["cpu_features"] = list(cpu_features())
    art = Artifact(manifest, print_ir(graph), b"", program.source, library.read_bytes(), weights=weights)
    return CompiledModel(art, library)


def _fp32_build(cache: bool, example_inputs):
    """What builds the fp32 reference of the accuracy check: the cpu target (None without a C compiler)."""
    from .codegen.cpu.build import find_compiler

    if find_compiler() is None:
        return None

    def build(graph: Graph):
        from .specialize import needs_specializing, specializing_model

        if needs_specializing(graph, "cpu"):
            return specializing_model(graph, "cpu", [CLEANUP_PIPELINE], example_inputs, cache=cache)
        return compile_cpu(graph, [CLEANUP_PIPELINE], Progress(quiet=True), cache=cache,
                           example_inputs=example_inputs)
    return build


def _placed_layout(graph: Graph, name: str, arena, shared_weights=None) -> np.ndarray:
    """A weight laid out and placed in the arena (i4 stays where it is: the executor packs it)."""
    from .codegen.cpu.layout import laid_out_weight
    from .ir.packing import is_i4

    shared = shared_weights(graph, name) if shared_weights is not None else None
    if shared is not None:
        return shared
    w = laid_out_weight(graph, name)
    return w if is_i4(w) else arena.place(w)


__all__ = ["compile", "load", "recover", "Recovered", "import_graph", "Progress"]
