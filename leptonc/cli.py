"""The leptonc command line. A user error prints one line to stderr and exits 2
(a traceback only with --debug)."""
from __future__ import annotations

import argparse
import sys

from .ir.errors import LeptoncError
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
    text = to_dot(graph) if args.format == "dot" else print_ir(graph)
    if args.output and args.output.endswith(".svg"):
        _write_svg(text if args.format == "dot" else to_dot(graph), args.output)
    elif args.output:
        with open(args.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="leptonc", description="leptonc model compiler")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = p.add_subparsers(dest="command", required=True)
    ir = sub.add_parser("ir", help="print a model's graph as IR text")
    ir.add_argument("model", help="model.onnx, or FILE.py:FUNCTION returning (torch module, example inputs)")
    ir.add_argument("-o", "--output", help="write to this file instead of stdout (.svg: render with Graphviz)")
    ir.add_argument("--format", choices=("text", "dot"), default="text", help="IR text, or Graphviz DOT")
    add_pass_arguments(ir)
    ir.set_defaults(run=_cmd_ir)
    passes = sub.add_parser("passes", help="list every registered pass and pipeline, plugins included")
    passes.set_defaults(run=_cmd_passes)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except LeptoncError as e:
        if args.debug:
            raise
        print(f"leptonc: error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        if args.debug:
            raise
        print(f"leptonc: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
