"""The leptonc command line. A user error prints one line to stderr and exits 2
(a traceback only with --debug)."""
from __future__ import annotations

import argparse
import sys

from .ir.errors import LeptoncError


def _cmd_ir(args) -> int:
    from .frontends import import_model
    from .ir.printer import print_ir

    graph = import_model(args.model)
    text = print_ir(graph)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="leptonc", description="leptonc model compiler")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = p.add_subparsers(dest="command", required=True)
    ir = sub.add_parser("ir", help="print a model's graph as IR text")
    ir.add_argument("model", help="model.onnx, or FILE.py:FUNCTION returning (torch module, example inputs)")
    ir.add_argument("-o", "--output", help="write to this file instead of stdout")
    ir.set_defaults(run=_cmd_ir)
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
