"""The accuracy report of a lossy compile samples inputs shaped like the examples, however they were given."""
import numpy as np

import leptonc
from leptonc.runtime.accuracy import sample_inputs

GRAPH = """graph @g(%x: f32[2, 16]) -> (f32[2, 4]) {
  %w = const @w : f32[16, 4]
  %y = matmul(%x, %w) : f32[2, 4]
  return %y
}
"""


def test_one_bare_example_input_is_the_first_input(tmp_path, monkeypatch):
    monkeypatch.setenv("LEPTONC_CACHE_DIR", str(tmp_path))
    x = np.ones((2, 16), np.float32)
    graph = leptonc.parse_ir(GRAPH, constants={"w": np.eye(16, 4, dtype=np.float32)})
    for given in (x, (x,), [x]):
        assert [a.shape for a in sample_inputs(graph, 1, given)[0]] == [(2, 16)]
    cm = leptonc.compile(graph, x, passes="quantize{weights=int8}")
    assert cm.manifest["accuracy"]["outputs"][0]["name"] == "y"
