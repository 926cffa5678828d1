"""Compile the bundled example model (examples/mlp.py:build), run it, and print how close and how fast
it is: max error against the reference interpreter and against eager PyTorch, and the median time of
repeated runs of leptonc and of eager PyTorch, on the same inputs and the same number of threads."""
from __future__ import annotations

import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

THREADS = int(os.environ.get("OMP_NUM_THREADS", "2"))
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))

import torch  # noqa: E402

import leptonc  # noqa: E402
from leptonc.frontends import load_python_model  # noqa: E402


def median_ms(fn, runs: int = 30, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def main() -> int:
    torch.set_num_threads(THREADS)
    module, inputs = load_python_model(os.path.join(HERE, "mlp.py") + ":build")
    x = inputs[0].numpy()

    t0 = time.perf_counter()
    graph = leptonc.import_torch(module, inputs)
    cm = leptonc.compile(graph)
    compile_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "mlp.lep")
        cm.save(path)
        cm = leptonc.load(path)  # run what a deployment would run: the saved artifact

    y = cm(x)
    ref = leptonc.run_reference(graph, x)[0]
    with torch.inference_mode():
        eager = module(*inputs).numpy()
    arena, total = cm.memory_report()
    print(f"model: examples/mlp.py:build, input {list(x.shape)}, {len(cm.executor.kernel_names)} kernels, "
          f"compiled in {compile_s:.2f} s")
    for name, ms in cm.profile(x):
        print(f"  kernel {name}: {ms * 1e3:.3f} ms")
    print(f"memory: arena {arena} bytes for intermediates totalling {total} bytes")
    print(f"max |leptonc - reference interpreter| = {np.abs(y - ref).max():.3g}")
    print(f"max |leptonc - eager torch|           = {np.abs(y - eager).max():.3g}")

    with torch.inference_mode():
        eager_ms = median_ms(lambda: module(*inputs))
    lep_ms = median_ms(lambda: cm(x))
    print(f"median of 30 runs, {THREADS} threads: eager torch {eager_ms:.3f} ms, leptonc {lep_ms:.3f} ms "
          f"({eager_ms / lep_ms:.2f}x eager)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
