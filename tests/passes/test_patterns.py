"""The pattern-rewrite engine (passes/rewrite.py) and the graph edits it stands on: order keys, patterns
rooted at ops, traits and fusion kinds, plugins' patterns, the fixed point, and attention and softmax
recognised in the forms a model writes them."""
from __future__ import annotations

import numpy as np
import pytest

from leptonc import run_reference
from leptonc.ir import DType, Graph, LeptoncError, TensorType, verify
from leptonc.passes import run_pipeline
from leptonc.passes.fusion import plan_fusion
from leptonc.passes.rewrite import pattern_set
from tests.passes.test_differential import assert_same_outputs

RNG = np.random.default_rng(0)


def f32(*shape):
    return TensorType(DType.f32, shape)


def test_order_keys_survive_many_inserts_at_one_place():
    g = Graph()
    x = g.add_input("x", f32(4))
    first = g.add("neg", x).producer
    last = g.add("neg", first.output).producer
    added = [g.add("exp", x, before=last).producer for _ in range(100)]  # halves one gap until it renumbers
    added += [g.add("abs", x, after=first).producer for _ in range(100)]
    g.set_outputs([last.output] + [n.output for n in added])
    nodes = g.nodes
    assert nodes[0] is first and nodes[-1] is last and len(nodes) == 202
    assert all(g.precedes(a, b) and not g.precedes(b, a) for a, b in zip(nodes, nodes[1:]))
    assert [g.index(n) for n in nodes] == list(range(len(nodes)))
    verify(g)


def test_erase_keeps_order_uses_and_constants():
    g = Graph()
    x = g.add_input("x", f32(3))
    c = g.add_constant(np.ones(3, np.float32), "w")
    a = g.add("add", x, c)
    b = g.add("mul", a, c)
    g.set_outputs([b])
    g.replace_all_uses(b, a)
    g.erase(b.producer)
    assert [n.op for n in g.nodes] == ["const", "add"] and len(c.uses) == 1 and "w" in g.constants
    g.set_outputs([x])
    g.erase(a.producer)
    g.erase(c.producer)
    assert g.nodes == [] and g.constants == {} and not x.uses
    with pytest.raises(LeptoncError, match="not in graph"):
        g.erase(a.producer)


def test_uses_of_a_shared_value_drop_one_at_a_time_in_order():
    g = Graph()
    x = g.add_input("x", f32(3))
    c = g.add_constant(np.ones(3, np.float32), "w")
    ys = [g.add("mul", x, c) for _ in range(5)]
    g.set_outputs(ys[::2])
    for y in ys[1::2]:
        g.erase(y.producer)
    assert list(c.uses) == [(ys[0].producer, 1), (ys[2].producer, 1), (ys[4].producer, 1)]
    assert len(c.uses) == 3 and c.uses[0] == (ys[0].producer, 1) and c.uses[-1] == (ys[4].producer, 1)
    g.set_input(ys[2].producer, 1, x)  # mul(x, x): two uses of x by one node
    assert [(n.output.name, i) for n, i in x.uses] == [(ys[0].name, 0), (ys[2].name, 0), (ys[4].name, 0),
                                                       (ys[2].name, 1)]
    assert len(c.uses) == 2
    verify(g)


def _chain(ops):
    g = Graph()
    x = g.add_input("x", f32(2, 3))
    v = x
    for op in ops:
        v = g.add(op, v)
    g.set_outputs([v])
    return g


def test_a_plugin_pattern_joins_a_builtin_pass():
    canonical = pattern_set("canonicalize")

    @canonical.pattern("relu", name="test_relu_of_relu")
    def relu_of_relu(graph, node):
        inner = node.inputs[0].producer
        return node.inputs[0] if inner is not None and inner.op == "relu" else None

    try:
        g = _chain(["relu", "relu", "relu", "exp"])
        after = run_pipeline(g, "canonicalize", verify_each=True)
        assert [n.op for n in after.nodes] == ["relu", "exp"]
        assert_same_outputs(g, after, 0)
    finally:
        canonical.remove("test_relu_of_relu")
    assert [n.op for n in run_pipeline(g, "canonicalize").nodes] == ["relu", "relu", "relu", "exp"]


