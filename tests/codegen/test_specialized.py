"""Dynamic ops whose sizes or axes arrive at run time: the cpu and triton targets specialize the graph on their
values (runtime/specialized.py, leptonc/specialize.py), a program per value tuple, checked against the
reference; values no static form accepts are a LeptoncError naming the node and the operand."""
import threading
import time
import zipfile

import numpy as np
import pytest

import leptonc
from leptonc.ir.errors import LeptoncError
from leptonc.runtime.specialized import SpecializationCache, SpecializingModel
from tests.codegen.cpu_check import assert_matches_reference

# a run-time target shape and a run-time axis
RESHAPE_CUMSUM = """graph @rc(%x: f32[2, 3, 4], %shape: i64[2], %axis: i64[]) -> (f32[?, ?]) {
  %r = reshape_dynamic(%x, %shape) : f32[?, ?]
  %c = cumulative_dynamic(%r, %axis) {kind = "sum"} : f32[?, ?]
  return %c
}
"""
# positions over a dynamic sequence length, as exported LLMs compute them
POSITIONS = """graph @pos(%x: f32[B, S]) -> (f32[B, S]) {
  %sh = shape_of(%x) : i64[2]
  %i = const @i [1] : i64[]
  %n = gather(%sh, %i) : i64[]
  %z = const @z [0] : i64[]
  %o = const @o [1] : i64[]
  %r = range_dynamic(%z, %n, %o) : i64[S]
  %f = cast(%r) {dtype = f32} : f32[S]
  %y = add(%x, %f) : f32[B, S]
  return %y
}
"""
X = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)


def _args(shape, axis):
    return X, np.array(shape, np.int64), np.array(axis, np.int64)


@pytest.fixture(params=["cpu", "triton"])
def target(request):
    if request.param == "triton":
        request.getfixturevalue("triton_device")
    return request.param


def test_run_time_shape_and_axis_run_one_program_per_value(target):
    graph = leptonc.parse_ir(RESHAPE_CUMSUM)
    cm = leptonc.compile(graph, _args([6, 4], 1), target=target, quiet=True)
    assert isinstance(cm, SpecializingModel) and len(cm.cache) == 1  # the example's, built at compile time
    for shape, axis in [([6, 4], 1), ([4, -1], 0), ([3, 8], -1), ([24, 1], 0), ([6, 4], 1)]:
        args = _args(shape, axis)
        assert_matches_reference(cm.run(*args), leptonc.run_reference(graph, *args))
    assert len(cm.cache) == 4


@pytest.mark.parametrize("shape, axis, message", [
    ([5, 5], 0, r"reshape_dynamic.*operand 1 \(%shape\) = \[5, 5\].*24 elements"),
    ([6, 4], 2, r"cumulative_dynamic.*operand 1 \(%axis\) = 2.*out of range"),
    ([-2, 12], 0, r"reshape_dynamic.*operand 1 \(%shape\) = \[-2, 12\]"),
])
def test_values_no_static_form_accepts_are_one_line_errors(shape, axis, message):
    graph = leptonc.parse_ir(RESHAPE_CUMSUM)
    cm = leptonc.compile(graph, target="cpu", quiet=True)
    with pytest.raises(LeptoncError, match=message) as e:
        cm(*_args(shape, axis))
    assert "\n" not in str(e.value)
    args = _args([6, 4], 1)
    assert_matches_reference(cm.run(*args), leptonc.run_reference(graph, *args))  # the model still runs
    with pytest.raises(LeptoncError, match="out of range"):  # and the reference refuses the axis too
        leptonc.run_reference(graph, *_args([6, 4], 2))


def test_constant_operands_no_static_form_accepts_fail_at_compile_time():
    text = """graph @b(%x: f32[2, 3]) -> (f32[?, ?]) {
  %s = const @s [5, 5] : i64[2]
  %r = reshape_dynamic(%x, %s) : f32[?, ?]
  return %r
}
"""
    with pytest.raises(LeptoncError, match=r"reshape_dynamic.*operand 1 \(%s\) = \[5, 5\].*6 elements"):
        leptonc.compile(leptonc.parse_ir(text), target="cpu", quiet=True)


def test_sizes_computed_from_input_sizes_stay_symbolic_in_one_program(target):
    graph = leptonc.parse_ir(POSITIONS)
    cm = leptonc.compile(graph, target=target, quiet=True)
    assert not isinstance(cm, SpecializingModel)  # range(0, S, 1) has S elements: no build per size
    for b, s in [(1, 8), (2, 13), (1, 31)]:
        x = np.random.default_rng(s).standard_normal((b, s)).astype(np.float32)
        assert_matches_reference(cm.run(x), leptonc.run_reference(graph, x))


