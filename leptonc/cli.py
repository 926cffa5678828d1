"""The leptonc command line. A user error prints one line to stderr and exits 2
(a traceback only with --debug)."""
from __future__ import annotations

import argparse
import sys

from .api import TARGETS, check_target
from .ir.errors import LeptoncError, optional_dependency
from .passes.cli_args import add_pass_arguments


def _load_graph(spec: str):
    """A model spec (see frontends.import_model), or IR text in a .lir file."""
    if spec.endswith(".lir"):
        from .ir.parser import parse_ir

        with open(spec) as f:
            return parse_ir(f.read())
    from .frontends import import_model

    return import_model(spec)


def _cmd_ir(args) -> int:
    from .ir.dot import to_dot
    from .ir.printer import print_ir
    from .passes.cli_args import run_passes_from_args

    graph = run_passes_from_args(_load_graph(args.model), args)
    if args.emit in ("plan", "c", "triton"):
        text = _emitted_program(graph, args)
    elif args.emit == "stablehlo":
        from .codegen.stablehlo import emit_module
        from .codegen.stablehlo.specialize import symbols_of

        sizes = _parse_sizes(args.sizes)
        text = emit_module(graph, bindings={s: sizes.get(s, 1) for s in symbols_of(graph)})
    else:
        text = to_dot(graph) if args.format == "dot" else \
            print_ir(graph, constants="inline" if args.constants else "summary")
    if args.output and args.output.endswith(".svg"):
        _write_svg(text if args.format == "dot" else to_dot(graph), args.output)
    elif args.output:
        with open(args.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def _emitted_program(graph, args) -> str:
    """--emit plan (the fusion plan of --target), c or triton (the generated code)."""
    from .codegen.listing import KERNEL_TARGETS, lower, plan_text

    target = args.target or ("triton" if args.emit == "triton" else "cpu")
    if args.emit != "plan" and target != {"c": "cpu", "triton": "triton"}[args.emit]:
        raise LeptoncError(f"--emit {args.emit} is the code of the {'cpu' if args.emit == 'c' else 'triton'} "
                           f"target, not of --target {target}")
    if target not in KERNEL_TARGETS:
        raise LeptoncError(f"--emit plan: the {target} target has no fusion plan (XLA fuses its module; "
                           f"see --emit stablehlo); plans exist for {', '.join(KERNEL_TARGETS)}")
    lowered, program = lower(graph, target)
    return plan_text(lowered, program.plan, target) if args.emit == "plan" else program.source


def _parse_sizes(spec: str | None) -> dict[str, int]:
    """--sizes B=8,S=128 as {"B": 8, "S": 128}."""
    sizes = {}
    for item in (spec or "").split(","):
        name, sep, value = item.strip().partition("=")
        if not item.strip():
            continue
        if not sep or not value.strip().isdigit():
            raise LeptoncError(f"--sizes {spec!r}: expected SYMBOL=INT[,SYMBOL=INT...]")
        sizes[name.strip()] = int(value)
    return sizes


def _write_svg(dot_text: str, path: str) -> None:
    import shutil
    import subprocess

    dot = shutil.which("dot")
    if dot is None:
        raise LeptoncError(f"writing {path} as SVG needs Graphviz's `dot` program, which is not installed "
                           f"(write a .dot file instead: -o {path[:-4]}.dot)")
    done = subprocess.run([dot, "-Tsvg", "-o", path], input=dot_text, text=True, capture_output=True)
    if done.returncode != 0:
        raise LeptoncError(f"Graphviz `dot` failed on the graph: {done.stderr.strip()}")


def _cmd_bisect(args) -> int:
    from .bisect import bisect

    result = bisect(_load_graph(args.model), passes=args.passes, target=args.target)
    sys.stdout.write(str(result))
    if args.output and result.graph is not None:
        with open(args.output, "w") as f:
            f.write(result.reproducer)
    return 0 if result.culprit is None else 1


def _cmd_ops(args) -> int:
    from .ir import all_ops
    from .ir.target_support import support_matrix

    print(support_matrix(sorted(all_ops())))
    return 0


def _cmd_passes(args) -> int:
    from .passes import list_passes, plugin_failures

    for info in list_passes():
        origin = "" if info.origin == "builtin" else f"  [{info.origin}]"
        what = f" = {info.pipeline}{' (to a fixpoint)' if info.fixpoint else ''}" if info.is_pipeline else ""
        print(f"{info.name:<18} {info.description}{origin}{what}")
        for key, opt in info.options.items():
            print(f"{'':<20}{key}={opt.describe()}")
    for failure in plugin_failures():
        print(f"leptonc: warning: {failure}", file=sys.stderr)
    return 0


# -- compile / run / inspect / bench -----------------------------------------------------------

def _compile_inputs(spec: str, dynamic: list[str]):
    """(model, example inputs, dynamic_shapes) for leptonc.compile from a command-line model spec."""
    if spec.endswith(".lir"):
        if dynamic:
            raise LeptoncError("--dynamic applies to .onnx and FILE.py:FUNCTION models; a .lir graph "
                               "already names its symbolic dims")
        return _load_graph(spec), None, None
    if spec.endswith(".onnx"):
        return spec, None, dynamic or None
    from .frontends import load_python_model

    built = load_python_model(spec)
    module, inputs = built[0], built[1]
    dyn = built[2] if len(built) > 2 else None
    if dynamic:
        import torch

        dims = {name: torch.export.Dim(name) for name in dynamic}
        dyn = tuple({i: dims[name] for i, name in enumerate(dynamic) if i < x.dim()} for x in inputs)
    return module, inputs, dyn


def _check_output(output: str) -> None:
    """Refuse to overwrite an existing file that is not a leptonc artifact (the model itself, say)."""
    import os
    import zipfile

    if not os.path.exists(output):
        return
    try:
        with zipfile.ZipFile(output) as z:
            is_artifact = "manifest.json" in z.namelist()
    except (zipfile.BadZipFile, OSError):
        is_artifact = False
    if not is_artifact:
        raise LeptoncError(f"-o {output}: the file exists and is not a leptonc artifact; refusing to overwrite "
                           "it (remove it first, or choose another name)")


def _cmd_compile(args) -> int:
    import time

    import leptonc

    if args.stats:
        print("leptonc: note: `compile --stats` is a deprecated spelling of --fusion-report (--stats is per-pass "
              "statistics in `leptonc ir`)", file=sys.stderr)
    dynamic = [d.strip() for d in (args.dynamic or "").split(",") if d.strip()]
    _check_output(args.output)
    model, inputs, dyn = _compile_inputs(args.model, dynamic)
    t0 = time.perf_counter()
    cm = leptonc.compile(model, inputs, target=args.target, passes=args.passes, dynamic_shapes=dyn,
                         quiet=args.quiet, calibration=args.calibration,
                         accuracy=True if args.accuracy_samples is None else args.accuracy_samples)
    seconds = time.perf_counter() - t0
    cm.save(args.output)
    if args.report:
        from .runtime.accuracy import NOTHING_LOSSY, format_accuracy

        skipped = "no accuracy report: --accuracy-samples 0 skipped the check"
        print(format_accuracy(cm.manifest["accuracy"]) if "accuracy" in cm.manifest
              else skipped if args.accuracy_samples == 0 and args.passes else NOTHING_LOSSY)
    if "specialized_on" in cm.manifest:  # dynamic ops: its programs are built per value of their operands
        if not args.quiet:
            on = ", ".join(f"%{v}" for v in cm.manifest["specialized_on"]) or "the input sizes"
            print(f"wrote {args.output}: specialized at run time on {on} (a program per value), "
                  f"compiled in {seconds:.2f} s")
        return 0
    if args.target == "stablehlo":
        if args.fusion_report or args.stats:
            print("no fusion report: the stablehlo target writes one module, and XLA fuses it on its own")
        if not args.quiet:
            sizes = ", ".join(f"{k}={v}" for k, v in cm.manifest["stablehlo"]["bindings"].items())
            print(f"wrote {args.output}: one StableHLO module" + (f" (specialized to {sizes})" if sizes else "") +
                  f", compiled in {seconds:.2f} s")
        return 0
    if args.fusion_report or args.stats:
        print(cm.manifest["fusion_report"])
    arena, total = cm.memory_report()
    if not args.quiet:
        print(f"wrote {args.output}: {len(cm.kernel_names)} kernels, arena {arena} bytes "
              f"(intermediates {total} bytes), compiled in {seconds:.2f} s")
    return 0


RANDOM_INPUT_BYTES = 1 << 30  # the largest random input `leptonc run` makes


def _run_inputs(cm, specs: list[str], seed: int):
    import math

    import numpy as np

    from .ir import dims as D
    from .ir.dtypes import DType

    sig = cm.signature["inputs"]
    given = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            raise LeptoncError(f"--input {spec!r}: expected NAME=FILE.npy")
        if name not in [x["name"] for x in sig]:
            raise LeptoncError(f"--input {name}: the model has no input {name!r} "
                               f"(inputs: {', '.join(x['name'] for x in sig)})")
        given[name] = np.load(path, allow_pickle=False)
    bindings = dict(cm.manifest.get("example_bindings") or {})
    for x in sig:
        if x["name"] in given:
            for d, n in zip(x["shape"], given[x["name"]].shape):
                if isinstance(d, str) and d.isidentifier():
                    bindings.setdefault(d, n)
    rng = np.random.default_rng(seed)
    arrays = []
    for x in sig:
        if x["name"] in given:
            arrays.append(given[x["name"]])
            continue
        shape = [D.evaluate(d, {s: bindings.get(s, 1) for s in D.symbols(d)}) for d in x["shape"]]
        dtype = np.dtype(DType.parse(x["dtype"]).numpy)
        if math.prod(shape) * dtype.itemsize > RANDOM_INPUT_BYTES:
            raise LeptoncError(f"input {x['name']}: a random {x['dtype']}{shape} takes more than "
                               f"{RANDOM_INPUT_BYTES >> 20} MiB; give it with --input {x['name']}=FILE.npy")
        if dtype.kind == "f":
            arrays.append(rng.standard_normal(shape).astype(dtype))
        elif dtype.kind == "b":
            arrays.append(rng.random(shape) < 0.5)
        else:
            arrays.append(rng.integers(0, 2, size=shape).astype(dtype))
    return arrays


def _cmd_run(args) -> int:
    import os
    import re

    import numpy as np

    import leptonc
    from .runtime.report import profile_text

    cm = leptonc.load(args.artifact)
    names = [meta["name"] for meta in cm.signature["outputs"]]
    if args.output_dir:
        for name in names:  # (the IR's value names are plain already; this holds whatever loads)
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in (".", ".."):
                raise LeptoncError(f"--output-dir: output name {name!r} of {args.artifact} is not a plain file "
                                   "name; refusing to write it")
    inputs = _run_inputs(cm, args.input or [], args.seed)
    outputs = cm.run(*inputs)
    for name, y in zip(names, outputs):
        stats = f"min {y.min():.6g} max {y.max():.6g} mean {y.astype(np.float64).mean():.6g}" \
            if y.size and y.dtype.kind in "fiu" else ""
        print(f"%{name}: {y.dtype}{list(y.shape)} {stats}")
        if args.output_dir:
            os.makedirs(args.output_dir, exist_ok=True)
            np.save(os.path.join(args.output_dir, f"{name}.npy"), y)
    if args.profile:
        sys.stdout.write(profile_text(cm, inputs))
    return 0


def _cmd_inspect(args) -> int:
    import leptonc
    from .runtime.report import inspect_text

    sys.stdout.write(inspect_text(leptonc.load(args.artifact)))
    return 0


def _cmd_bench(args) -> int:
    from . import bench
    from .frontends import load_python_model

    if args.model.endswith((".onnx", ".lir")):
        raise LeptoncError("leptonc bench takes FILE.py:FUNCTION (a torch model and its inputs), so that "
                           "eager and torch.compile can run it too")
    built = load_python_model(args.model)
    systems = [s for s in args.vs.split(",") if s]
    unknown = [s for s in systems if s not in bench.SYSTEMS]
    if unknown:
        raise LeptoncError(f"--vs {','.join(unknown)}: unknown systems (known: {', '.join(bench.SYSTEMS)})")
    if "leptonc" not in systems:
        systems.append("leptonc")
    progress = bench.Progress(len(systems))
    result = bench.bench_torch_model(args.model, built[0], tuple(built[1]), systems, runs=args.runs,
                                     threads=args.threads, progress=progress)
    print(bench.format_table([result], f"{args.model}, {args.threads} threads per system"))
    return 0


def _cmd_trust(args) -> int:
    from .runtime import trust

    if args.action == "key":
        key = trust.signing_key()
        if key is None:
            raise LeptoncError(f"cannot make a signing key in {trust.config_dir()} (is it writable?)")
        print(trust.public_hex(key))
    elif args.action == "list":
        own = trust.own_key()
        for key in trust.stored_keys():
            print(key)
        for key in sorted(trust.trusted_keys() - set(trust.stored_keys()) - {own}):
            print(f"{key}  (from ${trust.ENV_KEYS})")
        if own:
            print(f"{own}  (this machine's own key)")
    else:
        if not args.key:
            raise LeptoncError(f"leptonc trust {args.action} needs a key: 64 hex digits, or a file holding them")
        done = (trust.add if args.action == "add" else trust.remove)(args.key)
        key = trust.parse_key(args.key)
        print(f"{'trusted' if args.action == 'add' else 'no longer trusted'}: {key}" if done else
              f"{key} {'was trusted already' if args.action == 'add' else 'was not in the trust store'}")
    return 0


def _add_trust_verb(sub) -> None:
    t = sub.add_parser("trust", help="the keys whose signed artifacts may run their own native code",
                       description="leptonc runs an artifact's shipped library only when a trusted key signed it "
                                   "(this machine's own key, the trust store, $LEPTONC_TRUSTED_KEYS); any other "
                                   "artifact runs code built here from its IR, or not at all without a C compiler.")
    t.add_argument("action", choices=("key", "list", "add", "remove"),
                   help="key: print this machine's public key; list: the trusted keys; add/remove KEY: edit the "
                        "trust store")
    t.add_argument("key", nargs="?", help="a public key: 64 hex digits, or a file holding them")
    t.set_defaults(run=_cmd_trust)


def _cmd_serve(args) -> int:
    from .serve.app import ServeConfig, serve

    for flag, value in (("--max-batch", args.max_batch), ("--max-queue", args.max_queue), ("--workers", args.workers)):
        if value < 1:
            raise LeptoncError(f"{flag} must be at least 1, got {value}")
    if not args.max_delay_ms >= 0:
        raise LeptoncError(f"--max-delay-ms must be 0 or more, got {args.max_delay_ms}")
    for flag, value in (("--timeout-s", args.timeout_s), ("--max-body-mb", args.max_body_mb)):
        if not value > 0:
            raise LeptoncError(f"{flag} must be positive, got {value}")
    config = ServeConfig(host=args.host, port=args.port, max_batch=args.max_batch, max_delay_ms=args.max_delay_ms,
                         max_queue=args.max_queue, timeout_s=args.timeout_s, workers=args.workers,
                         max_body_mb=args.max_body_mb)
    if not args.ray and (args.replicas is not None or args.address is not None):
        raise LeptoncError("--replicas and --address need --ray")
    if args.ray:
        from .serve.ray_app import serve_on_ray

        if args.replicas is not None and args.replicas < 1:
            raise LeptoncError(f"--replicas must be at least 1, got {args.replicas}")
        serve_on_ray(args.models, config, num_replicas=args.replicas or 1, address=args.address)
    else:
        serve(args.models, config)
    return 0


def _add_serve_verb(sub) -> None:
    import os

    s = sub.add_parser(
        "serve", help="serve artifacts over HTTP (KServe v2 / Open Inference Protocol, v1 predict, metrics)",
        description="Serve compiled models over HTTP until SIGINT or SIGTERM (which finishes the accepted "
                    "requests first). Routes: GET /v2/health/live, /v2/health/ready, /v2/models/NAME (metadata), "
                    "/v2/models/NAME/ready; POST /v2/models/NAME/infer (JSON or binary tensor data); "
                    "POST /v1/models/NAME:predict ({\"instances\": ...} or {\"inputs\": ...}); GET /metrics "
                    "(Prometheus). Requests to a model whose inputs and outputs lead with one symbolic dim are "
                    "batched along it. Needs the serve extra: pip install 'leptonc[serve]'.")
    s.add_argument("models", nargs="+", metavar="MODEL",
                   help="an artifact PATH.lep (served under its file stem), or NAME=PATH.lep")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    s.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    s.add_argument("--max-batch", type=int, default=32,
                   help="most rows (summed batch dims of the requests) one batch runs (default 32; 1: no batching)")
    s.add_argument("--max-delay-ms", type=float, default=2.0,
                   help="how long the first request of a batch waits for others to join it (default 2)")
    s.add_argument("--max-queue", type=int, default=256,
                   help="requests that may wait per model; more are answered 503 with Retry-After (default 256)")
    s.add_argument("--timeout-s", type=float, default=30.0,
                   help="a request not answered in this many seconds is answered 504 (default 30)")
    s.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="threads running the models (default: the number of cores)")
    s.add_argument("--max-body-mb", type=float, default=64.0,
                   help="largest request body in MiB; larger ones are answered 413 (default 64)")
    s.add_argument("--ray", action="store_true",
                   help="serve as Ray Serve replicas (the artifacts travel through Ray's object store); needs the "
                        "ray extra: pip install 'leptonc[ray]'")
    s.add_argument("--replicas", type=int, default=None, help="with --ray: how many replicas (default 1)")
    s.add_argument("--address", default=None,
                   help="with --ray: the Ray cluster to join ('auto': the one `ray start` began on this machine; "
                        "HOST:6379: a head node); default: start a local Ray instance")
    s.set_defaults(run=_cmd_serve)


