"""Index semantics (leptonc/ir/indices.py) on every target: indices in [-n, n) wrap, anything else is the same
IndexRangeError as the reference interpreter's, the model runs right on the next call; integer division by
zero and INT_MIN / -1 give the values div's and mod's docstrings define, never a trap."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import leptonc
from leptonc.ir import parse_ir
from leptonc.ir.errors import IndexRangeError
from tests.codegen.cpu_check import assert_matches_reference

GATHERS = parse_ir("""graph @gathers(%x: f32[5, 3], %i: i64[N], %j: i64[5, 2]) -> (f32[N, 3], f32[5, 2]) {
  %emb = gather(%x, %i) {axis = 0} : f32[N, 3]
  %ge = gather_elements(%x, %j) {axis = 1} : f32[5, 2]
  return %emb, %ge
}""")
GATHER_ND = parse_ir("""graph @gather_nd(%x: f32[2, 4, 3], %k: i64[2, 2, 2]) -> (f32[2, 2]) {
  %nd = gather_nd(%x, %k) {batch_dims = 1} : f32[2, 2]
  return %nd
}""")
SCATTERS = parse_ir("""graph @scatters(%x: f32[4, 3], %i: i64[2, 3], %u: f32[2, 3], %n: i64[2, 1], %v: f32[2, 3],
    %c: f32[2, 1, 6, 2], %w: f32[2, 1, 2, 2], %t: i64[2]) -> (f32[4, 3], f32[4, 3], f32[2, 1, 6, 2], f32[2, 1, 6, 2]) {
  %se = scatter_elements(%x, %i, %u) {axis = 0} : f32[4, 3]
  %sn = scatter_nd(%x, %n, %v) : f32[4, 3]
  %kv = tensor_scatter(%c, %w, %t) {axis = -2, mode = "linear"} : f32[2, 1, 6, 2]
  %ring = tensor_scatter(%c, %w, %t) {axis = -2, mode = "circular"} : f32[2, 1, 6, 2]
  return %se, %sn, %kv, %ring
}""")

X53 = np.arange(15, dtype=np.float32).reshape(5, 3)
X243 = np.arange(24, dtype=np.float32).reshape(2, 4, 3)
X43 = np.zeros((4, 3), np.float32)
U = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
# graph -> (targets that compile it, good inputs with negative indices in range, [(input, bad indices, message)])
CASES = {
    "gathers": (GATHERS, ("cpu", "triton", "stablehlo"),
                (X53, np.array([0, -5, 4, -1], np.int64), np.array([[0, -1], [2, -3], [1, -2], [0, 0], [2, 1]], np.int64)),
                [(1, np.array([0, 5, 9, 1], np.int64), "gather %emb: index 5 is out of range for dim 0 of size 5"),
                 (1, np.array([2, -6], np.int64), "gather %emb: index -6 is out of range for dim 0 of size 5"),
                 (1, np.array([30522], np.int64), "gather %emb: index 30522 is out of range for dim 0 of size 5"),
                 (2, np.array([[0, 1], [2, 0], [0, 0], [3, -4], [0, 5]], np.int64),
                  "gather_elements %ge: index 3 is out of range for dim 1 of size 3")]),
    "gather_nd": (GATHER_ND, ("cpu", "triton", "stablehlo"),
                  (X243, np.array([[[3, -1], [-4, 0]], [[1, 2], [0, -3]]], np.int64)),
                  [(1, np.array([[[3, 1], [0, 0]], [[1, 3], [4, 0]]], np.int64),
                    "gather_nd %nd: index 3 is out of range for dim 2 of size 3"),
                   (1, np.array([[[0, 0], [-5, 0]], [[0, 0], [0, 0]]], np.int64),
                    "gather_nd %nd: index -5 is out of range for dim 1 of size 4")]),
    "scatters": (SCATTERS, ("cpu", "stablehlo"),
                 (X43, np.array([[0, -1, 2], [-4, 1, 3]], np.int64), U, np.array([[-1], [1]], np.int64), U,
                  np.zeros((2, 1, 6, 2), np.float32), np.ones((2, 1, 2, 2), np.float32), np.array([0, 4], np.int64)),
                 [(1, np.array([[0, 1, 2], [4, 0, 0]], np.int64),
                   "scatter_elements %se: index 4 is out of range for dim 0 of size 4"),
                  (3, np.array([[1], [-5]], np.int64), "scatter_nd %sn: index -5 is out of range for dim 0 of size 4"),
                  # a cache write: positions t[b] + step, in [0, 6) without wrapping (mode circular wraps them)
                  (7, np.array([1, 5], np.int64), "tensor_scatter %kv: index 6 is out of range for dim 2 of size 6"),
                  (7, np.array([-1, 0], np.int64), "tensor_scatter %kv: index -1 is out of range for dim 2 of size 6")]),
}


def _message(run, inputs) -> str:
    with pytest.raises(IndexRangeError) as e:
        run(*inputs)
    return str(e.value)


def test_reference_wraps_negative_indices_and_names_the_first_bad_one():
    for graph, _, good, bad in CASES.values():
        ref = leptonc.run_reference(graph, *good)
        positive = [np.where(a < 0, a + graph.inputs[0].type.shape[0], a) if a.dtype.kind == "i" else a
                    for a in good]
        if graph is GATHERS:  # the same rows through non-negative indices
            np.testing.assert_array_equal(ref[0], X53[positive[1]])
        for pos, indices, message in bad:
            inputs = list(good)
            inputs[pos] = indices
            assert _message(lambda *a: leptonc.run_reference(graph, *a), inputs) == message


@pytest.mark.parametrize("name,target", [(n, t) for n, (_, targets, _, _) in CASES.items() for t in targets])
def test_targets_raise_the_reference_error_then_run_right(name, target, request, tmp_path):
    if target == "triton":
        pytest.importorskip("triton")
        request.getfixturevalue("triton_device")
    if target == "stablehlo":
        pytest.importorskip("jax")
    graph, _, good, bad = CASES[name]
    cm = leptonc.compile(graph, target=target, quiet=True, cache=False)
    cm.save(tmp_path / "m.lep")
    ref = leptonc.run_reference(graph, *good)
    for model in (cm, leptonc.load(tmp_path / "m.lep")):
        assert_matches_reference(model.run(*good), ref)
        for pos, indices, message in bad:
            inputs = list(good)
            inputs[pos] = indices
            assert _message(model.run, inputs) == message
            assert_matches_reference(model.run(*good), ref)  # nothing of the failed run lingers


@pytest.mark.parametrize("target", ["cpu", "stablehlo"])
def test_constant_indices_out_of_range_are_never_folded_into_rows(target):
    """Folding evaluates the op's own reference, which checks too: the bad constant stays for the run to report."""
    if target == "stablehlo":
        pytest.importorskip("jax")
    g = leptonc.Graph("folded")
    x = g.add_input("x", leptonc.TensorType(leptonc.DType.f32, (3,)))
    rows = g.add("gather", g.add_constant(X53, "table"), g.add_constant(np.array([1, -7], np.int64), "ids"), axis=0)
    g.set_outputs([g.add("add", x, rows)])
    message = f"gather %{rows.name}: index -7 is out of range for dim 0 of size 5"
    assert _message(lambda *a: leptonc.run_reference(g, *a), [np.zeros(3, np.float32)]) == message
    cm = leptonc.compile(g, target=target, quiet=True, cache=False)
    assert _message(cm.run, [np.zeros(3, np.float32)]) == message


