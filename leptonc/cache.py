"""The compile cache: one compiled artifact per (model file, compile options, leptonc, C compiler, CPU).

Compiling the same ONNX model (a path or its bytes) with the same options a second time loads the cached
artifact instead of importing, optimizing and generating code again. The key hashes the model's bytes,
every option that changes the result, the source files of leptonc itself (a changed compiler never
serves a stale artifact), the C compiler's version and flags, and the CPU's features. Entries are plain
artifacts: loading one verifies every hash, like any artifact. A model file's hash is remembered beside
its inode, size and times, so that a file left as it was is not read again to find its key. The most
recently used entries are kept up to LEPTONC_CACHE_BYTES (default 4 GiB). Below this cache sits the build
cache of model libraries, keyed by the generated C source (codegen/cpu/build.py), which serves graphs
given as objects.
"""
from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

DEFAULT_LIMIT = 4 << 30


def artifact_key(model, *, target: str, passes: str | None, dynamic_shapes, example_inputs) -> str | None:
    """The cache key of compiling `model` with these options; None when the model is not a file or bytes."""
    if isinstance(model, (str, os.PathLike)) and str(model).endswith(".onnx") and os.path.isfile(model):
        model_digest = _file_digest(model)
    elif isinstance(model, bytes):
        model_digest = hashlib.sha256(model).hexdigest()
    else:
        return None
    from .codegen.cpu.build import FLAGS, compiler_version, cpu_features, find_compiler

    cc = find_compiler()
    parts = [model_digest, target, passes or "", repr(dynamic_shapes), _inputs_digest(example_inputs),
             _leptonc_digest(), compiler_version(cc) if cc else "no compiler", " ".join(FLAGS),
             ",".join(cpu_features())]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def load_entry(key: str):
    """The compiled model cached under `key`, marked as just used; None on a miss. An entry that fails
    verification (damaged on disk) is removed and counts as a miss."""
    from .runtime.artifact import ArtifactError
    from .runtime.compiled import load

    path = _entries() / f"{key[:40]}.lep"
    if not path.is_file():
        return None
    os.utime(path)  # before loading: the model remembers the file as it loaded it
    try:
        cm = load(path)
    except ArtifactError:
        path.unlink(missing_ok=True)
        return None
    cm.share_file()  # the entry is replaced or trimmed whole: a save may link it
    return cm


def store(key: str, cm) -> Path:
    """Save compiled model `cm` under `key`, then trim the cache to its size limit."""
    path = _entries() / f"{key[:40]}.lep"
    cm.save(path)  # atomic
    cm.share_file()  # later saves of cm link this file
    _trim(int(os.environ.get("LEPTONC_CACHE_BYTES", DEFAULT_LIMIT)), keep=path)
    return path


def _entries() -> Path:
    from .codegen.cpu.build import cache_dir

    path = cache_dir() / "artifacts"
    path.mkdir(exist_ok=True)
    return path


def _trim(limit: int, keep: Path) -> None:
    """Delete the least recently used entries until the cache holds at most `limit` bytes (`keep` stays)."""
    entries = []
    for p in _entries().glob("*.lep"):
        try:
            st = p.stat()
        except OSError:  # removed meanwhile by another process
            continue
        entries.append((st.st_mtime, st.st_size, p))
    total = 0
    for _, size, p in sorted(entries, key=lambda e: e[0], reverse=True):
        total += size
        if total > limit and p != keep:
            p.unlink(missing_ok=True)


def _file_digest(path) -> str:
    """sha256 of a file's bytes, remembered (in the cache) for the file as it is now: its inode, size, and
    modification and change times. A file written again, or replaced, is hashed again."""
    st = os.stat(path)
    stamp = f"{st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}"
    from .codegen.cpu.build import cache_dir

    memo = cache_dir() / "digests" / hashlib.sha256(os.path.realpath(path).encode()).hexdigest()[:40]
    try:
        known_stamp, digest = memo.read_text().split("\n")[:2]
        if known_stamp == stamp:
            return digest
    except (OSError, ValueError):
        pass
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    memo.parent.mkdir(exist_ok=True)
    tmp = memo.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(f"{stamp}\n{h.hexdigest()}\n")
    os.replace(tmp, memo)
    return h.hexdigest()


def _inputs_digest(example_inputs) -> str:
    if example_inputs is None:
        return "none"
    items = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    h = hashlib.sha256()
    for x in items:
        a = np.ascontiguousarray(x.detach().numpy() if hasattr(x, "detach") else np.asarray(x))
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


@lru_cache(maxsize=None)
def _leptonc_digest() -> str:
    """A hash of leptonc's own source files: any change to the compiler changes every key."""
    root = Path(__file__).parent
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.suffix in (".py", ".c", ".h") and p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()