def _add_backend_verbs(sub) -> None:
    c = sub.add_parser("compile", help="compile a model into an artifact (.lep)")
    c.add_argument("model", help="model.onnx, FILE.py:FUNCTION (torch module, example inputs) or graph.lir")
    c.add_argument("-o", "--output", required=True, help="the artifact to write (.lep)")
    c.add_argument("--target", default="cpu", type=_target, metavar="{" + ",".join(TARGETS) + "}",
                   help="code generation target: cpu (C), stablehlo (one StableHLO module, run by XLA), or "
                        "triton (Triton GPU kernels; runs on a CUDA GPU, or on the CPU with TRITON_INTERPRET=1)")
    c.add_argument("--passes", help="passes to run after the default cleanup pipeline, e.g. 'cse,dce'")
    c.add_argument("--dynamic", help="names for the leading dims of every input, e.g. batch,seq")
    c.add_argument("--calibration", metavar="DATA.npz",
                   help="calibration samples for passes that need real activations (static int8, gptq, "
                        "sparsegpt, wanda): one key per input, samples stacked on axis 0")
    c.add_argument("--fusion-report", action="store_true",
                   help="print the fusion report: the kernels, their ops, and the pairs left unfused and why")
    c.add_argument("--stats", action="store_true", help="deprecated spelling of --fusion-report")
    c.add_argument("--accuracy-samples", type=_count, metavar="N",
                   help="random inputs the accuracy check of lossy passes runs (default: 64 for a model with a "
                        "classification or LM head, else 8; 0 skips the check)")
    c.add_argument("--report", action="store_true",
                   help="print the error lossy passes (quantize, mixed-precision, prune) introduced against fp32")
    c.add_argument("--quiet", action="store_true", help="no progress on stderr")
    c.set_defaults(run=_cmd_compile)
    r = sub.add_parser("run", help="run an artifact (random inputs from its signature unless given)")
    r.add_argument("artifact")
    r.add_argument("--input", action="append", metavar="NAME=FILE.npy", help="an input from a .npy file")
    r.add_argument("--output-dir", help="save each output as NAME.npy here")
    r.add_argument("--profile", action="store_true", help="print time per kernel, most expensive first")
    r.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    r.set_defaults(run=_cmd_run)
    i = sub.add_parser("inspect", help="show an artifact: manifest, signature, kernels, fusion report, memory")
    i.add_argument("artifact")
    i.set_defaults(run=_cmd_inspect)
    b = sub.add_parser("bench", help="time a model under leptonc and other systems, side by side")
    b.add_argument("model", help="FILE.py:FUNCTION returning (torch module, example inputs)")
    b.add_argument("--vs", default="eager,inductor,onnxruntime", help="systems to compare with")
    b.add_argument("--runs", type=int, default=10)
    b.add_argument("--threads", type=int, default=2)
    b.set_defaults(run=_cmd_bench)


