import numpy as np
import pytest

from leptonc.ir import DType, Graph, IRError, TensorType, verify


def f32(*shape):
    return TensorType(DType.f32, shape)


def small_graph():
    g = Graph("g")
    x = g.add_input("x", f32("B", 4))
    w = g.add_constant(np.ones((4, 4), np.float32), "w")
    h = g.add("matmul", x, w, name="h")
    y = g.add("relu", h, name="y")
    z = g.add("add", y, h, name="z")
    g.set_outputs([z])
    return g, x, w, h, y, z


def uses_of(v):
    return sorted((n.outputs[0].name, i) for n, i in v.uses)


def test_use_lists_follow_building():
    g, x, w, h, y, z = small_graph()
    assert uses_of(h) == [("y", 0), ("z", 1)]
    assert h.producer.op == "matmul" and x.producer is None
    assert [n.op for n in h.users] == ["relu", "add"]
    verify(g)


def test_replace_all_uses_moves_uses_and_outputs():
    g, x, w, h, y, z = small_graph()
    g.replace_all_uses(z, y)
    assert g.outputs == [y]
    g.replace_all_uses(h, x)
    assert uses_of(h) == [] and uses_of(x) == [("h", 0), ("y", 0), ("z", 1)]
    verify(g)


def test_set_input_and_erase():
    g, x, w, h, y, z = small_graph()
    g.set_input(z.producer, 1, y)
    assert uses_of(h) == [("y", 0)] and uses_of(y) == [("z", 0), ("z", 1)]
    with pytest.raises(IRError, match="still used"):
        g.erase(h.producer)
    g.set_input(y.producer, 0, x)
    g.erase(h.producer)
    assert uses_of(x) == [("y", 0)] and uses_of(w) == []
    g.erase(w.producer)
    assert "w" not in g.constants
    verify(g)


def test_insert_before_and_after():
    g, x, w, h, y, z = small_graph()
    n = g.add("neg", x, name="n", before=h.producer)
    g.add("exp", y, name="m", after=y.producer)
    assert [node.outputs[0].name for node in g.nodes] == ["w", "n", "h", "y", "m", "z"]
    assert uses_of(n) == [] and uses_of(y) == [("m", 0), ("z", 0)]
    verify(g)


def test_unique_names_and_sanitizing():
    g = Graph()
    a = g.add_input("/layer.0/Add_output_0", f32(2))
    b = g.add_input("x", f32(2))
    c = g.add_input("x", f32(2))
    assert a.name == "layer.0_Add_output_0"
    assert (b.name, c.name) == ("x", "x_1")


def test_copy_is_independent():
    g, *_ = small_graph()
    g2 = g.copy()
    verify(g2)
    g2.replace_all_uses(g2.outputs[0], g2.inputs[0])
    assert g.outputs[0].name == "z"
    verify(g)


def test_bad_attribute_and_operand_errors():
    g = Graph()
    x = g.add_input("x", f32(2, 3))
    with pytest.raises(IRError, match="unknown attribute 'axis'.*perm"):
        g.add("transpose", x, axis=1)
    with pytest.raises(IRError, match="missing attribute 'perm'"):
        g.add("transpose", x)
    with pytest.raises(IRError, match="takes 2 operands, got 1"):
        g.add("add", x)
    with pytest.raises(IRError, match="unregistered op 'frobnicate'"):
        g.add("frobnicate", x)
