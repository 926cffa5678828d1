"""An artifact's program derived again from its IR: what `load` runs (loader.py), instead of what the manifest
says.

The program of the cpu and triton targets (kernels, buffers and their sizes, weights, input and output
signature) and its source are a deterministic function of the optimized IR that the artifact stores (the
graph after the target's pipeline); so is the stablehlo target's module. `derive` runs the code generator
on the IR again and returns the artifact with those fields and the source replaced by what it derived, after
checking that the weights are exactly what the derived program reads (name, dtype, shape). A manifest that
lies about sizes, or a source that is not the compiler's, therefore changes nothing that runs. This costs a
small part of a load: for BERT-base, 0.16 s (parsing the IR 0.10 s, generating C 0.04 s) against 0.9 s to
read and hash its 436 MB.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from ..ir.dtypes import DType
from ..ir.errors import LeptoncError
from ..ir.graph import Graph
from ..ir.parser import parse_ir
from ..runtime import safetensors
from ..runtime.artifact import Artifact, ArtifactError

# a constant printed by name only (print_ir writes small ones inline): its name and type
_NAMED_CONST = re.compile(r"^ *%[A-Za-z0-9_.]+ = const @([A-Za-z0-9_.]+) : ([a-z0-9]+)\[([0-9, ]*)\]$", re.M)
LAYOUT = "^"  # a weight stored in a kernel's layout is named <constant>^<layout> (not a valid IR name)


@dataclass
class Derived:
    artifact: Artifact        # the artifact with its program, signature, source and weights as derived
    drivers: tuple = ()       # drivers the cpu source holds that the build may link from their objects
    as_shipped: bool = False  # whether the shipped source and program are exactly the derived ones


def derive(art: Artifact, where: str) -> Derived:
    """`art` with what its IR determines derived again (see the module docstring); ArtifactError when the IR,
    the weights or the stated sizes are not those of a program leptonc compiles."""
    try:
        weights = art.weights if art.weights is not None else safetensors.loads(art.weights_blob)
    except LeptoncError as e:
        raise ArtifactError(f"{where}: weights.safetensors: {e}") from None
    try:
        graph = parse_ir(art.ir_text, ir_constants(art.ir_text, weights))
    except LeptoncError as e:
        raise ArtifactError(f"{where}: graph.lir: {e}") from None
    try:
        return _DERIVE[art.manifest["target"]](art, graph, weights, where)
    except ArtifactError:
        raise
    except LeptoncError as e:
        raise ArtifactError(f"{where}: leptonc cannot generate code from the artifact's IR: {e}") from None
    except MemoryError:
        raise ArtifactError(f"{where}: the IR's constants are too large for their stored weights") from None


def ir_constants(ir_text: str, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Arrays for the IR's named constants: the stored weight of that name, or the original of one stored
    transposed; else (a weight stored only in a kernel's layout) zeros of its type, which take no memory.
    The code generator reads no values of those but their type."""
    from .cpu.matmul import TRANSPOSED

    out = {}
    for name, dtype, dims in _NAMED_CONST.findall(ir_text):
        if name in weights:
            out[name] = weights[name]
        elif name + TRANSPOSED in weights:
            out[name] = weights[name + TRANSPOSED].swapaxes(-1, -2)
        else:
            try:
                shape = tuple(int(d) for d in dims.split(",") if d.strip())
                out[name] = np.broadcast_to(np.zeros((), DType.parse(dtype).numpy), shape)
            except (ValueError, LeptoncError):  # parse_ir says what is wrong with the statement
                continue
    return out


def _derive_cpu(art: Artifact, graph: Graph, weights: dict, where: str) -> Derived:
    from .cpu.layout import laid_out_weight
    from .cpu.program import generate

    return _derive_program(art, graph, generate(graph), weights, where, layout=laid_out_weight)


