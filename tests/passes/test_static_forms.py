"""Every dynamic op's samples whose shape-like operands are constants become its static twin under the default
pipeline (passes/static_forms.py), with the reference interpreter's results unchanged; out-of-range axes stay
dynamic (refused later, never wrapped)."""
import numpy as np
import pytest

import leptonc
from leptonc.ir import all_ops
from leptonc.ir.ops.dynamic import SHAPE_OPERANDS, STATIC_OPS
from leptonc.ir.samples import Constant, sample_graph
from leptonc.passes import run_pipeline
from leptonc.passes.static_forms import refusal

CASES = [(op, i) for op in sorted(SHAPE_OPERANDS) for i, s in enumerate(all_ops()[op].samples)
         if all(isinstance(s.operands[k], Constant) for k in SHAPE_OPERANDS[op] if k < len(s.operands))]


@pytest.mark.parametrize("op, index", CASES, ids=[f"{op}-{i}" for op, i in CASES])
def test_constant_operands_make_the_static_twin(op, index):
    graph, inputs, _ = sample_graph([(op, all_ops()[op].samples[index])])
    folded = run_pipeline(graph, "default")
    ops = {n.op for n in folded.nodes} - {"const"}
    assert op not in ops and ops <= set(STATIC_OPS[op]) | {"reshape"}
    for a, b in zip(leptonc.run_reference(graph, *inputs), leptonc.run_reference(folded, *inputs)):
        np.testing.assert_array_equal(a, b)


def test_every_dynamic_op_has_a_sample_with_constant_operands():
    assert {op for op, _ in CASES} == set(SHAPE_OPERANDS)


def test_an_out_of_range_axis_stays_dynamic_and_says_why():
    graph = leptonc.parse_ir("""graph @g(%x: f32[2, 3]) -> (f32[2, 3]) {
  %a = const @a [2] : i64[]
  %s = cumulative_dynamic(%x, %a) {kind = "sum"} : f32[2, 3]
  return %s
}
""")
    folded = run_pipeline(graph, "default")
    node = next(n for n in folded.nodes if n.op == "cumulative_dynamic")
    assert refusal(folded, node) == ("'%s = cumulative_dynamic': no static form for operand 1 (%a) = 2: "
                                     "cumulative axis 2 is out of range for rank 2")


# Slice bounds and a range count that are dims of the input: S + 1, S, S - 2 (which may be negative) and
# range(3, S + 3, 1), at sizes where S - 2 is negative, zero and positive.
SYMBOLIC_BOUNDS = """graph @b(%x: f32[B, S]) -> (f32[?, ?], f32[?, ?], f32[?, ?], i64[?]) {
  %y = pad(%x) {pads = [0, 1, 0, 0]} : f32[B, S + 1]
  %sh = shape_of(%x) : i64[2]
  %i = const @i [1] : i64[1]
  %n = gather(%sh, %i) : i64[1]
  %one = const @one [1] : i64[1]
  %n1 = add(%n, %one) : i64[1]
  %two = const @two [2] : i64[1]
  %n2 = sub(%n, %two) : i64[1]
  %three = const @three [3] : i64[1]
  %n3 = add(%n, %three) : i64[1]
  %s1 = slice_dynamic(%y, %one, %n1, %one, %one) : f32[?, ?]
  %s2 = slice_dynamic(%y, %one, %n, %one, %one) : f32[?, ?]
  %s3 = slice_dynamic(%y, %one, %n2, %one, %one) : f32[?, ?]
  %r = range_dynamic(%three, %n3, %one) : i64[?]
  return %s1, %s2, %s3, %r
}
"""


def test_sizes_as_slice_bounds_and_range_counts_match_the_reference_at_every_size():
    from leptonc.runtime.specialized import SpecializingModel

    graph = leptonc.parse_ir(SYMBOLIC_BOUNDS)
    folded = run_pipeline(graph.copy(), "fold")
    assert [n.op for n in folded.nodes].count("slice_dynamic") == 1  # only S - 2 stays a run-time bound
    assert "range_dynamic" not in [n.op for n in folded.nodes]
    cm = leptonc.compile(graph, target="cpu", quiet=True)
    assert isinstance(cm, SpecializingModel)  # for the S - 2 slice alone
    for b, s in [(2, 1), (1, 2), (3, 5)]:
        x = np.random.default_rng(s).standard_normal((b, s)).astype(np.float32)
        for got, want in zip(cm.run(x), leptonc.run_reference(graph, x)):
            np.testing.assert_array_equal(got, want)
