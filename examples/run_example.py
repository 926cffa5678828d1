"""Compile the bundled example model (examples/mlp.py:build), run it, and print how close and how fast
it is: max error against the reference interpreter and against eager PyTorch, then leptonc and eager
PyTorch timed on the same inputs and the same number of threads, and a verdict a user can trust.

The timing warms both up, then interleaves them (one leptonc run, one eager run, alternating which goes
first), so that a change of load during the measurement hits both alike. It prints each one's median and
spread (10th to 90th percentile) and the spread of the paired ratios, says whether the difference is
larger than that noise, and warns when the machine was busy before the run or the spread is large.

    python examples/run_example.py [--runs N]
"""
from __future__ import annotations

import argparse
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

BUSY_LOAD = 0.5     # load average per core above which the machine counts as busy
WIDE_SPREAD = 0.25  # (p90 - p10) / median above which a timing counts as noisy


def interleaved_ms(fns, runs: int, warmup: int) -> np.ndarray:
    """[len(fns), runs] milliseconds: after `warmup` rounds, `runs` rounds that call every fn once,
    alternating the order (A B, B A, ...) so that neither always runs right after the other."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = np.zeros((len(fns), runs))
    for r in range(runs):
        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            t0 = time.perf_counter()
            fns[i]()
            times[i, r] = 1e3 * (time.perf_counter() - t0)
    return times


def spread(x: np.ndarray) -> tuple[float, float, float]:
    """(median, 10th percentile, 90th percentile)."""
    p10, p50, p90 = np.percentile(x, [10, 50, 90])
    return float(p50), float(p10), float(p90)


def verdict(ratios: np.ndarray) -> str:
    """Whether leptonc is faster or slower than eager beyond the noise of the paired ratios eager/leptonc."""
    mid, lo, hi = spread(ratios)
    noise = f"(eager/leptonc per pair: median {mid:.2f}x, p10-p90 {lo:.2f}-{hi:.2f}x)"
    if lo > 1:
        return f"leptonc is {mid:.2f}x as fast as eager torch, more than the noise {noise}"
    if hi < 1:
        return f"leptonc is {1 / mid:.2f}x slower than eager torch, more than the noise {noise}"
    return f"no clear difference: the noise is larger than the difference {noise}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=50, help="timed runs of each (default 50; fewer is quicker)")
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be at least 1")
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

    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] / cores
    warmup = max(1, args.runs // 10)
    with torch.inference_mode():
        eager_ms, lep_ms = interleaved_ms([lambda: module(*inputs), lambda: cm(x)], args.runs, warmup)
    print(f"timing: {args.runs} runs of each after {warmup} warm-up, interleaved, {THREADS} threads, "
          f"load average {load:.2f} per core before the run")
    noisy = []
    for name, ms in (("eager torch", eager_ms), ("leptonc", lep_ms)):
        mid, lo, hi = spread(ms)
        print(f"  {name:<12} median {mid:.3f} ms, p10-p90 {lo:.3f}-{hi:.3f} ms")
        if hi - lo > WIDE_SPREAD * mid:
            noisy.append(name)
    if load > BUSY_LOAD:
        print(f"warning: the machine was busy (load average {load:.2f} per core, above {BUSY_LOAD}): "
              f"the times are slower and noisier than on an idle machine")
    if noisy:
        print(f"warning: {' and '.join(noisy)} times spread widely (p90 - p10 above {WIDE_SPREAD:.0%} of the "
              f"median): something else ran beside them")
    print(f"verdict: {verdict(eager_ms / lep_ms)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
