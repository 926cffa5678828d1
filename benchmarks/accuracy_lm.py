"""The LM section of benchmarks/accuracy.py: weight-only quantization of the trained byte-level LM
(benchmarks/trained_lm.py), round to nearest against GPTQ.

    python benchmarks/accuracy.py --sections lm [--quick]

Per pipeline: held-out perplexity and its increase over our fp32 compile, artifact size, the time of one
batch against our fp32 (medians of runs taken in turns), and the compile time (seconds, the calibrated
passes included, numpy's BLAS on one thread; the compile's own accuracy check off, the perplexity is the
check). The calibration samples are windows of the training text; the perplexity is measured on the
held-out files.
"""
from __future__ import annotations

import os
import tempfile
import time

import numpy as np

from leptonc.bench import median_seconds_in_turns

BATCH = 8
PIPELINES = [
    ("fp32", None),
    ("int8 RTN", "quantize{weights=int8}"),
    ("int8 GPTQ", "quantize{weights=int8,method=gptq}"),
    ("int4 g128 RTN", "quantize{weights=int4,group=128}"),
    ("int4 g128 GPTQ", "quantize{weights=int4,group=128,method=gptq}"),
]


def run(quick: bool = False) -> list[str]:
    import torch
    from threadpoolctl import threadpool_limits

    import leptonc
    from benchmarks.trained_lm import SEQ, byte_lm, perplexity

    lm = byte_lm(d=32, layers=1, steps=20, batch=4, packages=("json",)) if quick else byte_lm()
    windows = 2 * BATCH if quick else 64
    calibration = lm.calibration(BATCH if quick else 64, batch=BATCH)
    x = np.frombuffer(lm.eval_text[:BATCH * SEQ], np.uint8).astype(np.int64).reshape(BATCH, SEQ)
    with torch.no_grad():
        eager = perplexity(lambda ids: lm.module(torch.from_numpy(ids)).numpy(), lm.eval_text, BATCH,
                           limit=windows)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, passes in PIPELINES:
            t0 = time.perf_counter()
            with threadpool_limits(1, user_api="blas"):  # numpy's BLAS on a busy machine: one thread is faster
                cm = leptonc.compile(lm.module, (torch.from_numpy(x),), passes=passes, quiet=True, cache=False,
                                     accuracy=False, calibration=calibration if passes and "gptq" in passes else None)
            compile_s = time.perf_counter() - t0
            path = os.path.join(tmp, f"{len(rows)}.lep")
            cm.save(path)
            rows.append((name, cm, perplexity(lambda ids: cm(ids), lm.eval_text, BATCH, limit=windows),
                         os.path.getsize(path), compile_s))
    times = median_seconds_in_turns([r[1] for r in rows], x, runs=3 if quick else 15)
    base_ppl, base_size, base_t = rows[0][2], rows[0][3], times[0]
    lines = ["## LM: weight-only int8/int4, round to nearest vs GPTQ", "",
             f"Byte-level transformer LM ({_describe(lm.module)}), trained seeded on {len(lm.train_text) / 1e6:.2f} MB "
             f"of Python standard library sources ({'trained in %.0f s' % lm.train_s if lm.train_s else 'from the cache'}); "
             f"perplexity over {windows} held-out windows of {SEQ} bytes (files never trained on), torch eager "
             f"fp32 {eager:.4f}. GPTQ calibrates on {len(calibration) * BATCH} training windows "
             f"({len(calibration) * BATCH * SEQ} tokens). Time: one batch [{BATCH}, {SEQ}].", "",
             "| pipeline | perplexity | vs fp32 | artifact | size / fp32 | time / fp32 | compile s |",
             "|---|---|---|---|---|---|---|"]
    for (name, _, ppl, size, compile_s), t in zip(rows, times):
        lines.append(f"| {name} | {ppl:.4f} | {(ppl / base_ppl - 1) * 100:+.2f}% | {size / 1e6:.2f} MB | "
                     f"{size / base_size:.2f}x | {t / base_t:.2f}x | {compile_s:.1f} |")
    by = {name: ppl for name, _, ppl, _, _ in rows}
    rtn, gptq = by["int4 g128 RTN"] - base_ppl, by["int4 g128 GPTQ"] - base_ppl
    lines += ["", _verdict(rtn, gptq, base_ppl),
              "Time is the median of runs taken in turns (above 1: slower than our fp32); the machine was shared, "
              "read it as a ratio.", ""]
    return lines


def _verdict(rtn: float, gptq: float, base: float) -> str:
    """The acceptance line: GPTQ's perplexity increase at most half of round to nearest's, at most 5%."""
    half = gptq <= rtn / 2
    return (f"int4 g128: round to nearest raises the perplexity by {rtn:+.4f} ({rtn / base * 100:+.2f}%), GPTQ "
            f"by {gptq:+.4f} ({gptq / base * 100:+.2f}%): {'at most' if half else 'more than'} half of round to "
            f"nearest's increase, {'within' if gptq <= 0.05 * base else 'not within'} 5% of fp32.")


def _describe(module) -> str:
    d = module.embed.embedding_dim
    params = sum(p.numel() for p in module.parameters())
    return f"{len(module.blocks)} layers, d={d}, {module.blocks[0].heads} heads, {params / 1e6:.2f} M parameters"


