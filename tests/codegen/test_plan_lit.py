"""Text tests of the kernel targets' fusion plans: each case in tests/codegen/lit/*.lir is IR, a
`leptonc ir %s --emit plan --target T` RUN line and CHECK directives (tests/passes/test_lit.py runs them the
same way). The cpu cases also compile and run against the reference interpreter."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import leptonc
from leptonc.ir import parse_ir
from tests.passes.test_lit import lit_cases, run_case
from tests.random_graphs import random_inputs

LIT = Path(__file__).parent / "lit"


@pytest.mark.parametrize("case, run", list(lit_cases(LIT)))
def test_plan_case(case, run, tmp_path, capsys):
    argv = run_case(case, run, tmp_path, capsys)
    if argv[argv.index("--target") + 1] == "cpu":
        graph = parse_ir(case)
        inputs = random_inputs(graph, seed=0)
        got = leptonc.compile(graph, inputs, target="cpu", quiet=True).run(*inputs)
        for want, y in zip(leptonc.run_reference(graph, *inputs), got):
            np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)


def test_emit_c_and_triton_print_the_generated_kernels(tmp_path, capsys):
    """--emit c and --emit triton print each target's code, every kernel of the plan with its header."""
    from leptonc.cli import main

    case = (LIT / "plan_cpu.lir").read_text().split("# -----")[0]
    path = tmp_path / "m.lir"
    path.write_text(case.replace("%m = matmul(%x, %w) : f32[B, 3]", '%m = matmul(%x, %w) : f32[B, 3] loc("enc.fc1")'))
    assert main(["ir", str(path), "--emit", "c"]) == 0
    c = capsys.readouterr().out
    assert "/* k0_matmul_add_relu: matmul kernel; fused IR ops:" in c and "#include" in c
    assert " * from enc.fc1\n" in c  # the source of the kernel's ops, in its header
    assert main(["ir", str(path), "--emit", "triton"]) == 0
    tl = capsys.readouterr().out
    assert "# k0_matmul_add_relu: matmul kernel; fused IR ops:" in tl and "@triton.jit" in tl
    assert "# from enc.fc1\n@triton.jit" in tl


@pytest.mark.parametrize("argv, message", [
    (["--emit", "c", "--target", "triton"], "--emit c is the code of the cpu target"),
    (["--emit", "plan", "--target", "stablehlo"], "the stablehlo target has no fusion plan"),
])
def test_emit_mismatched_target_is_a_one_line_error(tmp_path, capsys, argv, message):
    from leptonc.cli import main

    path = tmp_path / "m.lir"
    path.write_text("graph @g(%x: f32[4]) -> (f32[4]) {\n  %y = exp(%x) : f32[4]\n  return %y\n}\n")
    assert main(["ir", str(path), *argv]) == 2
    assert message in capsys.readouterr().err
