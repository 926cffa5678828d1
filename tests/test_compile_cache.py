"""The compile cache: a second compile of the same ONNX file with the same options loads the first one's
artifact; any change to the model or the options compiles anew; saving a loaded model copies its file."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import leptonc  # noqa: E402
from leptonc import api  # noqa: E402


def _model(path, scale: float) -> None:
    w = numpy_helper.from_array(np.full((4, 3), scale, np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


@pytest.fixture
def counted_imports(tmp_path, monkeypatch):
    """The cache in a fresh folder, and a list that grows by one each time a model is really imported."""
    monkeypatch.setenv("LEPTONC_CACHE_DIR", str(tmp_path / "cache"))
    calls = []
    real = api.import_graph
    monkeypatch.setattr(api, "import_graph", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_second_compile_of_a_file_comes_from_the_cache(tmp_path, counted_imports):
    path = str(tmp_path / "m.onnx")
    _model(path, 1.0)
    x = np.ones((2, 4), np.float32)
    first = leptonc.compile(path, quiet=True)
    second = leptonc.compile(path, quiet=True)
    assert len(counted_imports) == 1
    np.testing.assert_array_equal(first(x), second(x))
    assert (tmp_path / "cache" / "artifacts").is_dir()


def test_options_and_contents_are_in_the_key(tmp_path, counted_imports):
    path = str(tmp_path / "m.onnx")
    _model(path, 1.0)
    leptonc.compile(path, quiet=True)
    leptonc.compile(path, passes="cse", quiet=True)            # other passes
    leptonc.compile(path, quiet=True, cache=False)             # cache off
    _model(path, 2.0)                                          # same file name, other weights
    y = leptonc.compile(path, quiet=True)(np.ones((2, 4), np.float32))
    assert len(counted_imports) == 4
    np.testing.assert_array_equal(y, np.full((2, 3), 8.0, np.float32))


def test_save_of_a_loaded_model_copies_its_file_unless_it_changed(tmp_path, counted_imports):
    path = str(tmp_path / "m.onnx")
    _model(path, 1.0)
    cm = leptonc.compile(path, quiet=True)
    a, b = tmp_path / "a.lep", tmp_path / "b.lep"
    cm.save(a)
    loaded = leptonc.load(a)
    loaded.save(b)
    assert a.read_bytes() == b.read_bytes()
    a.write_bytes(b"damaged")       # the file it came from changed: the model is written from memory
    loaded.save(tmp_path / "c.lep")
    x = np.ones((2, 4), np.float32)
    np.testing.assert_array_equal(leptonc.load(tmp_path / "c.lep")(x), cm(x))


def test_a_save_links_a_cache_entry_and_copies_a_users_file(tmp_path, counted_imports):
    """A model from the cache saves as a link to its entry (the cache never writes an entry in place); one
    loaded from a user's file saves as a copy, so that writing either file later leaves the other as it was."""
    path = str(tmp_path / "m.onnx")
    _model(path, 1.0)
    leptonc.compile(path, quiet=True)
    out, copy = tmp_path / "out.lep", tmp_path / "copy.lep"
    leptonc.compile(path, quiet=True).save(out)
    (entry,) = (tmp_path / "cache" / "artifacts").glob("*.lep")
    assert out.stat().st_ino == entry.stat().st_ino
    leptonc.load(out).save(copy)
    assert copy.stat().st_ino != out.stat().st_ino and copy.read_bytes() == out.read_bytes()


def test_cli_refuses_to_overwrite_a_file_that_is_not_an_artifact(tmp_path):
    path = tmp_path / "m.onnx"
    _model(str(path), 1.0)
    before = path.read_bytes()
    done = subprocess.run([sys.executable, "-m", "leptonc.cli", "compile", str(path), "-o", str(path)],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "not a leptonc artifact" in done.stderr
    assert path.read_bytes() == before


def test_a_damaged_entry_is_compiled_anew(tmp_path, counted_imports):
    path = str(tmp_path / "m.onnx")
    _model(path, 1.0)
    leptonc.compile(path, quiet=True)
    (entry,) = (tmp_path / "cache" / "artifacts").glob("*.lep")
    entry.write_bytes(entry.read_bytes()[:-100])
    y = leptonc.compile(path, quiet=True)(np.ones((2, 4), np.float32))
    assert len(counted_imports) == 2
    np.testing.assert_array_equal(y, np.full((2, 3), 4.0, np.float32))


def test_onnx_with_dynamic_leading_dims_runs_at_any_batch(tmp_path, counted_imports):
    path = str(tmp_path / "m.onnx")
    _model(path, 1.0)
    cm = leptonc.compile(path, dynamic_shapes=["batch"], quiet=True)
    assert cm.signature["inputs"][0]["shape"] == ["batch", 4]
    for n in (1, 5):
        np.testing.assert_array_equal(cm(np.ones((n, 4), np.float32)), np.full((n, 3), 4.0, np.float32))
    leptonc.compile(path, quiet=True)  # static shapes: another entry
    assert len(counted_imports) == 2
