"""The compile cache: one compiled artifact per (model bytes, compile options, leptonc, C compiler, CPU).

Compiling the same ONNX model (a path or its bytes) with the same options a second time loads the cached
artifact instead of importing, optimizing and generating code again. The key hashes every byte that decides
the result: the model file and each external-data file it names (their locations resolved in the model's
folder; a location outside it turns the cache off for that compile, with a warning), every option that
changes the result, leptonc's version and its source files (a changed compiler never serves a stale
artifact), the onnx package's version and the pass plugins, the C compiler's version and flags, and the
CPU's features. Entries are plain artifacts, written atomically: loading one verifies every hash, like any
artifact, and a damaged one is compiled again with a warning. A model saved from a cache hit is a copy of
its entry, never the entry itself. A file's hash is remembered beside its inode, size and times, so that a
file left as it was is not read again to find its key. The most recently used entries are kept up to
LEPTONC_CACHE_BYTES (default 4 GiB). Below this cache sits the build cache of model libraries, keyed by the
generated C source (codegen/cpu/build.py), which serves graphs given as objects.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import numpy as np

from .runtime.files import writable_cache_dir, write_atomic

DEFAULT_LIMIT = 4 << 30


def artifact_key(model, *, target: str, passes: str | None, dynamic_shapes, example_inputs,
                 calibration=None, accuracy=True) -> str | None:
    """The cache key of compiling `model` with these options (`accuracy`: the sample count of the accuracy
    report a lossy compile stores in the artifact); None when the model is not a file or bytes, when
    its external data cannot be hashed, or when no cache folder can be written."""
    is_file = isinstance(model, (str, os.PathLike)) and str(model).endswith(".onnx") and os.path.isfile(model)
    if not (is_file or isinstance(model, bytes)) or writable_cache_dir() is None:
        return None
    # (bytes load no external data)
    model_digest = _model_digest(model) if is_file else hashlib.sha256(model).hexdigest()
    if model_digest is None:
        return None
    from . import __version__
    from .codegen.cpu.build import FLAGS, compiler_version, cpu_features, find_compiler
    from .runtime.accuracy import accuracy_samples

    cc = find_compiler()
    parts = [model_digest, target, passes or "", repr(dynamic_shapes), _inputs_digest(example_inputs),
             _calibration_digest(calibration), f"accuracy {accuracy_samples(accuracy)}", __version__,
             _leptonc_digest(), _package_version("onnx"), _plugins(),
             f"{cc} {compiler_version(cc)}" if cc else "no compiler", " ".join(FLAGS), ",".join(cpu_features())]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def load_entry(key: str):
    """The compiled model cached under `key`, marked as just used; None on a miss. An entry that fails
    verification (damaged on disk) is removed, with a warning, and counts as a miss."""
    from .runtime.artifact import ArtifactError
    from .loader import load

    path = _entries() / f"{key[:40]}.lep"
    try:
        os.utime(path)  # before loading: the model remembers the file as it loaded it
    except OSError:  # no entry (or one removed meanwhile by another process)
        return None
    try:
        return load(path)
    except ArtifactError as e:
        warnings.warn(f"leptonc: the compile cache entry {path.name} is damaged ({e}); compiling again",
                      stacklevel=3)
        path.unlink(missing_ok=True)
        return None


def store(key: str, cm) -> Path:
    """Save compiled model `cm` under `key` (atomically; later saves of `cm` copy the entry), then trim the
    cache to its size limit."""
    path = _entries() / f"{key[:40]}.lep"
    cm.save(path)
    _trim(int(os.environ.get("LEPTONC_CACHE_BYTES", DEFAULT_LIMIT)), keep=path)
    return path


def _entries() -> Path:
    from .runtime.files import cache_dir

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


def _model_digest(path) -> str | None:
    """sha256 of an ONNX file and of each external-data file it names; None (with a warning) when a location
    leads out of the model's folder, or (silently: the import reports it) names no file."""
    digest, locations = _file_digest(path, onnx_locations=True)
    folder = os.path.dirname(os.path.abspath(path))
    h = hashlib.sha256(digest.encode())
    for location in locations:
        data = os.path.normpath(os.path.join(folder, location))
        if os.path.isabs(location) or os.path.commonpath([folder, data]) != folder:
            warnings.warn(f"leptonc: {path} names external data {location!r} outside its folder; compiling "
                          "without the compile cache", stacklevel=4)
            return None
        if not os.path.isfile(data):
            return None
        h.update(f"\0{location}\0{_file_digest(data)[0]}".encode())
    return h.hexdigest()


