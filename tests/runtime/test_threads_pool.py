"""How many threads a model library takes: the pool from the affinity mask and the cgroup CPU quota (v1 and v2),
LEPTONC_NUM_THREADS, the OpenMP wait policy set while libgomp loads, threads per kernel by its work, and the
caller's OpenMP thread count given back after a run."""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import numpy as np
import pytest

import leptonc
from leptonc.codegen.cpu.build import find_compiler
from leptonc.codegen.cpu.cexpr import symbol_var
from leptonc.codegen.cpu.program import GRAIN_NS, LATE_S, THREADS_SOURCE, work_ns
from leptonc.ir import DType, Graph, TensorType
from leptonc.passes.fusion import plan_fusion
from leptonc.runtime import threads
from leptonc.runtime.threads import available_cores, cgroup_cpu_quota, openmp_environment, openmp_settings, \
    pool_size

AFFINITY = len(os.sched_getaffinity(0))


def _cgroup_v2(tmp_path, quotas: dict[str, str], path: str = "/app/worker"):
    """A fake cgroup v2 tree: cpu.max per folder (relative to the root) and this process's cgroup file."""
    for folder, text in quotas.items():
        d = tmp_path / "fs" / folder
        d.mkdir(parents=True, exist_ok=True)
        (d / "cpu.max").write_text(text + "\n")
    (tmp_path / "cgroup").write_text(f"0::{path}\n")
    return str(tmp_path / "fs"), str(tmp_path / "cgroup")


def test_cgroup_v2_quota_is_the_lowest_of_the_cgroup_and_its_ancestors(tmp_path):
    root, proc = _cgroup_v2(tmp_path, {"": "max 100000", "app": "300000 100000", "app/worker": "150000 100000"})
    assert cgroup_cpu_quota(root, proc) == 1.5
    root, proc = _cgroup_v2(tmp_path, {"app": "50000 100000", "app/worker": "max 100000"})
    assert cgroup_cpu_quota(root, proc) == 0.5


def test_no_quota_leaves_the_affinity_mask(tmp_path):
    root, proc = _cgroup_v2(tmp_path, {"": "max 100000", "app/worker": "max 100000"})
    assert cgroup_cpu_quota(root, proc) is None
    assert available_cores(root, proc) == AFFINITY
    assert cgroup_cpu_quota(root, str(tmp_path / "missing")) is None


def test_a_quota_bounds_the_cores_rounded_down_and_at_least_one(tmp_path):
    root, proc = _cgroup_v2(tmp_path, {"app/worker": "150000 100000"})
    assert available_cores(root, proc) == min(AFFINITY, 1)
    root, proc = _cgroup_v2(tmp_path, {"app/worker": "20000 100000"})
    assert available_cores(root, proc) == 1
    root, proc = _cgroup_v2(tmp_path, {"app/worker": "6400000 100000"})
    assert available_cores(root, proc) == AFFINITY


def test_cgroup_v1_quota(tmp_path):
    folder = tmp_path / "fs" / "cpu,cpuacct" / "docker" / "abc"
    folder.mkdir(parents=True)
    (folder / "cpu.cfs_quota_us").write_text("250000\n")
    (folder / "cpu.cfs_period_us").write_text("100000\n")
    (tmp_path / "cgroup").write_text("12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n")
    assert cgroup_cpu_quota(str(tmp_path / "fs"), str(tmp_path / "cgroup")) == 2.5
    (folder / "cpu.cfs_quota_us").write_text("-1\n")  # no quota
    assert cgroup_cpu_quota(str(tmp_path / "fs"), str(tmp_path / "cgroup")) is None


def test_pool_size_from_the_environment():
    assert pool_size({"LEPTONC_NUM_THREADS": "3"}) == 3
    assert pool_size({"LEPTONC_NUM_THREADS": "3", "OMP_NUM_THREADS": "1"}) == 3
    assert pool_size({"OMP_NUM_THREADS": "1"}) is None  # OpenMP's own setting holds
    assert pool_size({}) == available_cores()
    for bad in ("0", "two", "-1"):
        with pytest.raises(leptonc.LeptoncError, match="LEPTONC_NUM_THREADS must be a positive integer"):
            pool_size({"LEPTONC_NUM_THREADS": bad})


def test_the_wait_policy_is_bounded_unless_chosen_or_already_read():
    assert openmp_settings({}, loaded=False) == {"GOMP_SPINCOUNT": str(threads.SPIN_COUNT)}
    assert openmp_settings({}, loaded=True) == {}  # libgomp read its settings when it loaded
    assert openmp_settings({"OMP_WAIT_POLICY": "active"}, loaded=False) == {}
    assert openmp_settings({"GOMP_SPINCOUNT": "0"}, loaded=False) == {}


def test_the_wait_policy_is_in_the_environment_only_while_a_library_loads(monkeypatch):
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(threads, "openmp_loaded", lambda: False)
    with openmp_environment():
        assert os.environ["GOMP_SPINCOUNT"] == str(threads.SPIN_COUNT)
    assert "GOMP_SPINCOUNT" not in os.environ