def _derive_triton(art: Artifact, graph: Graph, weights: dict, where: str) -> Derived:
    from .triton.program import generate

    return _derive_program(art, graph, generate(graph), weights, where, layout=None)


def _derive_program(art: Artifact, graph: Graph, program, weights: dict, where: str, *, layout) -> Derived:
    """A kernel-program target's artifact with the program and source that codegen derived. The cpu target
    stores weights in its kernels' layouts (checked with `layout`) and runs exactly the derived list of them."""
    _check_weights(graph, program.meta["weights"], weights, where, layout)
    manifest = dict(art.manifest, program=program.meta, signature=_signature(program.meta),
                    fusion_report=program.plan.report())
    same = (program.meta, program.source) == (art.manifest["program"], art.source)
    derived = replace(art, manifest=manifest, source=program.source)
    if layout is not None:
        derived.weights = {n: weights[n] for n in program.meta["weights"]}
    return Derived(derived, getattr(program, "drivers", ()), same)


def _derive_stablehlo(art: Artifact, graph: Graph, weights: dict, where: str) -> Derived:
    from .stablehlo import emit
    from .stablehlo.specialize import symbols_of

    bindings = art.manifest["stablehlo"]["bindings"]
    symbols = sorted(symbols_of(graph))
    if sorted(bindings) != symbols:
        raise ArtifactError(f"{where}: manifest field 'stablehlo.bindings' names {sorted(bindings)}; the IR's "
                            f"symbols are {symbols}")
    module = emit(graph, bindings)
    _check_weights(graph, module.weights, weights, where, None)

    def describe(values):
        return [{"name": v.name, "dtype": v.dtype.value, "shape": list(v.shape)} for v in values]

    signature = {"inputs": describe(graph.inputs), "outputs": describe(graph.outputs), "symbols": symbols}
    manifest = dict(art.manifest, signature=signature,
                    stablehlo={"bindings": bindings, "weights": list(module.weights)})
    return Derived(replace(art, manifest=manifest, source=module.text), (), module.text == art.source)


_DERIVE = {"cpu": _derive_cpu, "triton": _derive_triton, "stablehlo": _derive_stablehlo}


def _signature(meta: dict) -> dict:
    return {"inputs": meta["inputs"], "outputs": meta["outputs"], "symbols": meta["symbols"]}


def _check_weights(graph: Graph, names, weights: dict, where: str, layout) -> None:
    """Every weight the program reads is stored, with the dtype and size it reads: a constant of the IR (the
    stored array itself, which parse_ir checked against its type, or the values the IR writes inline; a
    scalar may be stored as one element), or `layout(graph, name)`'s dtype and shape for a laid-out one."""
    memo: dict[tuple, tuple] = {}
    for name in names:
        if name not in weights:
            raise ArtifactError(f"{where}: weights.safetensors lacks '{name}', which the program reads")
        if LAYOUT not in name or layout is None:
            const, stored = graph.constants.get(name), weights[name]
            if const is None or (const is not stored and (const.dtype, const.size, const.tobytes()) != (
                    stored.dtype, stored.size, stored.tobytes())):  # (an inline constant: a few values)
                raise ArtifactError(f"{where}: weight '{name}' is not the IR's constant of that name")
            continue
        base, mark = name.split(LAYOUT, 1)
        original = graph.constants.get(base)
        stored = weights[name]
        if original is None or original.nbytes > 2 * stored.nbytes + (64 << 10):
            raise ArtifactError(f"{where}: weight '{name}' is not a layout of a constant of the IR")
        key = (mark, original.dtype, original.shape, original.strides)
        if key not in memo:  # (layers of one shape share the answer)
            laid_out = layout(graph, name)
            memo[key] = (laid_out.dtype, laid_out.shape)
        if memo[key] != (stored.dtype, stored.shape):
            raise ArtifactError(f"{where}: weight '{name}' is {stored.dtype}{list(stored.shape)}; the program "
                                f"reads {memo[key][0]}{list(memo[key][1])}")