def _file_digest(path, onnx_locations: bool = False) -> tuple[str, list[str]]:
    """(sha256 of a file's bytes, and for an ONNX file the external-data locations it names), remembered (in
    the cache) for the file as it is now: its inode, size, and modification and change times. A file written
    again, or replaced, is read again."""
    st = os.stat(path)
    stamp = f"{st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns} {onnx_locations}"
    from .runtime.files import cache_dir

    memo = cache_dir() / "digests" / hashlib.sha256(os.path.realpath(path).encode()).hexdigest()[:40]
    try:
        known_stamp, digest, locations = memo.read_text().split("\n")[:3]
        if known_stamp == stamp:
            return digest, json.loads(locations)
    except (OSError, ValueError):
        pass
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    locations = _external_locations(path) if onnx_locations else []
    memo.parent.mkdir(exist_ok=True)
    write_atomic(memo, f"{stamp}\n{h.hexdigest()}\n{json.dumps(locations)}\n")
    return h.hexdigest(), locations


def _external_locations(path) -> list[str]:
    """The external-data locations that an ONNX file's tensors name (initializers, sparse initializers, node
    attributes, subgraphs and functions), sorted; none when the file does not parse (the import says why)."""
    from .ir.errors import optional_dependency

    with optional_dependency("importing an ONNX model"):
        import onnx

    model = onnx.ModelProto()
    try:
        with open(path, "rb") as f:
            model.ParseFromString(f.read())
    except Exception:  # noqa: BLE001 (not a model: the import reports it, and nothing is cached)
        return []
    found: set[str] = set()

    def tensors(t):
        if t.data_location == onnx.TensorProto.EXTERNAL:
            found.update(e.value for e in t.external_data if e.key == "location")

    def graph(g):
        for t in g.initializer:
            tensors(t)
        for s in g.sparse_initializer:
            tensors(s.values), tensors(s.indices)
        nodes(g.node)

    def nodes(ns):
        for n in ns:
            for a in n.attribute:
                for t in [a.t, *a.tensors]:
                    tensors(t)
                for s in [a.sparse_tensor, *a.sparse_tensors]:
                    tensors(s.values), tensors(s.indices)
                for g in [a.g, *a.graphs]:
                    graph(g)

    graph(model.graph)
    for fn in model.functions:
        nodes(fn.node)
    return sorted(found)


def _calibration_digest(calibration) -> str:
    """The hash of an .npz's bytes, or of every sample of an iterable; "none" without calibration."""
    if calibration is None:
        return "none"
    if isinstance(calibration, (str, os.PathLike)):
        return _file_digest(calibration)[0] if os.path.isfile(calibration) else f"missing {calibration}"
    h = hashlib.sha256()
    for sample in calibration:
        h.update(_inputs_digest(sample if isinstance(sample, (tuple, list)) else (sample,)).encode())
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
def _package_version(name: str) -> str:
    try:
        return f"{name} {metadata.version(name)}"
    except metadata.PackageNotFoundError:
        return f"no {name}"


def _plugins() -> str:
    """The pass plugins that could run (their entry points and their packages' versions)."""
    from .passes.plugins import GROUP

    return ";".join(sorted(f"{ep.name}={ep.value} {ep.dist.version if ep.dist else ''}"
                           for ep in metadata.entry_points(group=GROUP)))


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