def test_a_fresh_process_loads_libgomp_with_the_bounded_spin(tmp_path):
    """Without torch in the process, the model library is the first to load libgomp: it reads the bounded spin
    (OMP_DISPLAY_ENV=verbose prints its settings), and the variable is gone from the environment after."""
    script = (
        "import os, numpy as np, leptonc\n"
        "from leptonc.ir import DType, Graph, TensorType\n"
        "g = Graph('g')\n"
        "x = g.add_input('x', TensorType(DType.f32, (4,)))\n"
        "g.set_outputs([g.add('relu', x, name='y')])\n"
        "cm = leptonc.compile(g, quiet=True)\n"
        "cm(np.ones(4, np.float32))\n"
        "print('left in environ:', 'GOMP_SPINCOUNT' in os.environ)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**env, "OMP_DISPLAY_ENV": "verbose", "LEPTONC_CACHE_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"GOMP_SPINCOUNT = '{threads.SPIN_COUNT}'" in done.stderr
    assert "left in environ: False" in done.stdout


@pytest.fixture(scope="module")
def threads_lib(tmp_path_factory):
    """The thread decisions of the generated source, compiled alone: team(work ns, pool) -> threads,
    late(seconds) -> whether kernels now run on one thread after a pool's thread started that late, probe(pool)
    -> the same after the stall watch looked at a real pool, reset()."""
    cc = find_compiler()
    if cc is None:
        pytest.skip("no C compiler")
    folder = tmp_path_factory.mktemp("team")
    src, lib = str(folder / "team.c"), str(folder / "team.so")
    with open(src, "w") as f:
        f.write("#include <omp.h>\n#include <stdint.h>\n" + THREADS_SOURCE
                + "int team(double w, int pool) { return lep_team(w, pool); }\n"
                  "int late(double s) { lep_late(s); return lep_solo(); }\n"
                  "int probe(int pool) { lep_watch(pool); return lep_solo(); }\n"
                  "void reset(void) { lep_solo_until = 0; }\n")
    subprocess.run([cc, "-O2", "-fopenmp", "-shared", "-fPIC", src, "-o", lib], check=True)
    so = ctypes.CDLL(lib)
    so.team.argtypes = [ctypes.c_double, ctypes.c_int]
    so.late.argtypes = [ctypes.c_double]
    return so


@pytest.fixture
def team(threads_lib):
    return threads_lib.team


def test_a_thread_that_starts_late_sends_the_library_to_one_thread(threads_lib):
    """A pool thread that starts a millisecond after the caller was not run by the OS (other work holds the cores):
    kernels then run on one thread for a while; a wake-up of tens of microseconds is an idle machine's."""
    threads_lib.reset()
    assert not threads_lib.late(50e-6)
    assert threads_lib.late(LATE_S * 3)
    threads_lib.reset()
    # a real pool of two threads on this machine: one thread after the probe only when it found one late
    for _ in range(20):
        solo = threads_lib.probe(2)
        threads_lib.reset()
        if not solo:
            break
    assert not solo, "every probe of an idle pool of two threads found one late"
    assert not threads_lib.probe(1)  # one thread: nothing to wait for


def test_one_thread_per_grain_of_work_at_most_the_pool(team):
    assert team(0.0, 8) == 1
    assert team(1.9 * GRAIN_NS, 8) == 1  # a kernel of microseconds runs on one thread
    assert team(2 * GRAIN_NS, 8) == 2
    assert team(5.5 * GRAIN_NS, 8) == 5
    assert team(100 * GRAIN_NS, 8) == 8
    assert team(100 * GRAIN_NS, 1) == 1
    assert team(float("inf"), 4) == 4


def _matmul_graph(m: int, k: int, n: int, batch=None) -> Graph:
    g = Graph("mm")
    rows = "batch" if batch else m
    x = g.add_input("x", TensorType(DType.f32, (rows, k)))
    w = g.add_input("w", TensorType(DType.f32, (k, n)))
    g.set_outputs([g.add("relu", g.add("matmul", x, w), name="y")])
    return g


def _work(graph: Graph) -> str:
    """The C expression of the estimated ns of the graph's first kernel."""
    return work_ns(plan_fusion(graph, lambda *_: False).kernels[0])


def test_work_grows_with_the_multiply_adds_and_follows_symbols():
    def ns(graph):
        return eval(_work(graph).replace("(double)", "").replace("INT64_C", ""))

    small, big = ns(_matmul_graph(8, 64, 64)), ns(_matmul_graph(512, 512, 512))
    assert small < 2 * GRAIN_NS < big
    assert big / small > 1000
    assert symbol_var("batch") in _work(_matmul_graph(0, 64, 64, batch=True))


def test_a_run_gives_the_caller_its_openmp_thread_count_back():
    g = _matmul_graph(256, 256, 256)
    cm = leptonc.compile(g, quiet=True)
    lib = cm.executor.lib
    x, w = np.ones((256, 256), np.float32), np.full((256, 256), 0.5, np.float32)
    want = np.maximum(x @ w, 0)
    lib.omp_set_num_threads(3)
    for n in (1, 2, None):
        cm.executor.set_threads(n)
        np.testing.assert_allclose(cm(x, w), want, rtol=1e-5)
        assert lib.omp_get_max_threads() == 3
    cm.executor.set_threads(2)
    assert cm.executor.threads == 2
    with pytest.raises(leptonc.LeptoncError, match="threads must be a positive integer"):
        cm.executor.set_threads(0)
