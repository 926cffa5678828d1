"""How many threads a model library may use, and how its OpenMP threads wait.

The pool is the cores this process may actually run on: the CPUs of its affinity mask, bounded by a cgroup
CPU quota (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`), whichever is lower.
`LEPTONC_NUM_THREADS` sets it; `OMP_NUM_THREADS`, when set, is left to OpenMP. Inside that pool each kernel
takes threads by its work (codegen/cpu/program.py), so a kernel of microseconds runs on one.

OpenMP threads that wait for work spin first. libgomp spins ~300000 rounds by default (milliseconds), which on
a busy machine takes the cores from the work that holds them, and reads its wait policy (`GOMP_SPINCOUNT`,
`OMP_WAIT_POLICY`) once, when it is loaded. `openmp_settings()` gives the environment to load the first model
library under: a bounded spin (SPIN_COUNT rounds, then sleep) unless the user chose a policy, or libgomp is
already in the process (torch loads its own copy, under the same name, which model libraries then share).
"""
from __future__ import annotations

import contextlib
import math
import os
import threading

from ..ir.errors import LeptoncError

SPIN_COUNT = 10000  # rounds a waiting OpenMP thread spins before it sleeps (libgomp's default: 300000)
_ENV_LOCK = threading.Lock()


def available_cores(cgroup_root: str = "/sys/fs/cgroup", proc_cgroup: str = "/proc/self/cgroup") -> int:
    """The CPUs this process may run on, bounded by its cgroup's CPU quota (rounded down, at least 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root, proc_cgroup)
    if quota is not None:
        cores = min(cores, max(1, math.floor(quota)))
    return max(1, cores)


def cgroup_cpu_quota(cgroup_root: str = "/sys/fs/cgroup", proc_cgroup: str = "/proc/self/cgroup") -> float | None:
    """The CPU quota of this process's cgroup and its ancestors in cores (quota / period), the lowest one; None
    when there is none (or no cgroup file to read)."""
    try:
        lines = open(proc_cgroup).read().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2: 0::/path
            for folder in _ancestors(cgroup_root, path):
                quotas.append(_v2_quota(os.path.join(folder, "cpu.max")))
        elif "cpu" in controllers.split(","):  # cgroup v1: N:cpu,cpuacct:/path
            for mount in (os.path.join(cgroup_root, controllers), os.path.join(cgroup_root, "cpu")):
                for folder in _ancestors(mount, path):
                    quotas.append(_v1_quota(folder))
    quotas = [q for q in quotas if q is not None]
    return min(quotas) if quotas else None


def _ancestors(mount: str, path: str) -> list[str]:
    """The cgroup folder of `path` under `mount` and each folder above it, up to `mount`."""
    parts = [p for p in path.split("/") if p]
    return [os.path.join(mount, *parts[:i]) for i in range(len(parts), -1, -1)]


def _v2_quota(path: str) -> float | None:
    try:
        quota, period = open(path).read().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def _v1_quota(folder: str) -> float | None:
    try:
        quota = int(open(os.path.join(folder, "cpu.cfs_quota_us")).read())
        period = int(open(os.path.join(folder, "cpu.cfs_period_us")).read())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def pool_size(environ=os.environ) -> int | None:
    """Threads a model library may use: LEPTONC_NUM_THREADS, else None when OMP_NUM_THREADS is set (OpenMP's
    own setting then holds), else the available cores."""
    text = environ.get("LEPTONC_NUM_THREADS", "").strip()
    if text:
        if not text.isdigit() or int(text) < 1:
            raise LeptoncError(f"LEPTONC_NUM_THREADS must be a positive integer, not {text!r}")
        return int(text)
    if environ.get("OMP_NUM_THREADS", "").strip():
        return None
    return available_cores()


def openmp_loaded(maps: str = "/proc/self/maps") -> bool:
    """Whether an OpenMP runtime (libgomp) is already loaded in this process."""
    try:
        with open(maps) as f:
            return any("libgomp" in line for line in f)
    except OSError:
        return False


def openmp_settings(environ=os.environ, loaded: bool | None = None) -> dict[str, str]:
    """The variables to set while libgomp loads: a bounded spin, unless the user chose a wait policy or libgomp
    is already loaded (it has read its settings)."""
    if "GOMP_SPINCOUNT" in environ or "OMP_WAIT_POLICY" in environ:
        return {}
    if openmp_loaded() if loaded is None else loaded:
        return {}
    return {"GOMP_SPINCOUNT": str(SPIN_COUNT)}


@contextlib.contextmanager
def openmp_environment():
    """Load model libraries inside this: the OpenMP settings are in the environment while libgomp reads them,
    and gone after (child processes inherit nothing)."""
    with _ENV_LOCK:
        settings = openmp_settings()
        os.environ.update(settings)
        try:
            yield
        finally:
            for key in settings:
                os.environ.pop(key, None)
