"""The vision section of the accuracy report (benchmarks/accuracy.py): static int8 on trained classifiers.

    python benchmarks/accuracy.py --sections vision [--quick]

For the digits CNN and the breast cancer MLP (benchmarks/trained_vision.py), each pipeline's test accuracy,
artifact size, time per call (batch 1, and the whole test split as one batch: the models are so small that
a batch-1 call is mostly call overhead) and compile time:
  - leptonc fp32; leptonc round-to-nearest int8 weight-only (quantize{weights=int8}: linear layers only);
  - leptonc W8A8 static (quantize{weights=int8,activations=int8-static,observer=...}) with each observer, and
    with min-max and reduce_range=true (7-bit weights, which the AVX2 kernels sum in pairs in int16);
  - ONNX Runtime fp32, quantize_static (QDQ, uint8 activations, int8 weights per channel, min-max
    calibration on the same calibration samples) and quantize_dynamic (int8 weights).
The batch models are calibrated with the same samples, tiled to the batch size (same ranges for min-max).
"""
from __future__ import annotations

import os
import tempfile
import time

import numpy as np

import leptonc
from benchmarks.precision import artifact_bytes
from benchmarks.trained_vision import Trained, digits_cnn, mlp_classifier
from leptonc.bench import PAUSE_S, ort_session

STATIC = "quantize{{weights=int8,activations=int8-static,observer={}}}"
OBSERVERS = ("minmax", "percentile", "mse")
REDUCED = "quantize{weights=int8,activations=int8-static,observer=minmax,reduce_range=true}"
ACCEPTANCE = ("leptonc W8A8 static, minmax", "leptonc W8A8 static, minmax, reduce_range")


def _threads() -> int:
    return int(os.environ.get("OMP_NUM_THREADS", "2"))


def timed(systems: dict, runs: int, warmup: int = 3) -> dict[str, tuple[float, float]]:
    """(median wall ms, median CPU ms of this process) per call of each function, calls taken in turns (after
    bench.PAUSE_S with several threads, so that one system's spinning threads do not take the next one's cores).
    On a loaded machine the CPU time is the steadier figure: it leaves out the time spent waiting for a core."""
    for fn in systems.values():
        for _ in range(warmup):
            fn()
    wall, cpu = {k: [] for k in systems}, {k: [] for k in systems}
    for _ in range(runs):
        for name, fn in systems.items():
            if _threads() > 1:
                time.sleep(PAUSE_S)
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[name].append((time.perf_counter() - t0) * 1e3)
            cpu[name].append((time.process_time() - c0) * 1e3)
    return {k: (float(np.median(wall[k])), float(np.median(cpu[k]))) for k in systems}


def _export(module, example: np.ndarray, path: str) -> None:
    """The module as one self-contained ONNX file (the weights inside it, so that its size is the model's)."""
    import onnx
    import torch

    torch.onnx.export(module, (torch.from_numpy(example),), path, input_names=["x"], output_names=["logits"],
                      dynamo=True, verbose=False)
    onnx.save(onnx.load(path), path, save_as_external_data=False)


