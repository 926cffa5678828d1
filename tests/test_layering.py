"""The stages import one way (docs/design.md, layering): every `import` of the package, at module level or
inside a function, read with ast.

    ir         <- passes <- codegen          (codegen also packs artifacts: it may import runtime)
    ir         <- runtime                    (the runtime runs artifacts: it imports only the IR)
    ir, passes <- frontends

and the targets of codegen (cpu, triton, stablehlo) import nothing of each other: what they share lives in
codegen itself (the kernel-body layer, codegen/__init__.py).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "leptonc"

# stage -> the stages it may import (besides itself)
ALLOWED = {
    "ir": set(),
    "runtime": {"ir"},
    "passes": {"ir", "runtime"},  # the reference interpreter (runtime/reference.py) checks and calibrates passes
    "codegen": {"ir", "passes", "runtime"},
    "frontends": {"ir", "passes"},
}


def imports(path: Path) -> list[tuple[str, int, tuple[str, ...]]]:
    """(absolute module, line, names imported from it) of every leptonc import in `path`."""
    package = list(path.relative_to(PACKAGE.parent).parent.parts)
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno, ()) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            names = tuple(a.name for a in node.names)
            if name == "leptonc" or (node.level and not node.module):  # `from . import x`: x may be a module
                out += [(f"{name}.{n}", node.lineno, ()) for n in names]
            else:
                out.append((name, node.lineno, names))
    return [x for x in out if x[0] == "leptonc" or x[0].startswith("leptonc.")]


def stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else None


def violations() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = stage(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        if here is None:
            continue
        for target, line, _ in imports(path):
            there = stage(target)
            if target in ("leptonc", "leptonc.__version__"):
                continue  # the package's version string, not a stage
            if there is None:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({here}) imports {target}, above every stage")
            elif there is not None and there != here and there not in ALLOWED[here]:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({here}) imports {target} ({there})")
    return found


def test_stages_import_one_way():
    assert violations() == []


TARGETS = ("cpu", "triton", "stablehlo")


def test_codegen_targets_share_through_codegen_only():
    found = []
    for target in TARGETS:
        for path in sorted((PACKAGE / "codegen" / target).rglob("*.py")):
            for module, line, _ in imports(path):
                parts = module.split(".")
                if parts[1:2] == ["codegen"] and len(parts) > 2 and parts[2] in TARGETS and parts[2] != target:
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
    assert found == []


@pytest.mark.parametrize("source, expected", [
    ("from ..codegen.cpu import build\n", "leptonc.codegen.cpu"),
    ("def f():\n    from ..passes import tolerance\n", "leptonc.passes"),
    ("import leptonc.frontends.onnx\n", "leptonc.frontends.onnx"),
    ("from .. import api\n", "leptonc.api"),
])
def test_a_lazy_or_relative_import_is_seen(tmp_path, monkeypatch, source, expected):
    """The checker reads imports inside functions and relative ones, resolved from the importing module."""
    package = tmp_path / "leptonc"
    (package / "runtime").mkdir(parents=True)
    (package / "runtime" / "probe.py").write_text(source)
    monkeypatch.setattr(__import__(__name__, fromlist=["PACKAGE"]), "PACKAGE", package)
    assert [t for t, _, _ in imports(package / "runtime" / "probe.py")] == [expected]
    assert len(violations()) == 1