def _count(text: str) -> int:
    """A count >= 0 (argparse's one-line error otherwise)."""
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count (0, 1, 2, ...)")
    return n


def _target(name: str) -> str:
    """--target's type: an unknown target is argparse's one-line error, with the hint of check_target."""
    try:
        return check_target(name)
    except LeptoncError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2), like every other user error."""

    def error(self, message):
        self.exit(2, f"leptonc: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="leptonc", description="leptonc model compiler")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = p.add_subparsers(dest="command", required=True)
    ir = sub.add_parser("ir", help="print a model's graph as IR text")
    ir.add_argument("model", help="model.onnx, or FILE.py:FUNCTION returning (torch module, example inputs)")
    ir.add_argument("-o", "--output", help="write to this file instead of stdout (.svg: render with Graphviz)")
    ir.add_argument("--format", choices=("text", "dot"), default="text", help="IR text, or Graphviz DOT")
    ir.add_argument("--emit", choices=("ir", "plan", "c", "triton", "stablehlo"), default="ir",
                    help="print the graph as IR; the fusion plan of --target (its kernels and their ops); the C "
                         "(cpu) or Triton code the target generates; or the StableHLO module")
    ir.add_argument("--target", type=_target, help="with --emit plan: the target whose plan to print (default cpu)")
    ir.add_argument("--sizes", help="with --emit stablehlo: sizes of symbolic dims, e.g. B=8,S=128 (default 1)")
    ir.add_argument("--constants", action="store_true",
                    help="print every constant's values (default: those of up to 8 elements; the others by name, "
                         "dtype and shape), so that the text parses back on its own as a .lir file")
    add_pass_arguments(ir)
    ir.set_defaults(run=_cmd_ir)
    passes = sub.add_parser("passes", help="list every registered pass and pipeline, plugins included")
    passes.set_defaults(run=_cmd_passes)
    ops = sub.add_parser("ops", help="which registered ops each target compiles (yes, part, -), and why not")
    ops.set_defaults(run=_cmd_ops)
    bis = sub.add_parser("bisect", help="find the first pass, then the first kernel, whose result diverges from "
                                        "the reference interpreter, and print a minimal IR reproducer (exit 1 "
                                        "when something diverges)")
    bis.add_argument("model", help="model.onnx, FILE.py:FUNCTION, or IR text (.lir); run on random inputs")
    bis.add_argument("--passes", metavar="PIPELINE", help="passes after the cleanup pipeline, as compile takes them")
    bis.add_argument("--target", type=_target, default="cpu", help="the target whose kernels to check (default cpu)")
    bis.add_argument("-o", "--output", metavar="FILE.lir", help="write the reproducer there, every constant inline")
    bis.set_defaults(run=_cmd_bisect)
    _add_backend_verbs(sub)
    _add_trust_verb(sub)
    _add_serve_verb(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with optional_dependency(f"leptonc {args.command}"):
            return args.run(args)
    except (LeptoncError, FileNotFoundError, IsADirectoryError, PermissionError) as e:
        if args.debug:
            raise
        print(f"leptonc: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug of ours: one line, the traceback on request
        if args.debug:
            raise
        print(f"leptonc: internal error: {type(e).__name__}: {_one_line(e)} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


if __name__ == "__main__":
    sys.exit(main())
