"""Run-time sizes that would make a dim of the graph negative (a 3x3 conv over H = 1) are refused before any
kernel runs, on every target and in the reference, naming the value and the dim; sizes the graph allows run."""
import numpy as np
import pytest

import leptonc
from leptonc.ir.errors import ShapeError
from leptonc.runtime.signature import bind_inputs
from tests.codegen.cpu_check import assert_matches_reference

CONV = """graph @c(%x: f32[1, 1, H, W]) -> (f32[1, 2, H - 2, W - 2]) {
  %w = const @w : f32[2, 1, 3, 3]
  %y = conv(%x, %w) : f32[1, 2, H - 2, W - 2]
  return %y
}
"""


def _graph():
    w = np.random.default_rng(0).standard_normal((2, 1, 3, 3)).astype(np.float32)
    return leptonc.parse_ir(CONV, {"w": w})


SLICE = """graph @s(%x: f32[S, 4]) -> (f32[8, 4]) {
  %y = slice(%x) {starts = [0], ends = [8], axes = [0], steps = [1]} : f32[8, 4]
  return %y
}
"""


@pytest.mark.parametrize("target", ["reference", "cpu", "stablehlo", "triton"])
def test_sizes_shorter_than_a_fixed_slice_are_refused(target, request):
    """A slice to 8 over an axis of size S is typed f32[8, 4]: S = 5 must be refused, not read past x."""
    if target == "triton":
        request.getfixturevalue("triton_device")
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    run = (lambda *xs: leptonc.run_reference(leptonc.parse_ir(SLICE), *xs)) if target == "reference" else \
        leptonc.compile(leptonc.parse_ir(SLICE), (x,), target=target, quiet=True).run
    np.testing.assert_array_equal(run(x)[0], x[:8])
    np.testing.assert_array_equal(run(x[:8])[0], x[:8])
    with pytest.raises(ShapeError, match=r"S = 5 make dim 0 of %x too short for a slice to 8 .*%y"):
        run(x[:5])


@pytest.mark.parametrize("target", ["reference", "cpu", "stablehlo", "triton"])
def test_sizes_that_make_a_dim_negative_are_refused(target, request):
    if target == "triton":
        request.getfixturevalue("triton_device")
    run = (lambda *xs: leptonc.run_reference(_graph(), *xs)) if target == "reference" else \
        leptonc.compile(_graph(), target=target, quiet=True).run  # no example: stablehlo picks H = W = 2
    x = np.random.default_rng(1).standard_normal((1, 1, 6, 5)).astype(np.float32)
    assert_matches_reference(run(x), leptonc.run_reference(_graph(), x))
    for shape in [(1, 1, 1, 5), (1, 1, 0, 0)]:
        with pytest.raises(ShapeError, match=r"make dim \d of %y\w* \(H - 2\) negative"):
            run(np.ones(shape, np.float32))
    assert_matches_reference(run(x), leptonc.run_reference(_graph(), x))  # and the model still runs right


def test_bind_inputs_without_the_graph_dims_checks_only_the_inputs():
    t = _graph().inputs[0]
    arrays, bindings = bind_inputs(["x"], [t.type], [np.ones((1, 1, 1, 5), np.float32)])
    assert bindings == {"H": 1, "W": 5}


def test_a_saved_model_with_such_dims_loads_its_own_library(tmp_path, monkeypatch):
    """The derived program equals the shipped one (the dims list survives JSON), so a model this machine
    signed runs its shipped library: no rebuild, no warning."""
    import warnings

    monkeypatch.setenv("LEPTONC_HOME", str(tmp_path / "home"))
    leptonc.compile(_graph(), quiet=True).save(tmp_path / "m.lep")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cm = leptonc.load(tmp_path / "m.lep")
        with pytest.raises(ShapeError, match="negative"):
            cm(np.ones((1, 1, 1, 5), np.float32))
