"""Every op's samples (the registry's, ir/samples.py) on every target, against the reference interpreter.

Per target, the samples of all the ops it supports run side by side in one graph (one compile); each op
it compiles in some forms only (target_support.PARTLY) must run at least one sample right and refuse at
least one with a clear error; each op it lacks (target_support.LACKS) must refuse every sample with a
clear error. So target_support.py can claim neither more nor less than the truth.
"""
from __future__ import annotations

import numpy as np
import pytest

import leptonc
from leptonc.ir import LeptoncError, all_ops
from leptonc.ir.samples import sample_graph
from leptonc.ir.target_support import LACKS, PARTLY, TARGETS, support, support_matrix
from tests.codegen.cpu_check import assert_matches_reference

# wrong answers or crashes instead of a clear error: bugs of the target, each checked to still fail
KNOWN_BUGS = {
    ("triton", "cast", 5): "f32 -> bf16 truncates instead of rounding to nearest even (Triton's interpreter)",
}


@pytest.fixture
def target_env(request, monkeypatch):
    """The target of the test; triton kernels run on the GPU where there is one, else by the interpreter."""
    target = request.param
    if target == "triton":
        pytest.importorskip("triton")
        torch = pytest.importorskip("torch")
        if not torch.cuda.is_available():
            monkeypatch.setenv("TRITON_INTERPRET", "1")
    elif target == "stablehlo":
        pytest.importorskip("jax")
    return target


def _cases(ops, target):
    return [(op, s) for op in ops for i, s in enumerate(all_ops()[op].samples)
            if (target, op, i) not in KNOWN_BUGS]


def _run(target, cases):
    graph, inputs, owned = sample_graph(cases, name=f"conformance_{target}")
    want = leptonc.run_reference(graph, *inputs)
    got = leptonc.compile(graph, target=target, quiet=True, accuracy=False).run(*inputs)
    return graph, list(got), list(want), owned


def _refuses(target, op, sample) -> bool:
    """Whether compiling the sample for target fails with a clear error (LeptoncError) naming the op."""
    graph, _, _ = sample_graph([(op, sample)])
    try:
        leptonc.compile(graph, target=target, quiet=True, accuracy=False)
    except LeptoncError as e:
        assert op in str(e) or graph.nodes[-1].op in str(e), f"{op} on {target}: the error names no op: {e}"
        return True
    return False


@pytest.mark.parametrize("target_env", [t if t != "stablehlo" else pytest.param(t, marks=pytest.mark.slow)
                                        for t in TARGETS], indirect=True)  # XLA takes ~45 s on the module
def test_supported_ops_match_the_reference(target_env):
    target = target_env
    ops = [op for op in sorted(all_ops()) if op != "const" and support(op, target)[0] == "yes"]
    graph, got, want, owned = _run(target, _cases(ops, target))
    for (op, sample), where in zip(_cases(ops, target), owned):
        try:
            assert_matches_reference(got[where], want[where])
        except AssertionError as e:
            raise AssertionError(f"{op} on {target}, attrs {sample.attrs}: {e}") from None


@pytest.mark.parametrize("target_env", TARGETS, indirect=True)
def test_ops_a_target_lacks_are_clear_errors(target_env):
    target = target_env
    compiles = [op for op in sorted(LACKS[target]) for s in all_ops()[op].samples if not _refuses(target, op, s)]
    assert not compiles, f"{target} compiles samples of {sorted(set(compiles))}: take them off target_support.LACKS"


@pytest.mark.parametrize("target_env", TARGETS, indirect=True)
def test_ops_a_target_runs_in_part(target_env):
    target = target_env
    for op in sorted(PARTLY[target]):
        run, refused = [], 0
        for i, s in enumerate(all_ops()[op].samples):
            if (target, op, i) in KNOWN_BUGS:
                continue
            if _refuses(target, op, s):
                refused += 1
            else:
                run.append((op, s))
        assert run, f"{op}: {target} runs none of its samples: move it to target_support.LACKS"
        assert refused, f"{op}: {target} runs every sample: take it off target_support.PARTLY"
        _, got, want, owned = _run(target, run)
        for where in owned:
            assert_matches_reference(got[where], want[where])


@pytest.mark.parametrize("key", sorted(KNOWN_BUGS), ids=lambda k: "-".join(map(str, k)))
def test_known_bugs_still_fail(key, monkeypatch):
    """Each known bug still gives a wrong answer or a crash (fixed, it belongs off the list)."""
    target, op, index = key
    if target == "triton":
        pytest.importorskip("triton")
        if not pytest.importorskip("torch").cuda.is_available():
            monkeypatch.setenv("TRITON_INTERPRET", "1")
    sample = all_ops()[op].samples[index]
    with pytest.raises(Exception):  # noqa: B017  whatever form the failure takes
        _, got, want, owned = _run(target, [(op, sample)])
        assert_matches_reference(got, want)


def test_every_op_has_samples_and_every_gap_is_a_registered_op():
    ops = all_ops()
    assert not [op for op in ops if op != "const" and not ops[op].samples]
    for target in TARGETS:
        assert set(LACKS[target]) <= set(ops) and set(PARTLY[target]) <= set(ops)
        assert not set(LACKS[target]) & set(PARTLY[target])


def test_the_support_matrix_lists_every_op_and_gap():
    text = support_matrix(sorted(all_ops()))
    assert "nonzero" in text and "every form: cpu" in text
    assert all(f"{op} on cpu:" in text for op in LACKS["cpu"])


def test_leptonc_ops_prints_the_matrix(capsys):
    from leptonc.cli import main

    assert main(["ops"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["op", *TARGETS] and "conv_transpose" in out


def test_samples_are_the_same_on_every_run():
    a = all_ops()["add"].samples[0].operands[0]
    assert isinstance(a, np.ndarray) and a.shape == (2, 3)