def test_a_pattern_rooted_at_a_trait_sees_every_op_with_it():
    seen = []
    rules = pattern_set("test_trait")

    @rules.pattern(trait="elementwise")
    def record(graph, node):
        seen.append(node.op)

    @rules.pattern(fusion="reduce")
    def record_reduction(graph, node):
        seen.append(node.op)

    g = _chain(["exp", "neg"])
    g.set_outputs([g.add("reduce_sum", g.outputs[0], axes=(1,))])
    assert not rules.apply(g) and seen == ["exp", "neg", "reduce_sum"]


def test_patterns_that_undo_each_other_are_an_error():
    rules = pattern_set("test_ping_pong")
    rules.pattern("neg")(lambda graph, node: graph.add("neg", graph.add("neg", graph.add("neg", node.inputs[0],
                                                                                          before=node), before=node),
                                                       before=node))
    with pytest.raises(LeptoncError, match="test_ping_pong: no fixed point .* patterns undo each other"):
        rules.apply(_chain(["neg"]), max_rewrites=50)


def test_worklist_revisits_users_of_a_rewrite():
    """transpose(transpose(transpose(x))) with identity pairs collapses fully in one apply."""
    g = Graph()
    x = g.add_input("x", f32(2, 3, 4))
    v = x
    for perm in [(1, 0, 2), (1, 0, 2), (0, 2, 1), (0, 2, 1)]:
        v = g.add("transpose", v, perm=perm)
    g.set_outputs([g.add("exp", v)])
    after = run_pipeline(g, "canonicalize", verify_each=True)
    assert [n.op for n in after.nodes] == ["exp"]


# ---------------------------------------------------------------- attention and softmax in their forms

B, H, S, D = 2, 2, 5, 4


def _softmax(g, s, form):
    if form == "exp/sum/div":
        e = g.add("exp", s)
        return g.add("div", e, g.add("reduce_sum", e, axes=(-1,), keepdims=True))
    m = g.add("reduce_max", s, axes=(-1,), keepdims=True)
    e = g.add("exp", g.add("sub", s, m))
    total = g.add("reduce_sum", e, axes=(-1,), keepdims=True)
    if form == "times reciprocal":
        return g.add("mul", e, g.add("reciprocal", total))
    return g.add("div", e, total)


def attention(scale_on="scores", k_given="transposed by an op", softmax="stable"):
    g = Graph("attn")
    q = g.add_input("q", f32(B, H, S, D))
    k = g.add_input("k", f32(B, H, S, D) if k_given == "transposed by an op" else f32(B, H, D, S))
    v = g.add_input("v", f32(B, H, S, D))
    c = g.add_constant(np.array(D ** -0.5, np.float32), "scale")
    if scale_on == "q":
        q = g.add("mul", q, c)
    elif scale_on == "k":
        k = g.add("div", k, g.add_constant(np.array(D ** 0.5, np.float32), "root_d"))
    kt = g.add("transpose", k, perm=(0, 1, 3, 2)) if k_given == "transposed by an op" else k
    s = g.add("matmul", q, kt)
    if scale_on == "scores":
        s = g.add("mul", s, c)
    g.set_outputs([g.add("matmul", _softmax(g, s, softmax), v)])
    return g


@pytest.mark.parametrize("form", [
    {}, {"scale_on": "q"}, {"scale_on": "k"}, {"k_given": "as K^T"}, {"softmax": "exp/sum/div"},
    {"softmax": "times reciprocal"}, {"scale_on": "q", "k_given": "as K^T", "softmax": "exp/sum/div"},
], ids=lambda f: ", ".join(f"{k}={v}" for k, v in f.items()) or "canonical")
def test_attention_is_one_kernel_in_every_equivalent_form(form):
    g = attention(**form)
    after = run_pipeline(g, "fuse", verify_each=True)
    kinds = [k.kind for k in plan_fusion(after).kernels]
    assert kinds == ["attention"], kinds
    assert_same_outputs(g, after, 1e-5)


def test_softmax_without_max_becomes_stable_and_no_longer_overflows():
    g = Graph()
    x = g.add_input("x", f32(3, 8))
    g.set_outputs([_softmax(g, x, "exp/sum/div")])
    after = run_pipeline(g, "fuse", verify_each=True)
    assert [n.op for n in after.nodes] == ["reduce_max", "sub", "exp", "reduce_sum", "div"]
    assert_same_outputs(g, after, 1e-6)
    big = (RNG.standard_normal((3, 8)) * 100 + 100).astype(np.float32)
    assert np.isnan(run_reference(g, big)[0]).any()  # inf / inf
    (y,) = run_reference(after, big)
    assert np.all(np.isfinite(y)) and np.allclose(y.sum(-1), 1, atol=1e-5)
