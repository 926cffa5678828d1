"""lower-einsum against the reference interpreter: the graph before and after the pass give the same
outputs (floats within f32 rounding, integers exactly) for batch, contracted, free and summed-out letters
in any order, one to four operands, symbolic sizes and integer operands; the forms it leaves alone
(diagonals, broadcasts) stay einsums."""
from __future__ import annotations

import numpy as np
import pytest

import leptonc
from leptonc.ir import DType, Graph, TensorType
from leptonc.passes import run_pipeline

LOWERED = [
    ("bhqd,bhkd->bhqk", (2, 3, 4, 8), (2, 3, 5, 8)), ("bij,bjk->bik", (2, 3, 4), (2, 4, 5)),
    ("ij,jk", (3, 4), (4, 5)), ("i,i", (6,), (6,)), ("i,j->ij", (3,), (4,)), ("ij,j", (3, 5), (5,)),
    ("bsd,dfe->fbs", (2, 3, 4), (4, 6, 2)), ("kbi,bjk->jib", (4, 2, 3), (2, 5, 4)), ("ab,cd->", (2, 3), (4, 5)),
    ("...ij,...jk->...ik", (2, 3, 4), (2, 4, 5)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.int32], ids=str)
@pytest.mark.parametrize("equation, sa, sb", LOWERED, ids=lambda v: str(v))
def test_lowered_einsum_keeps_the_outputs(equation, sa, sb, dtype):
    rng = np.random.default_rng(0)
    a, b = (rng.integers(-5, 5, s).astype(dtype) for s in (sa, sb))
    g = Graph("einsum")
    x, y = (g.add_input(n, TensorType(DType.from_numpy(dtype), s)) for n, s in (("a", sa), ("b", sb)))
    g.set_outputs([g.add("einsum", x, y, equation=equation)])
    lowered = run_pipeline(g, "lower-einsum")
    assert not any(n.op == "einsum" for n in lowered.nodes)
    want = leptonc.run_reference(g, a, b)[0]
    for got in (leptonc.run_reference(lowered, a, b)[0], leptonc.compile(g, quiet=True).run(a, b)[0]):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("equation, shapes", [
    ("ij,j,jk->ik", [(2, 3), (3,), (3, 4)]), ("ab,bc,cd,de->ae", [(2, 3), (3, 4), (4, 5), (5, 2)]),
    ("bij,bjk,bk->bi", [(2, 3, 4), (2, 4, 5), (2, 5)]), ("ij->ji", [(3, 4)]), ("bij->", [(2, 3, 4)]),
    ("ij->ij", [(3, 4)]), ("...i->...", [(2, 3, 4)])], ids=lambda v: str(v))
def test_other_operand_counts_are_lowered(equation, shapes):
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    g = Graph("einsum")
    args = [g.add_input(f"x{i}", TensorType(DType.f32, s)) for i, s in enumerate(shapes)]
    g.set_outputs([g.add("einsum", *args, equation=equation)])
    lowered = run_pipeline(g, "lower-einsum")
    assert not any(n.op == "einsum" for n in lowered.nodes)
    want = leptonc.run_reference(g, *xs)[0]
    for got in (leptonc.run_reference(lowered, *xs)[0], leptonc.compile(g, quiet=True).run(*xs)[0]):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_symbolic_sizes_are_lowered():
    g = Graph("attention")
    q = g.add_input("q", TensorType(DType.f32, ("B", 2, "S", 8)))
    k = g.add_input("k", TensorType(DType.f32, ("B", 2, "S", 8)))
    g.set_outputs([g.add("einsum", q, k, equation="bhqd,bhkd->bhqk")])
    cm = leptonc.compile(g, quiet=True)
    for batch, seq in ((1, 3), (2, 5)):
        rng = np.random.default_rng(batch)
        a, b = (rng.standard_normal((batch, 2, seq, 8)).astype(np.float32) for _ in range(2))
        np.testing.assert_allclose(cm.run(a, b)[0], leptonc.run_reference(g, a, b)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("equation, sa, sb", [("ii,ij->ij", (3, 3), (3, 4)),
                                               ("...ij,...jk->...ik", (2, 1, 3, 4), (5, 4, 6))],
                         ids=["diagonal", "broadcast"])
def test_diagonals_and_broadcasts_stay_einsums(equation, sa, sb):
    g = Graph("kept")
    x, y = (g.add_input(n, TensorType(DType.f32, s)) for n, s in (("a", sa), ("b", sb)))
    g.set_outputs([g.add("einsum", x, y, equation=equation)])
    assert [n.op for n in run_pipeline(g, "lower-einsum").nodes] == ["einsum"]