def test_torch_embedding_out_of_range_raises_like_torch():
    torch = pytest.importorskip("torch")
    emb = torch.nn.Embedding(10, 4).eval()
    ids = torch.tensor([[1, 9, 0]])
    cm = leptonc.compile(emb, (ids,), quiet=True, cache=False)
    np.testing.assert_allclose(cm.run(ids.numpy())[0], emb(ids).detach().numpy(), rtol=1e-6)
    bad = torch.tensor([[1, 10, 0]])
    with pytest.raises(IndexError):
        emb(bad)
    with pytest.raises(IndexRangeError, match=r"^gather %\w+: index 10 is out of range for dim 0 of size 10$"):
        cm(bad.numpy())
    np.testing.assert_allclose(cm.run(ids.numpy())[0], emb(ids).detach().numpy(), rtol=1e-6)


def test_onnx_gather_out_of_range_raises_on_cpu_and_in_the_reference():
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    table = np.arange(12, dtype=np.float32).reshape(6, 2)
    model = helper.make_model(helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["rows"], axis=0)], "emb",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [3])],
        [helper.make_tensor_value_info("rows", TensorProto.FLOAT, [3, 2])],
        [numpy_helper.from_array(table, "table")]), opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    graph = leptonc.import_onnx(model)
    cm = leptonc.compile(model, quiet=True, cache=False)
    good = np.array([5, -6, 2], np.int64)
    np.testing.assert_array_equal(cm.run(good)[0], table[[5, 0, 2]])
    for bad in (np.array([0, 6, 1], np.int64), np.array([-7, 0, 0], np.int64)):
        message = _message(lambda *a: leptonc.run_reference(graph, *a), [bad])
        assert message.startswith("gather %") and f"index {bad[bad != 0][0]} is out of range" in message
        assert _message(cm, [bad]) == message


