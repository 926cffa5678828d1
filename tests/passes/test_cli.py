"""`leptonc passes` and the pass flags of `leptonc ir`."""
from __future__ import annotations

import shutil

import pytest

from leptonc.cli import main
from leptonc.ir import parse_ir

CASE = """graph @g(%x: f32[B, 4]) -> (f32[B, 4]) {
  %one = const @one [1.0] : f32[]
  %a = mul(%x, %one) : f32[B, 4]
  %b = exp(%a) : f32[B, 4]
  %c = exp(%a) : f32[B, 4]
  %d = add(%b, %c) : f32[B, 4]
  return %d
}
"""


@pytest.fixture
def case(tmp_path):
    path = tmp_path / "g.lir"
    path.write_text(CASE)
    return str(path)


def test_passes_lists_every_pass_with_options(capsys):
    assert main(["passes"]) == 0
    out = capsys.readouterr().out
    for name in ("canonicalize", "cse", "dce", "default", "fold", "fold-batchnorm"):
        assert any(line.startswith(name + " ") for line in out.splitlines()), name
    assert "max_elements=int (default 65536)" in out


def test_ir_runs_the_pipeline(case, capsys):
    assert main(["ir", case, "--passes", "canonicalize,cse,dce"]) == 0
    out = capsys.readouterr().out
    g = parse_ir(out)
    assert sorted(g.op_counts().items()) == [("add", 1), ("exp", 1)]


def test_ir_stats_and_print_ir_after(case, capsys):
    assert main(["ir", case, "--passes", "default", "--stats", "--print-ir-after", "cse"]) == 0
    err = capsys.readouterr().err
    assert "# pipeline: default\n" in err
    assert "default#1/canonicalize" in err and "ops before" in err and "total" in err
    assert "# IR after cse\n" in err


def test_ir_print_ir_after_all_and_disable(case, capsys):
    assert main(["ir", case, "--passes", "default", "--print-ir-after-all", "--disable-pass", "cse"]) == 0
    err = capsys.readouterr().err
    assert "# IR after canonicalize" in err and "# IR after cse" not in err


def test_ir_dump_dir(case, tmp_path):
    dumps = tmp_path / "dumps"
    assert main(["ir", case, "--passes", "default", "--dump-dir", str(dumps)]) == 0
    names = sorted(p.name for p in dumps.iterdir())
    assert names[:6] == ["000_input.lir", "001_canonicalize.lir", "002_fold.lir", "003_cse.lir",
                         "004_fold-batchnorm.lir", "005_dce.lir"]


def test_ir_dot(case, tmp_path, capsys):
    assert main(["ir", case, "--format", "dot"]) == 0
    out = capsys.readouterr().out
    assert out.startswith('digraph "g" {') and '"%b = exp"' in out and "->" in out
    target = tmp_path / "g.dot"
    assert main(["ir", case, "--passes", "default", "--format", "dot", "-o", str(target)]) == 0
    assert "mul" not in target.read_text()


def test_ir_svg_needs_graphviz(case, tmp_path, capsys):
    target = tmp_path / "g.svg"
    code = main(["ir", case, "--format", "dot", "-o", str(target)])
    if shutil.which("dot"):
        assert code == 0 and target.read_text().lstrip().startswith("<")
    else:
        assert code == 2 and "needs Graphviz" in capsys.readouterr().err


def test_ir_unknown_pass_is_one_line(case, capsys):
    assert main(["ir", case, "--passes", "cannonicalize"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean 'canonicalize'" in err
