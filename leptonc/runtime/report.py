"""Human-readable reports on a compiled model: what `leptonc inspect` and `leptonc run --profile` print."""
from __future__ import annotations

import statistics
import time

from .accuracy import format_accuracy
from .compiled import CompiledModel
from .executor import Executor


def _sig(entries) -> str:
    return ", ".join(f"%{x['name']}: {x['dtype']}[{', '.join(str(d) for d in x['shape'])}]" for x in entries)


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def inspect_text(cm: CompiledModel) -> str:
    """Manifest, signature, pipeline, kernels with their fused ops, fusion report and memory."""
    m = cm.manifest
    if m["target"] == "stablehlo":
        return _stablehlo_text(cm)
    prog = m["program"]
    lines = [f"format version {m['format_version']}, leptonc {m['leptonc_version']}, target {m['target']}",
             f"built by: {m.get('compiler', '?')}",
             f"required CPU features: {', '.join(m.get('cpu_features', [])) or 'none'}",
             f"inputs:  {_sig(m['signature']['inputs'])}",
             f"outputs: {_sig(m['signature']['outputs'])}",
             f"symbols: {', '.join(m['signature']['symbols']) or 'none (static shapes)'}",
             f"pipeline: {m['pipeline']}",
             f"weights: {len(prog['weights'])} tensors, {_mib(sum(w.nbytes for w in cm.weights.values()))}",
             "", f"kernels ({len(prog['kernels'])}):"]
    for k in prog["kernels"]:
        lines.append(f"  {k['name']} [{k['kind']}]")
        for op in k["ops"]:
            lines.append(f"      {op}")
    lines += ["", f"unfused producer/consumer pairs ({len(prog['unfused'])}):"]
    for p in prog["unfused"]:
        lines.append(f"  {p['producer']} -> {p['consumer']}: {p['reason']}")
    bindings = m.get("example_bindings") or {s: 1 for s in m["signature"]["symbols"]}
    arena, total = cm.memory_report(bindings)
    at = ", ".join(f"{k}={v}" for k, v in bindings.items())
    lines += ["", f"memory{' at ' + at if at else ''}: arena {_mib(arena)} for {len(prog['intermediates'])} "
                  f"intermediates totalling {_mib(total)}"
                  + (f" ({total / arena:.1f}x saved by sharing)" if arena else "")]
    if "accuracy" in m:
        lines += ["", format_accuracy(m["accuracy"])]
    if m["target"] == "triton":
        lines += ["", "Triton source of each kernel (launchers and helpers: kernels.py in the artifact):"]
        for source in cm.kernel_sources().values():
            lines += ["", source]
    members = m.get("members", {})
    lines += ["", "members (sha256):"] + [f"  {name}: {digest}" for name, digest in sorted(members.items())]
    return "\n".join(lines) + "\n"


def _stablehlo_text(cm) -> str:
    """A stablehlo artifact: one module (specialized to the example sizes) instead of kernels."""
    m = cm.manifest
    meta = m["stablehlo"]
    sizes = ", ".join(f"{k}={v}" for k, v in meta["bindings"].items())
    lines = [f"format version {m['format_version']}, leptonc {m['leptonc_version']}, target stablehlo",
             f"inputs:  {_sig(m['signature']['inputs'])}",
             f"outputs: {_sig(m['signature']['outputs'])}",
             f"symbols: {', '.join(m['signature']['symbols']) or 'none (static shapes)'}",
             f"pipeline: {m['pipeline']}",
             f"weights: {len(meta['weights'])} module arguments, "
             f"{_mib(sum(cm.graph.constants[n].nbytes for n in meta['weights']))}",
             "", f"StableHLO module (model.mlir){', specialized to ' + sizes if sizes else ''}:", "", cm.source]
    members = m.get("members", {})
    lines += ["members (sha256):"] + [f"  {name}: {digest}" for name, digest in sorted(members.items())]
    return "\n".join(lines) + "\n"


def profile_text(cm: CompiledModel, inputs, repeat: int = 10) -> str:
    """Time per kernel, most expensive first, with its share of a whole run called from Python (which adds input
    checks and output allocation to the kernels). On the cpu target kernels and run come from the same run, the
    median of `repeat`, so the shares add up to the kernels' total and the rest is the call's own time."""
    executor = getattr(cm, "executor", None)
    if isinstance(executor, Executor):
        rows, run = executor.profile(inputs, repeat, with_run=True)
        rows = sorted(rows, key=lambda kv: -kv[1])
    else:  # (the other targets time their kernels alone: shares of the kernels' total)
        rows, run = cm.profile(*inputs, repeat=repeat), None
    total = sum(t for _, t in rows)
    whole = run or total or 1e-12
    lines = [f"{'kernel':<48} {'ms':>9} {'%':>6}"]
    for name, t in rows:
        lines.append(f"{name:<48} {t * 1e3:>9.3f} {100 * t / whole:>6.1f}")
    lines.append(f"{'total of the kernels':<48} {total * 1e3:>9.3f} {100 * total / whole:>6.1f}")
    if run is not None:
        lines.append(f"{'the call from Python around them':<48} {(run - total) * 1e3:>9.3f} "
                     f"{100 * (run - total) / whole:>6.1f}")
        lines.append(f"{'whole run (the median of ' + str(repeat) + ')':<48} {run * 1e3:>9.3f} {100.0:>6.1f}")
    else:
        lines.append(f"{'median run, called from Python (other runs)':<48} "
                     f"{median_run_seconds(cm, inputs, repeat) * 1e3:>9.3f}")
    return "\n".join(lines) + "\n"


def median_run_seconds(cm: CompiledModel, inputs, repeat: int) -> float:
    times = []
    for _ in range(max(repeat, 1)):
        t0 = time.perf_counter()
        cm.run(*inputs)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