def _ort_models(model: Trained, batch: int, tmp: str) -> dict[str, tuple[str, str]]:
    """(batch-1 path, batch path) of the ONNX Runtime models: fp32, quantize_static (QDQ), quantize_dynamic."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self, samples):
            self.samples = iter(samples)

        def get_next(self):
            return next(self.samples, None)

    out = {}
    for b in (1, batch):
        fp32 = os.path.join(tmp, f"fp32-{b}.onnx")
        _export(model.module, model.test_x[:b], fp32)
        static, dynamic = os.path.join(tmp, f"static-{b}.onnx"), os.path.join(tmp, f"dynamic-{b}.onnx")
        quantize_static(fp32, static, Reader({"x": s} for s in _calibration(model, b)),
                        quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, per_channel=True)
        quantize_dynamic(fp32, dynamic, weight_type=QuantType.QInt8)
        for name, path in (("onnxruntime fp32", fp32), ("onnxruntime quantize_static (QDQ)", static),
                           ("onnxruntime quantize_dynamic", dynamic)):
            out.setdefault(name, []).append(path)
    return {k: tuple(v) for k, v in out.items()}


def _calibration(model: Trained, batch: int) -> list[np.ndarray]:
    """The calibration samples as inputs of a batch-`batch` model: one each for batch 1, else tiled into one
    batch (the same samples, repeated)."""
    cal = model.calibration
    if batch == 1:
        return [c[None] for c in cal]
    return [np.resize(cal, (batch,) + cal.shape[1:])]


def _ours(model: Trained, passes: str | None, batch: int):
    """(compiled batch-1 model, compiled batch model, compile seconds of the batch-1 model)."""
    import torch

    models, seconds = [], 0.0
    for b in (1, batch):
        cal = [(c,) for c in _calibration(model, b)] if passes and "static" in passes else None
        t0 = time.perf_counter()
        models.append(leptonc.compile(model.module, (torch.from_numpy(model.test_x[:b]),), passes=passes,
                                      calibration=cal, quiet=True, cache=False, accuracy=False))
        seconds = seconds or time.perf_counter() - t0
    return models[0], models[1], seconds


def _section(model: Trained, runs: int) -> list[str]:
    x, batch = model.test_x, len(model.test_x)
    one = x[:1]
    pipelines = {"leptonc fp32": None, "leptonc int8 weight-only (RTN)": "quantize{weights=int8}"}
    pipelines.update({f"leptonc W8A8 static, {o}": STATIC.format(o) for o in OBSERVERS})
    pipelines[ACCEPTANCE[1]] = REDUCED
    rows = {}
    for name, passes in pipelines.items():
        m1, mb, secs = _ours(model, passes, batch)
        rows[name] = dict(call1=lambda m1=m1: m1(one), callb=lambda mb=mb: mb(x), predict=mb,
                          size=artifact_bytes(m1), compile=f"{secs:.2f}", passes=passes or "")
    with tempfile.TemporaryDirectory(prefix="leptonc-accuracy-vision-") as tmp:
        for name, (p1, pb) in _ort_models(model, batch, tmp).items():
            s1, sb = ort_session(p1, _threads()), ort_session(pb, _threads())
            rows[name] = dict(call1=lambda s1=s1: s1.run(None, {"x": one}), callb=lambda sb=sb: sb.run(None, {"x": x}),
                              predict=lambda a, sb=sb: sb.run(None, {"x": a})[0], size=os.path.getsize(p1),
                              compile="", passes="")
        t1 = timed({k: r["call1"] for k, r in rows.items()}, runs)
        tb = timed({k: r["callb"] for k, r in rows.items()}, max(3, runs // 4))
    fp32 = model.accuracy(rows["leptonc fp32"]["predict"])
    labels = {k: np.argmax(np.asarray(r["predict"](x)), axis=-1) for k, r in rows.items()}
    base1, baseb = t1["leptonc fp32"], tb["leptonc fp32"]
    lines = [f"### {model.name}: {len(x)} test samples, {len(model.calibration)} calibration samples", "",
             "| pipeline | accuracy % | vs fp32 (points) | answers unlike fp32's | artifact KiB | batch 1: wall us | CPU us | CPU vs our fp32 "
             f"| batch {batch}: wall ms | CPU ms | CPU vs our fp32 | compile s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        acc = model.accuracy(r["predict"])
        (w1, c1), (wb, cb) = t1[name], tb[name]
        flips = int(np.sum(labels[name] != labels["leptonc fp32"]))
        lines.append(f"| {name} | {acc:.2f} | {acc - fp32:+.2f} | {flips} | {r['size'] / 1024:.1f} | {w1 * 1e3:.0f} | "
                     f"{c1 * 1e3:.0f} | {base1[1] / c1:.2f}x | {wb:.2f} | {cb:.2f} | {baseb[1] / cb:.2f}x | "
                     f"{r['compile']} |")
    ort = "onnxruntime quantize_static (QDQ)"
    for ours in ACCEPTANCE:
        lines.append("")
        acc, acc_ort = model.accuracy(rows[ours]["predict"]), model.accuracy(rows[ort]["predict"])
        lines.append(f"{ours} against the acceptance: {acc - fp32:+.2f} points from fp32 (bound: 0.5), "
                     f"{acc - acc_ort:+.2f} against ONNX Runtime quantize_static on the same calibration samples; "
                     f"CPU time per call {base1[1] / t1[ours][1]:.2f}x (batch 1) and {baseb[1] / tb[ours][1]:.2f}x "
                     f"(batch {batch}) our fp32's speed, {t1[ort][1] / t1[ours][1]:.2f}x and "
                     f"{tb[ort][1] / tb[ours][1]:.2f}x ONNX Runtime quantize_static's.")
    return lines + ["", "Passes: " + "; ".join(f"{k}: `{r['passes']}`" for k, r in rows.items() if r["passes"]) + ".",
                    ""]


def run(quick: bool = False) -> list[str]:
    runs = 5 if quick else 200
    models = [digits_cnn(epochs=2), mlp_classifier(epochs=2)] if quick else [digits_cnn(), mlp_classifier()]
    lines = ["## Vision: static int8 (W8A8) on trained classifiers", "",
             "Accuracy on the held-out test split; times are medians of calls taken in turns (batch 1: "
             f"{runs} rounds; whole split: {max(3, runs // 4)}), leptonc and ONNX Runtime on {_threads()} "
             "thread(s): wall time, and the CPU time of the process per call (steadier on a loaded machine: it "
             "leaves out waiting for a core); speed-ups are CPU-time ratios. Compile time is the batch-1 "
             "model's (calibration included, accuracy check off); artifact size: our .lep file, ONNX Runtime's "
             ".onnx file.", ""]
    for model in models:
        lines += _section(model, runs)
    return lines
