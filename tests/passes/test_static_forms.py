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
