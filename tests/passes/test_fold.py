"""fold: its size cap on constants too big to write as text (non-growing results fold, growing ones do
not), and the names of folded weights."""
import numpy as np

from leptonc.ir import DType, Graph, TensorType
from leptonc.passes import run_pipeline


def _graph(make):
    g = Graph("cap")
    x = g.add_input("x", TensorType(DType.f32, (300, 300)))
    g.set_outputs([g.add("add", x, make(g))])
    return g


def test_transposed_weight_folds_beyond_the_cap():
    w = np.arange(90000, dtype=np.float32).reshape(300, 300)
    g = _graph(lambda g: g.add("transpose", g.add_constant(w, "w"), perm=[1, 0]))
    out = run_pipeline(g, "fold,dce", verify_each=True)
    assert [n.op for n in out.nodes] == ["const", "add"]
    np.testing.assert_array_equal(out.constant_of(out.nodes[1].inputs[1]), w.T)
    assert out.nodes[0].attrs["name"] == "w_transpose"  # a weight laid out anew keeps its name


def test_broadcast_scalar_stays_unless_the_cap_allows():
    make = lambda g: g.add("broadcast_to", g.add_constant(np.float32(2.0), "s"), shape=[300, 300])  # noqa: E731
    assert "broadcast_to" in _ops(run_pipeline(_graph(make), "fold,dce"))
    assert "broadcast_to" not in _ops(run_pipeline(_graph(make), "fold{max_elements=100000},dce"))


def test_full_stays_a_generator_beyond_the_cap():
    make = lambda g: g.add("full", shape=[300, 300], value=1.5, dtype=DType.f32)  # noqa: E731
    assert "full" in _ops(run_pipeline(_graph(make), "fold,dce"))


def _ops(graph):
    return {n.op for n in graph.nodes}
