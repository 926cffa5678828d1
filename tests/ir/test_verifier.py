import numpy as np
import pytest

from leptonc.ir import DType, Graph, Node, TensorType, Value, VerifyError, verify


def f32(*shape):
    return TensorType(DType.f32, shape)


def base():
    g = Graph("g")
    x = g.add_input("x", f32(2, 3))
    a = g.add("exp", x, name="a")
    b = g.add("neg", a, name="b")
    g.set_outputs([b])
    return g, x, a, b


def test_accepts_a_good_graph():
    verify(base()[0])


def test_use_before_def_names_node_and_value():
    g, x, a, b = base()
    g.nodes = g.nodes[::-1]
    with pytest.raises(VerifyError, match=r"'%b = neg'.*use before def of %a"):
        verify(g)


def test_type_that_disagrees_with_inference():
    g, x, a, b = base()
    b.type = f32(3, 2)
    with pytest.raises(VerifyError, match=r"'%b = neg'.*%b has type f32\[3, 2\], inference gives f32\[2, 3\]"):
        verify(g)


def test_unregistered_op():
    g, x, a, b = base()
    b.producer.op = "mystery"
    with pytest.raises(VerifyError, match=r"'%b = mystery'.*unregistered op 'mystery'"):
        verify(g)


def test_dangling_value():
    g, x, a, b = base()
    stray = Value("stray", f32(2, 3))
    g.set_input(b.producer, 0, stray)
    with pytest.raises(VerifyError, match=r"'%b = neg'.*dangling value %stray"):
        verify(g)


def test_dangling_graph_output():
    g, x, a, b = base()
    g.outputs = [Value("ghost", f32(1))]
    with pytest.raises(VerifyError, match="graph output %ghost is a dangling value"):
        verify(g)


def test_stale_use_list():
    g, x, a, b = base()
    b.producer.inputs[0] = x  # edited behind the graph's back
    with pytest.raises(VerifyError, match="use-list"):
        verify(g)


def test_const_must_match_its_array():
    g = Graph()
    c = g.add_constant(np.zeros((2, 2), np.float32), "w")
    g.set_outputs([c])
    g.constants["w"] = np.zeros((3,), np.float32)
    with pytest.raises(VerifyError, match=r"'%w = const'.*disagrees with constant @w"):
        verify(g)


def test_node_of_another_graph():
    g, x, a, b = base()
    stranger = Node("neg")
    g.nodes = [*g.nodes, stranger]
    stranger.graph = Graph("other")  # a corrupted graph: it lists a node that says it is another's
    with pytest.raises(VerifyError, match="does not belong"):
        verify(g)


def test_unknown_dims_refine():
    g = Graph()
    x = g.add_input("x", f32("?", 3))
    y = g.add_node("neg", [x], types=[f32(5, 3)]).output  # a result may be more precise than "?"
    g.set_outputs([y])
    verify(g)
