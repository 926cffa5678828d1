"""leptonc.compile(target="stablehlo"), the artifact that holds the module, and leptonc.load."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("torch")

import leptonc  # noqa: E402
from leptonc.codegen.stablehlo.verify import verify_module  # noqa: E402
from leptonc.runtime.artifact import ArtifactError  # noqa: E402
from tests.codegen.test_stablehlo_ops import check_close  # noqa: E402
from tests.model_zoo import as_numpy, build, dynamic, eager_outputs  # noqa: E402


def test_compile_save_load_run(tmp_path):
    module, inputs = build("cnn")
    cm = leptonc.compile(module, inputs, target="stablehlo", quiet=True)
    x = as_numpy(inputs)
    want = eager_outputs(module, inputs)
    check_close([cm(*x)], want)
    verify_module(cm.source)
    path = tmp_path / "cnn.lep"
    cm.save(path)
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == ["graph.lir", "manifest.json", "model.mlir", "signature.json",
                                        "weights.safetensors"]
        assert z.read("model.mlir").decode() == cm.source
    loaded = leptonc.load(path)
    assert loaded.manifest["target"] == "stablehlo"
    check_close([loaded(*x)], want)


def test_artifact_module_is_what_runs_and_other_sizes_compile_at_load(tmp_path):
    module, inputs = build("mlp")
    shapes, other = dynamic("mlp")
    cm = leptonc.compile(module, inputs, target="stablehlo", dynamic_shapes=shapes, quiet=True)
    (symbol,) = cm.signature["symbols"]
    assert cm.manifest["stablehlo"]["bindings"] == {symbol: inputs[0].shape[0]}
    cm.save(tmp_path / "mlp.lep")
    loaded = leptonc.load(tmp_path / "mlp.lep")
    for batch in (inputs, other):
        check_close([loaded(*as_numpy(batch))], eager_outputs(module, batch))
    assert sorted(s[symbol] for s in loaded.model.compiled_sizes) == sorted([inputs[0].shape[0], other[0].shape[0]])


def test_a_modified_module_is_refused(tmp_path):
    module, inputs = build("mlp")
    path = tmp_path / "mlp.lep"
    leptonc.compile(module, inputs, target="stablehlo", quiet=True).save(path)
    tampered = tmp_path / "tampered.lep"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tampered, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            dst.writestr(name, data.replace(b"stablehlo.maximum", b"stablehlo.minimum") if name == "model.mlir" else data)
    with pytest.raises(ArtifactError, match="model.mlir does not match its sha256"):
        leptonc.load(tampered)


def test_inputs_by_name():
    module, inputs = build("mlp")
    cm = leptonc.compile(module, inputs, target="stablehlo", quiet=True)
    name = cm.signature["inputs"][0]["name"]
    x = as_numpy(inputs)[0]
    np.testing.assert_array_equal(cm(**{name: x}), cm(x))


def small_onnx(path) -> None:
    """y = relu(x @ w + b) with x of shape [batch, 8]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["a"]),
             helper.make_node("Relu", ["a"], ["y"])]
    graph = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])], [w, b])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_cli_ir_emit_compile_and_run(tmp_path, capsys):
    from leptonc.cli import main

    model = str(tmp_path / "small.onnx")
    small_onnx(model)
    assert main(["ir", model, "--emit", "stablehlo", "--sizes", "batch=3"]) == 0
    text = capsys.readouterr().out
    assert "specialized to batch=3" in text and "tensor<3x8xf32>" in text
    verify_module(text)
    artifact = str(tmp_path / "small.lep")
    assert main(["compile", model, "-o", artifact, "--target", "stablehlo", "--quiet"]) == 0
    assert main(["run", artifact, "--profile"]) == 0
    out = capsys.readouterr().out
    assert "%y: float32[1, 4]" in out and "XLA executable" in out
    assert main(["inspect", artifact]) == 0
    out = capsys.readouterr().out
    assert "target stablehlo" in out and "specialized to batch=1" in out and "model.mlir" in out
    x = np.random.default_rng(1).standard_normal((5, 8)).astype(np.float32)
    loaded = leptonc.load(artifact)
    check_close([loaded(x)], leptonc.run_reference(loaded.graph, x))


def test_docs_tpu_recipe_runs_on_the_cpu(tmp_path, monkeypatch):
    """The jax-only recipe of docs/stablehlo.md, with PLATFORM = "cpu"."""
    import pathlib
    import re

    pytest.importorskip("safetensors")
    doc = (pathlib.Path(__file__).parents[2] / "docs" / "stablehlo.md").read_text()
    section = doc[doc.index("## Running the artifact's module on a TPU"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert 'PLATFORM = "tpu"' in code
    module, inputs = build("mlp")
    leptonc.compile(module, inputs, target="stablehlo", quiet=True).save(tmp_path / "model.lep")
    monkeypatch.chdir(tmp_path)
    import jax

    x64 = jax.config.jax_enable_x64
    namespace = {}
    try:
        exec(code.replace('PLATFORM = "tpu"', 'PLATFORM = "cpu"'), namespace)
        check_close(namespace["run"](*as_numpy(inputs)), eager_outputs(module, inputs))
    finally:
        jax.config.update("jax_enable_x64", x64)  # the recipe turns it on for the whole process
