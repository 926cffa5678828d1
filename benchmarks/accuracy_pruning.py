"""The pruning section of benchmarks/accuracy.py: calibrated one-shot pruning (SparseGPT, Wanda) against
magnitude pruning on the trained byte-level LM, and block pruning plus distillation recovery
(leptonc.recover) on the trained classifiers.

    python benchmarks/accuracy.py --sections pruning [--quick]

(a) LM (benchmarks/trained_lm.py): 50% unstructured and 2:4 of every linear layer but the output head, by
    magnitude, Wanda and SparseGPT; held-out perplexity against our fp32 compile, and each compile's time
    (the calibrated passes included).
(b) digits CNN and breast-cancer MLP (benchmarks/trained_vision.py): 90% of all their weights pruned in
    blocks (magnitude, SparseGPT), convolutions included (a conv's weight as W [O, C * kh * kw]): every
    layer whose weight divides into the blocks is pruned to the fraction that makes 90% of all weights,
    then recovered by distillation on the calibration split; test accuracy against our fp32 compile, and
    the pruned model's speed against our dense fp32 one (sparse kernels forced, one batch, medians of runs
    taken in turns, two rounds).
"""
from __future__ import annotations

import math
import time
import warnings

import numpy as np

from leptonc.bench import median_seconds_in_turns

ALL_PRUNED = 0.9    # the fraction of all of a classifier's weights pruned

LM_PIPELINES = [
    ("fp32", None),
    ("50% magnitude", "prune{method=magnitude,sparsity=0.5,skip=last}"),
    ("50% Wanda", "prune{method=wanda,sparsity=0.5,skip=last}"),
    ("50% SparseGPT", "prune{method=sparsegpt,sparsity=0.5,skip=last}"),
    ("2:4 magnitude", "prune{method=nm,n=2,m=4,skip=last}"),
    ("2:4 Wanda", "prune{method=wanda,pattern=nm,n=2,m=4,skip=last}"),
    ("2:4 SparseGPT", "prune{method=sparsegpt,pattern=nm,n=2,m=4,skip=last}"),
]
VISION_BATCH = 32


def run(quick: bool = False) -> list[str]:
    from leptonc.passes.sparse_layers import SparsityWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SparsityWarning)
        return lm_section(quick) + vision_section(quick)


# ---------------------------------------------------------------- (a) the LM

def lm_section(quick: bool) -> list[str]:
    import torch

    import leptonc
    from benchmarks.trained_lm import SEQ, byte_lm, perplexity

    lm = byte_lm(d=32, layers=1, steps=20, batch=4, packages=("json",)) if quick else byte_lm()
    batch = 8
    calibration = lm.calibration(batch if quick else 64, batch=batch)
    windows = 2 * batch if quick else 64
    rows = []
    for name, passes in LM_PIPELINES:
        t0 = time.perf_counter()
        cm = leptonc.compile(lm.module, tuple(torch.from_numpy(a) for a in calibration[0]), passes=passes,
                             calibration=calibration if passes else None, quiet=True, cache=False, accuracy=False)
        compile_s = time.perf_counter() - t0
        rows.append((name, perplexity(cm, lm.eval_text, batch, limit=windows), compile_s))
    base = rows[0][1]
    lines = ["## Pruning the LM: SparseGPT and Wanda against magnitude", "",
             f"The trained byte-level LM of the LM section; every linear layer but the output head pruned. "
             f"Calibration: {len(calibration) * batch} training windows of {SEQ} bytes; perplexity over {windows} "
             "held-out windows, on our cpu compile. Compile time includes the calibrated pass (SparseGPT and Wanda run "
             "each calibration sample through the reference interpreter once per group of layers reading the "
             "same input).", "",
             "| pipeline | perplexity | vs fp32 | compile s |", "|---|---|---|---|"]
    for name, ppl, compile_s in rows:
        lines.append(f"| {name} | {ppl:.4f} | {(ppl / base - 1) * 100:+.2f}% | {compile_s:.1f} |")
    by = {name: ppl for name, ppl, _ in rows}
    lines.append("")
    for pattern in ("50%", "2:4"):
        mag = by[f"{pattern} magnitude"]
        for method in ("Wanda", "SparseGPT"):
            ppl = by[f"{pattern} {method}"]
            lines.append(f"- {pattern} {method}: {(ppl / base - 1) * 100:+.2f}% over fp32 "
                         f"({'within' if ppl <= 1.1 * base else 'NOT within'} 10%), "
                         f"{'better' if ppl < mag else 'NOT better'} than magnitude ({(mag / base - 1) * 100:+.2f}%).")
    return lines + [""]


# ---------------------------------------------------------------- (b) the classifiers

