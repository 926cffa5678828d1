"""The reference interpreter needs numpy only: a real imported model, written as IR text plus its
weights, parses and runs in a fresh interpreter where importing torch or onnx raises."""
import os
import subprocess
import sys

import numpy as np

import leptonc
from tests.model_zoo import as_numpy, build, eager_outputs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHILD = r"""
import importlib.abc, sys

BLOCKED = ("torch", "onnx", "onnxruntime", "transformers")

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked: the reference interpreter must not need it")
        return None

sys.meta_path.insert(0, Block())
try:
    import torch  # noqa: F401
    raise SystemExit("torch could still be imported")
except ImportError:
    pass

import numpy as np
import leptonc

folder = sys.argv[1]
with open(f"{folder}/model.lir") as f:
    text = f.read()
weights = dict(np.load(f"{folder}/weights.npz"))
data = np.load(f"{folder}/data.npz")
graph = leptonc.parse_ir(text, weights)
inputs = [data[f"input{i}"] for i in range(len(graph.inputs))]
outputs = leptonc.run_reference(graph, *inputs)
for i, out in enumerate(outputs):
    np.testing.assert_array_equal(out, data[f"output{i}"])
assert not [m for m in sys.modules if m.split(".")[0] in BLOCKED]
print("ran", len(graph.nodes), "nodes without torch or onnx")
"""


def test_reference_runs_without_torch_or_onnx(tmp_path):
    module, inputs = build("bert_small")
    graph = leptonc.import_torch(module, inputs)
    arrays = as_numpy(inputs)
    outputs = leptonc.run_reference(graph, *arrays)
    assert len(outputs) == len(eager_outputs(module, inputs))
    (tmp_path / "model.lir").write_text(leptonc.print_ir(graph))
    np.savez(tmp_path / "weights.npz", **graph.constants)
    np.savez(tmp_path / "data.npz", **{f"input{i}": a for i, a in enumerate(arrays)},
             **{f"output{i}": a for i, a in enumerate(outputs)})
    result = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, env={**os.environ, "PYTHONPATH": ROOT})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "without torch or onnx" in result.stdout
