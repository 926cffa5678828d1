"""Building generated C into a shared library: the compiler, its flags, the CPU's features, the cache.

Libraries are cached by the sha256 of (source, compiler version, flags, CPU
features): the source is a function of the optimized IR and the options, so a
second compile of the same model skips the C compiler.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

from ...ir.errors import LeptoncError

FLAGS = ["-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", "-std=gnu11", "-fno-math-errno",
         "-fno-trapping-math", "-Wno-unused-function"]
# CPU features -march=native may use, as /proc/cpuinfo spells them
KNOWN_FEATURES = ("sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512dq", "avx512bw",
                  "avx512vl", "avx512_vnni", "avx512_bf16", "amx_tile")


class BuildError(LeptoncError):
    """The C compiler is missing or rejected generated code."""


def cache_dir() -> Path:
    root = os.environ.get("LEPTONC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "leptonc")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


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


def build_library(source: str, *, use_cache: bool = True) -> tuple[Path, bool]:
    """Compile `source` into a shared library; returns (path, whether it came from the cache)."""
    cc = find_compiler()
    if cc is None:
        raise BuildError("no C compiler found (set CC, or install gcc or clang) to build for the cpu target")
    key = build_key(source, cc)
    target = cache_dir() / f"{key[:32]}.so"
    if use_cache and target.exists():
        return target, True
    inc, lib_dir, _ = blas_paths()
    with tempfile.TemporaryDirectory(prefix="leptonc-build-") as tmp:
        src = Path(tmp) / "model.c"
        src.write_text(source)
        out = Path(tmp) / "model.so"
        import scipy_openblas32 as ob

        cmd = [cc, *FLAGS, f"-I{inc}", str(src), "-o", str(out), f"-L{lib_dir}", f"-l{ob.get_library()}",
               f"-Wl,-rpath,{lib_dir}", "-lmvec", "-lm"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError(f"the C compiler failed on generated code ({' '.join(cmd[:2])} ...):\n"
                             + proc.stderr[-4000:])
        tmp_target = target.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(out, tmp_target)
        os.replace(tmp_target, target)
    return target, False
