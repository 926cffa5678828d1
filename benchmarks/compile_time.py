"""Compile times, fp32 against lossy, and the accuracy report the lossy compile writes.

    python benchmarks/compile_time.py [--models mobilevit,bert] [--passes 'quantize{weights=int8}']
                                      [--label NAME] [--append]

  mobilevit  MobileViTForImageClassification(MobileViTConfig()) (5.6M parameters), random weights, 1 x 3 x 256 x 256,
             its batch norms' statistics taken on random images and its head scaled so that the logits have
             std 1 (as initialized, the logits are ~1e-41, subnormal: their errors would mean nothing)
  bert       BertForSequenceClassification(BertConfig()) (BERT-base with a 2-way head), random weights, seq 128

Each model is compiled for the cpu target without any cache (neither the compile cache nor the C build cache),
first fp32 and then with the lossy passes; a time is the whole `leptonc.compile` call, from the torch module to
the compiled model (the torch.export import included). torch.compile's time is its first call with its caches
disabled (leptonc.bench's, as benchmarks/run.py takes it). Writes benchmarks/results/<date>-compile-time-<cpu>.md
(with --append, adds a table to it: figures of one machine before and after a change).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import leptonc  # noqa: E402
from leptonc.bench import cpu_name, prepare_system, write_results  # noqa: E402


def mobilevit():
    """MobileViT-small's shape with a 1000-way classification head, random weights."""
    from transformers import MobileViTConfig, MobileViTForImageClassification

    torch.manual_seed(0)
    model = MobileViTForImageClassification(MobileViTConfig())
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        for bn in model.modules():
            if isinstance(bn, torch.nn.BatchNorm2d):
                bn.reset_running_stats()
                bn.momentum = None  # (the plain average over the batches run in train mode)
        model.train()(torch.randn(4, 3, 256, 256))
        model.eval()
        model.classifier.weight /= float(model(x).logits.std())
    return model, (x,)


def bert():
    """BERT-base with a sequence classification head, random weights, batch 1, seq 128."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig()).eval()
    return model, (torch.randint(0, 30522, (1, 128)),)


MODELS = {"mobilevit": mobilevit, "bert": bert}


class Logits(torch.nn.Module):
    """The model's logits alone (transformers' heads return an output object)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).logits


def timed_compile(module, inputs, passes):
    t0 = time.perf_counter()
    cm = leptonc.compile(module, inputs, passes=passes, cache=False, quiet=True)
    return time.perf_counter() - t0, cm


def measure(name: str, passes: str) -> list[str]:
    model, inputs = MODELS[name]()
    module = Logits(model)
    params = sum(p.numel() for p in model.parameters())
    fp32_s, _ = timed_compile(module, inputs, None)
    lossy_s, cm = timed_compile(module, inputs, passes)
    _, inductor_s = prepare_system("inductor", module, inputs, os.cpu_count() or 1)
    report = cm.manifest.get("accuracy") or {}
    rows = []
    for o in report.get("outputs", []):
        top1 = f"{100 * o['top1_agreement']:.1f}%" if o.get("top1_agreement") is not None else "-"
        rows.append(f"| {name} ({params / 1e6:.1f}M) | {fp32_s:.1f} | {lossy_s:.1f} | {lossy_s / fp32_s:.2f}x | "
                    f"{inductor_s:.1f} | {report.get('samples', '-')} | {o['max_abs_error']:.4g} | {o['max_rel_error']:.4g} | "
                    f"{o['sqnr_db']:.2f} | {top1} |")
    if not rows:
        rows.append(f"| {name} ({params / 1e6:.1f}M) | {fp32_s:.1f} | {lossy_s:.1f} | {lossy_s / fp32_s:.2f}x | "
                    f"{inductor_s:.1f} | no report | | | | |")
    print("\n".join(rows), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="mobilevit,bert")
    parser.add_argument("--passes", default="quantize{weights=int8}")
    parser.add_argument("--label", default="", help="a heading for this table (e.g. 'before', 'after')")
    parser.add_argument("--append", action="store_true", help="add the table to today's results file")
    args = parser.parse_args()
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    load_before = os.getloadavg()[0]
    rows = []
    for name in names:
        rows += measure(name, args.passes)
    command = " ".join(["python benchmarks/compile_time.py"] + sys.argv[1:])
    load = f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    text = (f"\n## {args.label or 'compile times'}\n\n`{command}` on {cpu_name()}, {os.cpu_count()} cores, "
            f"leptonc {leptonc.__version__}, lossy passes `{args.passes}`, load average (1 min) {load}\n\n"
            "| model | fp32 compile s | lossy compile s | lossy / fp32 | torch.compile s | samples | max abs err | "
            "max rel err | SQNR dB | top-1 |\n|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
    path = write_results(text, os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"), "compile-time",
                         append=args.append)
    print("written to", path)


if __name__ == "__main__":
    main()
