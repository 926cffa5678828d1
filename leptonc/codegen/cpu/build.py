"""Building generated C into a shared library: the compiler, its flags, the CPU's features, the cache.

Libraries are cached by the sha256 of (source, compiler version, flags, CPU
features): the source is a function of the optimized IR and the options, so a
second compile of the same model skips the C compiler. Cache objects are
written atomically and hashed again before each use (runtime/files.py): a
damaged one is built again, with a warning.

Hand-written drivers that do not depend on the model (the GEMM's blocking and
micro-kernels) are compiled once per machine into an object file of the same
cache and linked beside each model's own code (`build_library(...,
drivers=)`), so a model's build compiles its kernels only. A model's source
still holds its drivers whole: built alone (as an artifact's source is when
its library is rebuilt) it needs nothing else.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from ...ir.errors import LeptoncError
from ...runtime.files import cache_dir, cached_object, copy_atomic, private_dir, store_object

HERE = Path(__file__).parent
# drivers compiled apart: name -> (source files, the macro prefix that switches a unit between holding the
# driver (PREFIX_SEPARATE) and declaring it (PREFIX_DECLARE); see gemm.c)
DRIVERS = {"gemm": (("prelude.h", "gemm.c"), "LEP_GEMM")}

FLAGS = ["-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", "-std=gnu11", "-fno-math-errno",
         "-fno-trapping-math", "-Wno-unused-function"]
# CPU features -march=native may use, as /proc/cpuinfo spells them
KNOWN_FEATURES = ("sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512dq", "avx512bw",
                  "avx512vl", "avx512_vnni", "avx512_bf16", "amx_tile")


class BuildError(LeptoncError):
    """The C compiler is missing or rejected generated code."""


def find_compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@lru_cache(maxsize=None)
def compiler_version(cc: str) -> str:
    out = subprocess.run([cc, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()[0] if out.stdout else cc


@lru_cache(maxsize=None)
def cpu_features() -> tuple[str, ...]:
    """The features of this CPU that generated code may rely on."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return tuple(f for f in KNOWN_FEATURES if f in flags)
    return ()


def blas_paths() -> tuple[str, str, str]:
    """(include dir, library dir, library file) of the scipy-openblas32 wheel."""
    import scipy_openblas32 as ob

    lib_dir = ob.get_lib_dir()
    return ob.get_include_dir(), lib_dir, os.path.join(lib_dir, f"lib{ob.get_library()}.so")


def build_key(source: str, cc: str) -> str:
    h = hashlib.sha256()
    for part in (source, compiler_version(cc), " ".join(FLAGS), ",".join(cpu_features())):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def build_library(source: str, *, use_cache: bool = True, drivers: tuple[str, ...] = ()) -> tuple[Path, bool]:
    """Compile `source` into a shared library; returns (path, whether it came from the cache). `drivers` (names
    of DRIVERS that the source holds) are linked from their once-per-machine objects instead of compiled again.
    Without use_cache the model's library is neither looked up in the cache nor stored there: it goes to a
    private folder of this process."""
    cc = find_compiler()
    if cc is None:
        raise BuildError("no C compiler found (set CC, or install gcc or clang) to build for the cpu target")
    key = build_key(source + "\0drivers:" + ",".join(drivers), cc)
    if use_cache:
        found = cached_object(cache_dir() / f"{key[:32]}.so")
        if found is not None:
            return found, True
    inc, lib_dir, _ = blas_paths()
    import scipy_openblas32 as ob

    with tempfile.TemporaryDirectory(prefix="leptonc-build-") as tmp:
        pending = [_start_driver(cc, name, inc, Path(tmp)) for name in drivers]
        src, obj, out = (Path(tmp) / f"model.{ext}" for ext in ("c", "o", "so"))
        src.write_text(source)
        declare = [f"-D{DRIVERS[name][1]}_DECLARE" for name in drivers]
        _run([cc, *_object_flags(), *declare, f"-I{inc}", str(src), "-o", str(obj)], "generated code")
        objects = [str(_finish_driver(p)) for p in pending]
        _run([cc, *FLAGS, str(obj), *objects, "-o", str(out), f"-L{lib_dir}", f"-l{ob.get_library()}",
              f"-Wl,-rpath,{lib_dir}", "-lmvec", "-lm"], "generated code")
        if use_cache:
            return store_object(cache_dir() / f"{key[:32]}.so", out), False
        target = private_dir() / f"{key[:32]}.so"
        copy_atomic(out, target)
        return target, False


def driver_source(name: str) -> str:
    """The C source of a driver's object: its files, in order."""
    return "".join((HERE / f).read_text() for f in DRIVERS[name][0])


class _Driver(NamedTuple):
    """A driver's cached object, and, while it is being built, the compiler's process and its output."""

    name: str
    obj: Path
    proc: subprocess.Popen | None = None
    built: Path | None = None


def _start_driver(cc: str, name: str, inc: str, tmp: Path) -> _Driver:
    """The driver's object, its compiler started (not awaited) in `tmp` when it is not cached, so that it
    compiles beside the model's source."""
    source = driver_source(name)
    obj = cache_dir() / f"driver-{name}-{build_key(source, cc)[:32]}.o"
    found = cached_object(obj)
    if found is not None:
        return _Driver(name, found)
    src, built = tmp / f"{name}.c", tmp / f"{name}.o"
    src.write_text(source)
    cmd = [cc, *_object_flags(), f"-D{DRIVERS[name][1]}_SEPARATE", f"-I{inc}", str(src), "-o", str(built)]
    return _Driver(name, obj, subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True),
                   built)


def _finish_driver(d: _Driver) -> Path:
    """The driver's object in the cache, once its compiler (if any) is done."""
    if d.proc is not None:
        _, err = d.proc.communicate()
        if d.proc.returncode != 0:
            raise BuildError(f"the C compiler failed on leptonc's {d.name} driver:\n{err[-4000:]}")
        return store_object(d.obj, d.built)
    return d.obj


def _object_flags() -> list[str]:
    """FLAGS for an object file (read at each build: tests patch FLAGS to build for other CPUs)."""
    return [f for f in FLAGS if f != "-shared"] + ["-c"]


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"the C compiler failed on {what} ({' '.join(cmd[:2])} ...):\n" + proc.stderr[-4000:])
