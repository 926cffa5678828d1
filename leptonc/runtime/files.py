"""Files that threads and processes share: the cache folder, atomic writes, cache objects verified by hash.

Every file is written whole or not at all: into a unique temporary file in the target's folder (tempfile),
then moved over the target (os.replace), so that a reader in another thread or process sees the old file or
the new one, never a part of either.

A cache object (a built library, a driver's object file) is stored under a name that holds the sha256 of its
bytes and found through a small pointer file named by its key (`<key>.so.sha256` -> `<key>-<hash>.so`). Its
bytes are hashed again before each use: a damaged object, as a crash or a full disk can leave, is dropped
with a warning and built again, never run.

The cache folder is LEPTONC_CACHE_DIR, else $XDG_CACHE_HOME/leptonc or ~/.cache/leptonc. When it cannot be
created or written, leptonc warns once and keeps what it builds in a private temporary folder until the
process ends: compiling and loading work, and nothing is kept for the next process.
"""
from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import shutil
import tempfile
import threading
import warnings
from functools import lru_cache
from pathlib import Path

_lock = threading.Lock()
_private: Path | None = None
_warned: set[str] = set()


def configured_cache_dir() -> Path:
    """The cache folder the environment asks for (it may not exist, or be unwritable)."""
    root = os.environ.get("LEPTONC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "leptonc")
    return Path(root)


def writable_cache_dir() -> Path | None:
    """The cache folder, created if needed; None (after one warning per folder) when it cannot be written."""
    root = configured_cache_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        if os.access(root, os.W_OK | os.X_OK):
            return root
        reason = "it is not writable"
    except OSError as e:
        reason = f"{type(e).__name__}: {e.strerror or e}"
    with _lock:
        first = str(root) not in _warned
        _warned.add(str(root))
    if first:
        warnings.warn(f"leptonc: cannot use the cache folder {root} ({reason}; set LEPTONC_CACHE_DIR to another): "
                      "compiling without a cache", stacklevel=3)
    return None


def cache_dir() -> Path:
    """The cache folder, or this process's private folder when the cache folder cannot be written."""
    return writable_cache_dir() or private_dir()


def private_dir() -> Path:
    """A temporary folder of this process, removed when it exits."""
    global _private
    with _lock:
        if _private is None:
            _private = Path(tempfile.mkdtemp(prefix="leptonc-"))
            atexit.register(shutil.rmtree, _private, ignore_errors=True)
        return _private


@contextlib.contextmanager
def replacing(path: str | os.PathLike):
    """Yield a fresh temporary path in `path`'s folder; when the block ends without error, that file replaces
    `path` in one step (with the mode a new file gets); otherwise it is removed."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _new_file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: str | os.PathLike, data: bytes | str) -> None:
    """Write `data` (bytes, or text as UTF-8) to `path` whole or not at all."""
    with replacing(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)


def copy_atomic(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy file `src` to `dst` whole or not at all."""
    with replacing(dst) as tmp:
        shutil.copyfile(src, tmp)


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()


def cached_object(path: Path) -> Path | None:
    """The object stored for `path` (see store_object) when its bytes are whole; None when there is none. A
    damaged object (or pointer) is removed, with a warning, and counts as none."""
    pointer = _pointer(path)
    try:
        digest = pointer.read_text().strip()
    except OSError:
        return None
    obj = _object_path(path, digest)
    try:
        whole = len(digest) == 64 and file_sha256(obj) == digest
    except OSError:
        whole = False
    if whole:
        return obj
    warnings.warn(f"leptonc: the cache object {obj.name} in {path.parent} is damaged or missing (its bytes do not "
                  "hash to what was stored); building it again", stacklevel=3)
    pointer.unlink(missing_ok=True)
    obj.unlink(missing_ok=True)
    return None


def store_object(path: Path, src: str | os.PathLike) -> Path:
    """Store file `src` as the object for `path` (atomically, the object before its pointer, so that a reader
    never finds a pointer to an object not yet whole); returns the object's path."""
    digest = file_sha256(src)
    obj = _object_path(path, digest)
    copy_atomic(src, obj)
    write_atomic(_pointer(path), digest + "\n")
    return obj


def _pointer(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _object_path(path: Path, digest: str) -> Path:
    return path.with_name(f"{path.stem}-{digest[:16]}{path.suffix}")


@lru_cache(maxsize=None)
def _new_file_mode() -> int:
    """The mode that open() gives a new file (0o666 less the umask), read without setting the umask (which
    every thread shares)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o644