def vision_section(quick: bool) -> list[str]:
    from benchmarks.trained_vision import digits_cnn, mlp_classifier

    lines = ["## Block pruning plus distillation recovery on the classifiers", "",
             f"{ALL_PRUNED:.0%} of all weights pruned in blocks, convolutions included (a conv's weight as "
             "W [O, C * kh * kw]; every layer whose W divides into the blocks is pruned, to the fraction that makes "
             f"{ALL_PRUNED:.0%} of all weights), one-shot (magnitude or SparseGPT on the "
             "calibration split: 1024 training images of the CNN, 256 training rows of the MLP, unlabelled), then "
             "recovered by `leptonc.recover` (KL divergence to the fp32 model's logits on the calibration split, "
             "Adam at 1e-2 decayed to 0 along a cosine, masks fixed, every parameter trained) and compiled with the "
             "same passes. Test accuracy of "
             f"our cpu compile; time of one batch of {VISION_BATCH} against our dense fp32 compile (medians of runs "
             "taken in turns, two rounds, the machine shared: read them as ratios).", ""]
    for trained, block in ((digits_cnn(calibration=1024), "1x8"), (mlp_classifier(calibration=256), "1x2")):
        lines += _classifier_rows(trained, block, quick)
    return lines


def _classifier_rows(trained, block: str, quick: bool) -> list[str]:
    import torch

    import leptonc

    cal = trained.calibration[:len(trained.calibration) // VISION_BATCH * VISION_BATCH]
    calibration = [(cal[i:i + VISION_BATCH],) for i in range(0, len(cal), VISION_BATCH)]
    example = (torch.from_numpy(calibration[0][0]),)
    steps = 20 if quick else 1600
    weights, prunable = _weight_counts(trained.module, block)
    sparsity = min(math.ceil(ALL_PRUNED * weights / prunable * 1000) / 1000, 0.999)
    prune = "prune{{method={method},{pattern}block={block},sparsity=%s,skip=none,kernels=sparse}}" % sparsity
    rows = []
    for name, passes, recover in [
            ("fp32", None, False),
            (f"90% {block} magnitude", prune.format(method="block", pattern="", block=block), False),
            (f"90% {block} SparseGPT", prune.format(method="sparsegpt", pattern="pattern=block,", block=block), False),
            (f"90% {block} magnitude + recovery", prune.format(method="block", pattern="", block=block), True),
            (f"90% {block} SparseGPT + recovery",
             prune.format(method="sparsegpt", pattern="pattern=block,", block=block), True)]:
        t0 = time.perf_counter()
        if recover:
            r = leptonc.recover(trained.module, passes, calibration, steps=steps, loss="kl", lr=1e-2)
            zeros = sum(int((p == 0).sum()) for n, p in r.module.named_parameters() if n.endswith("weight"))
            cm, note = r.compiled, (f"{steps} steps, loss {r.losses[0]:.3f} -> {r.losses[-1]:.3f}; "
                                    f"{zeros / weights:.1%} of the weights zero")
        else:
            cm = leptonc.compile(trained.module, example, passes=passes, calibration=calibration if passes else None,
                                 quiet=True, cache=False, accuracy=False)
            note = ""
        seconds = time.perf_counter() - t0
        rows.append((name, cm, trained.accuracy(lambda x: _batched(cm, x)), seconds, note))
    rounds = [median_seconds_in_turns([r[1] for r in rows], calibration[0][0], runs=3 if quick else 30, calls=20)
              for _ in range(2)]
    base_acc = rows[0][2]
    out = [f"### {trained.name}", "",
           f"{weights} weights, {prunable} of them ({prunable / weights:.0%}) in layers whose W divides into "
           f"{block} blocks, pruned at {sparsity:.1%} each: {ALL_PRUNED:.0%} of all. fp32 test accuracy "
           f"{base_acc:.2f}% ({len(trained.test_y)} samples).", "",
           "| pipeline | test accuracy | vs fp32 | time vs dense fp32 (round 1, 2) | compile (+ recovery) s "
           "| recovery |",
           "|---|---|---|---|---|---|"]
    for i, (name, _, acc, seconds, note) in enumerate(rows):
        ratios = ", ".join(f"{times[i] / times[0]:.2f}x" for times in rounds)
        out.append(f"| {name} | {acc:.2f}% | {acc - base_acc:+.2f} | {ratios} | {seconds:.1f} | {note} |")
    best = max(rows[3:], key=lambda r: r[2])
    out += ["", f"Best recovered: {best[0]}, {best[2] - base_acc:+.2f} points against fp32: "
                f"{'within' if best[2] >= base_acc - 1.0 else 'NOT within'} 1 point.", ""]
    return out


def _weight_counts(module, block: str) -> tuple[int, int]:
    """(weights of all linear and conv layers, weights of those whose W [O, K] divides into `block` blocks)."""
    import torch

    bh, bw = (int(v) for v in block.split("x"))
    weights = prunable = 0
    for m in module.modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)):
            w = m.weight.reshape(m.weight.shape[0], -1)
            weights += w.numel()
            if w.shape[0] % bh == 0 and w.shape[1] % bw == 0 and (w.shape[0] // getattr(m, "groups", 1)) % bh == 0:
                prunable += w.numel()
    return weights, prunable


def _batched(cm, x: np.ndarray) -> np.ndarray:
    """cm (compiled for batches of VISION_BATCH) over every row of x, the last batch padded."""
    out = []
    for i in range(0, len(x), VISION_BATCH):
        chunk = x[i:i + VISION_BATCH]
        pad = VISION_BATCH - len(chunk)
        if pad:
            chunk = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], chunk.dtype)])
        out.append(np.asarray(cm(chunk))[:VISION_BATCH - pad])
    return np.concatenate(out)