def test_sizes_no_dim_expresses_specialize_per_size(target):
    """range(0, S, 2) has ceil(S / 2) elements, which no dim expression states: a program per size."""
    graph = leptonc.parse_ir(POSITIONS.replace("%o = const @o [1]", "%o = const @o [2]")
                             .replace("i64[S]", "i64[?]").replace("f32[S]", "f32[?]")
                             .replace("%y = add(%x, %f) : f32[B, S]", "%y = add(%f, %f) : f32[?]")
                             .replace("-> (f32[B, S])", "-> (f32[?])"))
    cm = leptonc.compile(graph, target=target, quiet=True)
    assert isinstance(cm, SpecializingModel)
    for b, s in [(1, 8), (2, 13), (1, 8)]:
        x = np.random.default_rng(s).standard_normal((b, s)).astype(np.float32)
        assert_matches_reference(cm.run(x), leptonc.run_reference(graph, x))
    assert len(cm.cache) == 2


def test_the_values_a_probe_computes_are_bounded_before_they_are_made():
    text = """graph @g(%x: f32[3, 6], %n: i64[]) -> (f32[3, ?], i64[3, ?]) {
  %z = const @z [0] : i64[]
  %o = const @o [1] : i64[]
  %r = range_dynamic(%z, %n, %o) : i64[?]
  %m = reduce_max(%r) {axes = [0], keepdims = true} : i64[1]
  %v, %i = topk_dynamic(%x, %m) : f32[3, ?], i64[3, ?]
  return %v, %i
}
"""
    graph = leptonc.parse_ir(text)
    cm = leptonc.compile(graph, target="cpu", quiet=True)
    x = np.random.default_rng(3).standard_normal((3, 6)).astype(np.float32)
    assert_matches_reference(cm.run(x, np.array(4)), leptonc.run_reference(graph, x, np.array(4)))
    with pytest.raises(LeptoncError, match=r"range_dynamic.*more than the 4096 values"):
        cm(x, np.array(1 << 40))


def test_an_operand_computed_from_data_is_refused_at_compile_time():
    text = """graph @d(%x: f32[128, 64]) -> (f32[?]) {
  %m = reduce_max(%x) {axes = [0, 1], keepdims = false} : f32[]
  %n = cast(%m) {dtype = i64} : i64[]
  %s = unsqueeze(%n) {axes = [0]} : i64[1]
  %y = reshape_dynamic(%x, %s) : f32[?]
  return %y
}
"""
    with pytest.raises(LeptoncError, match=r"reshape_dynamic.*operand 1 \(%s\) reads graph input %x"):
        leptonc.compile(leptonc.parse_ir(text), target="cpu", quiet=True)


def test_a_saved_specializing_model_loads_and_builds_its_programs_here(tmp_path, monkeypatch):
    monkeypatch.setenv("LEPTONC_HOME", str(tmp_path / "home"))
    graph = leptonc.parse_ir(RESHAPE_CUMSUM)
    leptonc.compile(graph, _args([6, 4], 1), quiet=True).save(tmp_path / "m.lep")
    with zipfile.ZipFile(tmp_path / "m.lep") as z:
        assert z.read("model.so") == b"" and z.read("model.c") == b""  # no shipped code to trust or not
    cm = leptonc.load(tmp_path / "m.lep")
    assert isinstance(cm, SpecializingModel) and cm.manifest["specialized_on"] == ["shape", "axis"]
    args = _args([4, 6], 0)
    assert_matches_reference(cm.run(*args), leptonc.run_reference(graph, *args))


def test_threads_calling_with_new_values_at_once_share_one_build():
    graph = leptonc.parse_ir(RESHAPE_CUMSUM)
    cm = leptonc.compile(graph, target="cpu", quiet=True)
    builds = []
    build = cm._build
    cm._build = lambda *a: builds.append(1) or build(*a)
    args = _args([8, 3], 0)
    want = leptonc.run_reference(graph, *args)
    results = [None] * 4

    def call(i):
        results[i] = cm.run(*args)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1 and len(cm.cache) == 1
    for got in results:
        assert_matches_reference(got, want)


