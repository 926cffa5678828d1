"""One compiled model called from many threads at once: every result equals the sequential one (each call takes
its own scratch arena from a pool), the executor is made once, a run-time size too large to allocate is a clear
error, and the first compile of a process may come from several threads."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import leptonc  # noqa: E402
from leptonc.runtime import executor as executor_module  # noqa: E402
from tests.model_zoo import build, dynamic  # noqa: E402


def _wide_mlp():
    """An MLP whose intermediates are large enough that two calls sharing an arena overwrite each other."""
    torch.manual_seed(0)
    layers = [torch.nn.Linear(32, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
              torch.nn.Linear(256, 16)]
    return torch.nn.Sequential(*layers).eval(), (torch.randn(4, 32),), \
        ({0: torch.export.Dim("batch", min=1, max=64)},)


def _compiled(name: str):
    if name == "mlp":
        module, inputs, shapes = _wide_mlp()
    else:
        module, inputs = build(name)
        shapes, _ = dynamic(name)
    cm = leptonc.compile(leptonc.import_torch(module, inputs, dynamic_shapes=shapes), quiet=True)
    return cm, tuple(inputs[0].shape[1:])


def _stress(cm, item_shape: tuple, threads: int, calls: int) -> int:
    """Mismatches of `threads` threads x `calls` calls against the sequential results. Threads use batches
    1..4 (two threads per size when there are 8: some share a plan, others do not)."""
    rng = np.random.default_rng(0)
    inputs = [[rng.standard_normal((1 + t % 4, *item_shape)).astype(np.float32) for _ in range(4)]
              for t in range(threads)]
    expected = [[cm.run(x) for x in xs] for xs in inputs]
    start = threading.Barrier(threads)

    def work(t: int) -> int:
        start.wait()
        return sum(not _same(cm.run(inputs[t][i % 4]), expected[t][i % 4]) for i in range(calls))

    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(work, range(threads)))


def _same(outs: list, expected: list) -> bool:
    return len(outs) == len(expected) and all(np.array_equal(y, e) for y, e in zip(outs, expected))


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_threads_sharing_a_model_get_the_sequential_results(name):
    cm, item = _compiled(name)
    assert _stress(cm, item, threads=8, calls=200 if name == "mlp" else 25) == 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlp", "cnn", "resnet_small"])
def test_threads_sharing_a_model_get_the_sequential_results_long(name):
    cm, item = _compiled(name)
    assert _stress(cm, item, threads=8, calls=200 if name != "resnet_small" else 100) == 0


def test_concurrent_calls_take_arenas_of_their_own(monkeypatch):
    """Two calls running at once hold two arenas; after they return both sit in the plan's pool for reuse."""
    cm, item = _compiled("mlp")
    x = np.ones((2, *item), np.float32)
    cm(x)
    run = cm.executor.lib.lep_run
    inside = threading.Barrier(2)
    arenas = []

    class Gated:  # stands in for the library's entry point: both calls are inside it at once
        def __call__(self, *args):
            arenas.append(args[3])
            inside.wait(timeout=10)
            return run(*args)

    monkeypatch.setattr(cm.executor.lib, "lep_run", Gated())
    with ThreadPoolExecutor(2) as pool:
        ys = list(pool.map(lambda _: cm(x), range(2)))
    np.testing.assert_array_equal(ys[0], ys[1])
    assert len(set(arenas)) == 2
    (plan,) = cm.executor._plans.values()
    assert len(plan.free) == 2


def test_the_executor_is_made_once_from_many_threads(monkeypatch):
    cm, item = _compiled("mlp")
    made = []
    real = executor_module.Executor.__init__

    def counted(self, *args, **kwargs):
        made.append(1)
        real(self, *args, **kwargs)

    monkeypatch.setattr(executor_module.Executor, "__init__", counted)
    with ThreadPoolExecutor(8) as pool:
        executors = set(pool.map(lambda _: id(cm.executor), range(8)))
    assert len(made) == 1 and len(executors) == 1


def test_a_size_too_large_to_allocate_is_a_clear_error():
    cm, item = _compiled("mlp")
    plan = cm.executor._plan({"batch": 10 ** 12})  # planned buffers of petabytes
    with pytest.raises(leptonc.LeptoncError, match=r"cannot allocate the arena of intermediates \(\d+ bytes\) "
                                                   r"at batch=1000000000000"):
        cm.executor._take_arena(plan)


def test_the_first_compile_of_a_process_from_several_threads(tmp_path):
    """The pass registry loads its modules once, while other threads wait (it used to mark itself loaded first,
    and a second thread found no pass 'default')."""
    script = (
        "import sys\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "import numpy as np\n"
        "import leptonc\n"
        "from leptonc.ir import DType, Graph, TensorType\n"
        "def graph():\n"
        "    g = Graph('g')\n"
        "    x = g.add_input('x', TensorType(DType.f32, (4,)))\n"
        "    g.set_outputs([g.add('relu', g.add('add', x, x), name='y')])\n"
        "    return g\n"
        "with ThreadPoolExecutor(4) as pool:\n"
        "    models = list(pool.map(lambda _: leptonc.compile(graph(), quiet=True), range(4)))\n"
        "x = np.array([-1, 0, 1, 2], np.float32)\n"
        "assert all((m(x) == [0, 0, 2, 4]).all() for m in models)\n"
        "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "LEPTONC_CACHE_DIR": str(tmp_path)})
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def _small_mlp():
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8)).eval()
    return module, (torch.randn(4, 16),)


def _threads_agree(cm, shapes: list[tuple], calls: int) -> int:
    """Mismatches of threads (one per shape) calling `cm` `calls` times each against the sequential results."""
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    expected = [cm.run(x) for x in inputs]
    with ThreadPoolExecutor(len(shapes)) as pool:
        return sum(pool.map(lambda t: sum(not _same(cm.run(inputs[t]), expected[t]) for _ in range(calls)),
                            range(len(shapes))))


def test_threads_sharing_a_triton_model(monkeypatch):
    """On a GPU the third call at a size records a CUDA graph that later calls replay; under Triton's
    interpreter (which keeps module state while a kernel runs) launches take turns."""
    pytest.importorskip("triton")
    if not torch.cuda.is_available():
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    module, inputs = _small_mlp()
    cm = leptonc.compile(module, inputs, target="triton", quiet=True)
    assert _threads_agree(cm, [(4, 16)] * 4, calls=4) == 0


def test_threads_sharing_a_stablehlo_model():
    pytest.importorskip("jax")
    module, inputs = _small_mlp()
    graph = leptonc.import_torch(module, inputs, dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=64)},))
    cm = leptonc.compile(graph, target="stablehlo", quiet=True)
    assert _threads_agree(cm, [(1 + t % 3, 16) for t in range(6)], calls=10) == 0  # sizes compiled at once
