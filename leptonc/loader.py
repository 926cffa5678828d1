"""Loading an artifact: read and verify it (runtime), derive its program again from its IR (codegen/derive.py),
pick the library that runs it (the shipped one when a trusted key signed it, else one built here), and hand
it to the runtime's model of its target.

Loading sits above code generation, not inside the runtime: what runs is derived from the artifact's IR by
this leptonc's code generator, so the runtime itself imports nothing but the IR (docs/design.md, layering).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

from .codegen.cpu import build
from .codegen.derive import derive
from .runtime.artifact import ArtifactError, read_artifact, sha256
from .runtime.compiled import CompiledModel, FileStamp
from .runtime.files import cache_dir, file_sha256, write_atomic
from .runtime.trust import trusted_keys as trusted


def load(path: str | os.PathLike, *, trusted_keys=()):
    """Load an artifact written by `save` (or `leptonc compile`), verifying it first.

    What the artifact's IR determines (the program, its sizes, its source) is derived again from the IR
    (codegen/derive.py). Its shipped library runs only when a trusted key signed it (runtime/trust.py;
    `trusted_keys`: more public keys, in hex, to trust); otherwise the derived source is built with the local
    C compiler."""
    before = os.stat(path) if os.path.isfile(path) else None
    art = read_artifact(path)
    if "specialized_on" in art.manifest:
        return _specializing(art, str(path))
    derived = derive(art, str(path))
    art = derived.artifact
    if art.manifest["target"] == "stablehlo":
        from .codegen.stablehlo import compiled_model

        return compiled_model(art)
    if art.manifest["target"] == "triton":  # its kernel module is the derived one: Python, built by no compiler
        from .runtime.triton import TritonModel

        return TritonModel(art)
    library, built = library_for(derived, str(path), trusted_keys)
    if built:
        art.library = library.read_bytes()  # what runs is what a later save writes (and signs)
    cm = CompiledModel(art, library)
    stamp = FileStamp.of(path, art.manifest)
    if before is not None and (before.st_ino, before.st_size, before.st_mtime_ns) == \
            (stamp.stat.st_ino, stamp.stat.st_size, stamp.stat.st_mtime_ns):
        cm.held_by(stamp)  # unchanged while it was read and verified
    return cm


def _specializing(art, where: str):
    """The model of an artifact that holds a graph with dynamic ops and no program (leptonc/specialize.py): every
    specialization is generated from its IR and built here, so no shipped code runs, whoever signed it."""
    from .ir.errors import LeptoncError
    from .ir.parser import parse_ir
    from .runtime import safetensors
    from .specialize import loaded_model

    if art.manifest["target"] == "cpu" and build.find_compiler() is None:
        raise ArtifactError(f"{where} is specialized at run time, and no C compiler is available to build it")
    try:
        graph = parse_ir(art.ir_text, safetensors.loads(art.weights_blob))
        return loaded_model(art, graph)
    except ArtifactError:
        raise
    except LeptoncError as e:
        raise ArtifactError(f"{where}: leptonc cannot specialize the artifact's IR: {e}") from None


def library_for(derived, where: str, trusted_keys=()) -> tuple[Path, bool]:
    """A library of the derived program that this CPU runs, and whether it was built here: the shipped one when
    a trusted key signed the artifact, its source is the derived one and this CPU has the features it was built
    for; else the derived source built here (the build cache keeps it by the source's hash), with a warning
    that says why."""
    art = derived.artifact
    missing = sorted(set(art.manifest.get("cpu_features", ())) - set(build.cpu_features()))
    how = f"if you trust its author, `leptonc trust add {art.signer}` runs its own library"
    if art.signer is None:
        why, how = f"{where} is not signed", "ask its author for a signed one and trust their key"
    elif art.signer not in trusted(trusted_keys):
        why = f"{where} is signed by key {art.signer[:16]}..., which this machine does not trust"
    elif not derived.as_shipped:
        why, how = f"the program in {where} is not the one this leptonc generates from its IR", ""
    elif missing:
        why, how = f"this CPU lacks {', '.join(missing)}, which the library of {where} needs", ""
    else:
        digest = sha256(art.library)
        path = cache_dir() / f"lib-{digest[:32]}.so"
        if not path.exists() or file_sha256(path) != digest:
            write_atomic(path, art.library)
        return path, False
    if build.find_compiler() is None:
        raise ArtifactError(f"{why}, and no C compiler is available to build its code from its IR" +
                            (f"; {how}" if how else ""))
    warnings.warn(f"{why}: running code generated from its IR and built with the local C compiler" +
                  (f" ({how})" if how else ""), stacklevel=3)
    return build.build_library(art.source, drivers=derived.drivers)[0], True