def test_the_cache_builds_each_key_once_and_keeps_the_most_recent():
    cache = SpecializationCache(capacity=2)
    builds = []

    def build(key):
        def run():
            builds.append(key)
            time.sleep(0.5)
            return key
        return run

    threads = [threading.Thread(target=cache.get, args=("a", build("a"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert builds == ["a"]
    cache.get("b", build("b"))
    cache.get("a", build("a"))  # cached: "a" becomes the most recent
    cache.get("c", build("c"))  # drops "b"
    assert builds == ["a", "b", "c"] and cache.get("a", build("a")) == "a"
    cache.get("b", build("b"))
    assert builds == ["a", "b", "c", "b"]


def test_a_cached_key_does_not_wait_for_another_build():
    cache = SpecializationCache()
    cache.get("ready", lambda: "ready")
    started, release = threading.Event(), threading.Event()

    def slow():
        started.set()
        release.wait(10)
        return "slow"

    builder = threading.Thread(target=cache.get, args=("slow", slow))
    builder.start()
    started.wait(10)
    assert cache.get("ready", lambda: "rebuilt") == "ready"  # while "slow" is still building
    release.set()
    builder.join()


def test_a_failed_build_reaches_every_waiter_and_is_not_cached():
    cache = SpecializationCache()
    calls = []

    def fail():
        calls.append(1)
        time.sleep(0.5)
        raise LeptoncError("no static form")

    errors = []

    def ask():
        try:
            cache.get("k", fail)
        except LeptoncError as e:
            errors.append(e)

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 3 and len(calls) == 1 and len(cache) == 0


@pytest.mark.slow  # ~30 s a model on a loaded machine: the ONNX export and one build
@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_an_llm_exported_with_a_dynamic_sequence_length_is_one_program_for_every_length(tmp_path, family):
    """Positions and the causal mask over the sequence length (range and slices of S) in a GPT-2 and a Llama
    export: sizes, not values, so the cpu program is built once and runs at every length."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    if family == "gpt2":
        model = transformers.GPT2Model(transformers.GPT2Config(n_layer=2, n_head=2, n_embd=64, vocab_size=128,
                                                               n_positions=64, use_cache=False)).eval()
    else:
        model = transformers.LlamaModel(transformers.LlamaConfig(
            num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, hidden_size=64,
            intermediate_size=128, vocab_size=128, max_position_embeddings=64, use_cache=False)).eval()

    class LastHidden(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, ids):
            return self.model(input_ids=ids, use_cache=False).last_hidden_state

    path = str(tmp_path / f"{family}.onnx")
    torch.onnx.export(LastHidden(), (torch.randint(0, 128, (1, 8)),), path, dynamo=True, input_names=["ids"],
                      dynamic_shapes={"ids": {1: torch.export.Dim("S", min=2, max=64)}}, external_data=False,
                      verbose=False)
    assert "range_dynamic" in {n.op for n in leptonc.import_onnx(path).nodes}
    cm = leptonc.compile(path, quiet=True, cache=False)
    assert not isinstance(cm, SpecializingModel)
    session = ort.InferenceSession(path)
    for s in (8, 13, 31):
        ids = np.random.default_rng(s).integers(0, 128, (1, s))
        want = session.run(None, {"ids": ids})[0]
        np.testing.assert_allclose(cm(ids), want, atol=1e-5 * max(1.0, float(np.abs(want).max())), rtol=0)


def test_a_lossy_compile_measures_its_error_at_the_example_sizes():
    """The accuracy check's fp32 reference is a specializing model too, and its random inputs keep the
    example's values for the inputs that are sizes (random ones would be no valid shape)."""
    w = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    graph = leptonc.parse_ir("""graph @q(%x: f32[4, 64], %s: i64[2]) -> (f32[?, ?]) {
  %w = const @w : f32[64, 64]
  %y = matmul(%x, %w) : f32[4, 64]
  %r = reshape_dynamic(%y, %s) : f32[?, ?]
  return %r
}
""", {"w": w})
    x = np.random.default_rng(1).standard_normal((4, 64)).astype(np.float32)
    cm = leptonc.compile(graph, (x, np.array([16, 16])), passes="quantize", quiet=True)
    report = cm.manifest["accuracy"]
    assert report["within_tolerance"] and report["outputs"][0]["sqnr_db"] > 25


def test_the_specializations_of_a_model_share_one_copy_of_each_weight():
    """Two programs (two run-time target shapes) read one placed copy of the matmul's packed weight and of
    the bias; the results match the reference."""
    text = """graph @m(%x: f32[B, 64], %shape: i64[2]) -> (f32[?, ?]) {
  %w = const @w : f32[64, 48]
  %b = const @b : f32[48]
  %m = matmul(%x, %w) : f32[B, 48]
  %a = add(%m, %b) : f32[B, 48]
  %r = reshape_dynamic(%a, %shape) : f32[?, ?]
  return %r
}
"""
    rng = np.random.default_rng(0)
    graph = leptonc.parse_ir(text, {"w": rng.standard_normal((64, 48)).astype(np.float32),
                                    "b": rng.standard_normal(48).astype(np.float32)})
    cm = leptonc.compile(graph, target="cpu", quiet=True)
    x = rng.standard_normal((4, 64)).astype(np.float32)
    for shape in ([8, 24], [96, 2]):
        args = x, np.array(shape, np.int64)
        assert_matches_reference(cm.run(*args), leptonc.run_reference(graph, *args))
    first, second = cm.cache.models()
    assert first.weights.keys() == second.weights.keys() and len(first.weights) >= 2
    for name, w in first.weights.items():
        assert w.ctypes.data == second.weights[name].ctypes.data, name