def test_cpu_index_errors_are_per_call_across_threads():
    cm = leptonc.compile(GATHERS, quiet=True, cache=False)
    good = CASES["gathers"][2]
    bad = (X53, np.array([0, 7], np.int64), good[2])
    expected = leptonc.run_reference(GATHERS, *good)
    failures: list[str] = []

    def worker(inputs, ok: bool):
        for _ in range(100):
            try:
                got = cm.run(*inputs)
                if not ok or not all(np.array_equal(a, b) for a, b in zip(got, expected)):
                    failures.append("a run gave no error or a wrong answer")
            except IndexRangeError as e:
                if ok or str(e) != "gather %emb: index 7 is out of range for dim 0 of size 5":
                    failures.append(str(e))

    threads = [threading.Thread(target=worker, args=(inputs, ok)) for inputs, ok in ((good, True), (bad, False)) * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[:3]


def _division_graph(dtype: str):
    return parse_ir(f"""graph @division(%a: {dtype}[6], %b: {dtype}[6]) -> ({dtype}[6], {dtype}[6], {dtype}[6]) {{
  %q = div(%a, %b) : {dtype}[6]
  %r = mod(%a, %b) : {dtype}[6]
  %f = mod(%a, %b) {{fmod = true}} : {dtype}[6]
  return %q, %r, %f
}}""")


@pytest.mark.parametrize("target", ["reference", "cpu", "triton", "stablehlo"])
@pytest.mark.parametrize("dtype", ["i64", "i32"])
def test_integer_division_by_zero_and_int_min_by_minus_one_never_trap(target, dtype, request):
    lo = np.iinfo(np.dtype({"i64": np.int64, "i32": np.int32}[dtype])).min
    a = np.array([7, -7, lo, lo, -7, 7], dtype={"i64": np.int64, "i32": np.int32}[dtype])
    b = np.array([0, 0, -1, 0, -1, -2], dtype=a.dtype)
    expected = [[7, -7, lo, lo, 7, -3],  # a zero divisor counts as 1; INT_MIN / -1 wraps; truncation toward 0
                [0, 0, 0, 0, 0, -1],     # Python's %: the divisor's sign
                [0, 0, 0, 0, 0, 1]]      # fmod: the dividend's sign
    graph = _division_graph(dtype)
    if target == "reference":
        got = leptonc.run_reference(graph, a, b)
    else:
        if target == "triton":
            pytest.importorskip("triton")
            request.getfixturevalue("triton_device")
        if target == "stablehlo":
            pytest.importorskip("jax")
        got = leptonc.compile(graph, target=target, quiet=True, cache=False).run(a, b)
    assert [g.tolist() for g in got] == expected


@pytest.mark.parametrize("target", ["cpu", "triton"])
def test_a_bad_index_in_a_matrix_of_indices_is_named(target, request):
    """The record slot of a kernel is one int64 whatever the rank of its index tensor (triton's positions are
    a sum of index terms)."""
    if target == "triton":
        pytest.importorskip("triton")
        request.getfixturevalue("triton_device")
    g = parse_ir("""graph @rows(%x: f32[5, 3], %i: i64[2, 3]) -> (f32[2, 3, 3]) {
  %rows = gather(%x, %i) {axis = 0} : f32[2, 3, 3]
  return %rows
}""")
    cm = leptonc.compile(g, target=target, quiet=True, cache=False)
    bad = np.array([[0, 1, 2], [3, 4, 5]], np.int64)
    assert _message(cm.run, [X53, bad]) == "gather %rows: index 5 is out of range for dim 0 of size 5"
    good = np.array([[0, 1, 2], [3, 4, -5]], np.int64)
    assert_matches_reference(cm.run(X53, good), leptonc.run_reference(g, X53, good))
