"""The compile cache: a second compile of the same ONNX file with the same options loads the first one's
artifact; any change to the model (its external data included) or the options compiles anew; saving a loaded
model copies its file; damaged cache objects are built again; an unwritable cache folder turns the cache off;
threads and processes compiling at once into one cache all get right models."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import leptonc  # noqa: E402
from leptonc import api, cache  # noqa: E402


def _model(path, scale: float, external: str | None = None) -> None:
    """x @ full((4, 3), scale); with `external`, the weight is stored in that file beside the model."""
    w = numpy_helper.from_array(np.full((4, 3), scale, np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    if external is None:
        onnx.save(model, path)
    else:
        onnx.save(model, path, save_as_external_data=True, location=external, size_threshold=0)


X = np.ones((2, 4), np.float32)


def _expected(scale: float) -> np.ndarray:
    return np.full((2, 3), 4 * scale, np.float32)


@pytest.fixture(scope="session")
def built_drivers(tmp_path_factory) -> list:
    """The cache objects of leptonc's drivers (the GEMM's), built once: fresh caches start with them, so that
    a test builds its model's own code only."""
    folder = tmp_path_factory.mktemp("drivers")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LEPTONC_CACHE_DIR", str(folder))
        leptonc.compile(_gemm_graph(), quiet=True, cache=False)
    return [p for p in folder.iterdir() if p.name.startswith("driver-")]


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch, built_drivers):
    """LEPTONC_CACHE_DIR set to a new folder that holds the drivers' objects only."""
    folder = tmp_path / "cache"
    folder.mkdir()
    for p in built_drivers:
        shutil.copyfile(p, folder / p.name)
    monkeypatch.setenv("LEPTONC_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def counted_imports(fresh_cache, monkeypatch):
    """The cache in a fresh folder, and a list that grows by one each time a model is really imported."""
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


def test_a_saved_cache_hit_is_a_file_of_its_own(tmp_path, counted_imports):
    """Writing over a model saved from a cache hit leaves the cache entry as it was: the next compile of the
    model gives the model."""
    path = str(tmp_path / "m.onnx")
    _model(path, 1.0)
    leptonc.compile(path, quiet=True)
    out = tmp_path / "out.lep"
    leptonc.compile(path, quiet=True).save(out)
    (entry,) = (tmp_path / "cache" / "artifacts").glob("*.lep")
    assert out.stat().st_ino != entry.stat().st_ino and out.read_bytes() == entry.read_bytes()
    other = str(tmp_path / "other.onnx")
    _model(other, 5.0)
    leptonc.compile(other, quiet=True, cache=False).save(tmp_path / "other.lep")
    with open(out, "r+b") as f:  # written in place, as a user's tool may
        f.write((tmp_path / "other.lep").read_bytes())
    np.testing.assert_array_equal(leptonc.compile(path, quiet=True)(X), _expected(1.0))
    assert len(counted_imports) == 2  # the first compile and the other model's: the entry still serves


def test_external_data_is_in_the_key(tmp_path, counted_imports):
    path = str(tmp_path / "m.onnx")
    _model(path, 1.0, external="m.onnx.data")
    before = open(path, "rb").read()
    np.testing.assert_array_equal(leptonc.compile(path, quiet=True)(X), _expected(1.0))
    np.full((4, 3), 3.0, np.float32).tofile(tmp_path / "m.onnx.data")  # new weights, the same .onnx file
    assert open(path, "rb").read() == before
    np.testing.assert_array_equal(leptonc.compile(path, quiet=True)(X), _expected(3.0))
    np.testing.assert_array_equal(leptonc.compile(path, quiet=True)(X), _expected(3.0))
    assert len(counted_imports) == 2


def test_external_data_outside_the_model_folder_turns_the_cache_off(tmp_path, counted_imports):
    (tmp_path / "sub").mkdir()
    path = str(tmp_path / "sub" / "m.onnx")
    _model(path, 2.0, external="m.onnx.data")
    model = onnx.load(path, load_external_data=False)
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = "../m.onnx.data"
    os.replace(tmp_path / "sub" / "m.onnx.data", tmp_path / "m.onnx.data")
    onnx.save(model, path)
    with pytest.warns(UserWarning, match="outside its folder; compiling without the compile cache"):
        key = cache.artifact_key(path, target="cpu", passes=None, dynamic_shapes=None,
                                 example_inputs=None)
    assert key is None


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
    with pytest.warns(UserWarning, match="compile cache entry .* is damaged"):
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


@pytest.mark.parametrize("suffix", [".so", ".o"])
def test_a_truncated_build_object_is_built_again(tmp_path, fresh_cache, suffix):
    """A model library (.so) or the GEMM driver's object (.o) cut short, as a crash can leave it, is found
    damaged on its next use and built again, with a warning; the model runs right."""
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    graph = _gemm_graph()
    cm = leptonc.compile(graph, quiet=True)
    np.testing.assert_allclose(cm(a), a @ a.T, rtol=1e-6)
    (obj,) = fresh_cache.glob(f"*{suffix}")
    cut = tmp_path / "cut"
    cut.write_bytes(obj.read_bytes()[:100])
    os.replace(cut, obj)  # (a new file: this process maps the old one, whose pages must stay)
    with pytest.warns(UserWarning, match=f"cache object {obj.name} .* is damaged"):
        again = leptonc.compile(graph, quiet=True, cache=suffix == ".so")  # (the driver: a new library)
    np.testing.assert_allclose(again(a), a @ a.T, rtol=1e-6)
    assert obj.stat().st_size > 100


def _gemm_graph():
    """a @ a^T through the GEMM driver (a dynamic row count keeps it off the small fixed-size path)."""
    from leptonc.ir import DType, Graph, TensorType

    g = Graph("gemm")
    x = g.add_input("x", TensorType(DType.f32, ("M", 4)))
    g.set_outputs([g.add("matmul", x, g.add("transpose", x, perm=(1, 0)), name="y")])
    return g


def test_an_unwritable_cache_folder_compiles_without_a_cache(tmp_path, monkeypatch, built_drivers):
    """A cache folder that cannot be made (its parent is a file: refused to root too) gives one warning; the
    compile, the save and a load work; cache=False and load need no cache folder at all."""
    from leptonc.runtime.files import private_dir

    for p in built_drivers:  # where builds go without a cache: given the drivers, it builds the model only
        shutil.copyfile(p, private_dir() / p.name)
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("LEPTONC_CACHE_DIR", str(tmp_path / "file" / "cache"))
    path = str(tmp_path / "m.onnx")
    _model(path, 2.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cm = leptonc.compile(path, quiet=True)
        again = leptonc.compile(path, quiet=True)
        cm.save(tmp_path / "m.lep")
        loaded = leptonc.load(tmp_path / "m.lep")
        nocache = leptonc.compile(path, quiet=True, cache=False)
    mine = [w for w in caught if "cache folder" in str(w.message)]
    assert len(mine) == 1 and "compiling without a cache" in str(mine[0].message)
    for model in (cm, again, loaded, nocache):
        np.testing.assert_array_equal(model(X), _expected(2.0))


_COMPILE_IN_THREADS = """
import sys
from concurrent.futures import ThreadPoolExecutor
import numpy as np
import leptonc
path, threads = sys.argv[1], int(sys.argv[2])
x = np.ones((2, 4), np.float32)
with ThreadPoolExecutor(threads) as pool:
    ys = list(pool.map(lambda _: leptonc.compile(path, quiet=True)(x), range(threads)))
assert all((y == 12).all() and y.shape == (2, 3) for y in ys), ys
print("ok")
"""


def _compile_at_once(tmp_path, processes: int, threads: int) -> None:
    path = str(tmp_path / "m.onnx")
    _model(path, 3.0)
    env = dict(os.environ)
    procs = [subprocess.Popen([sys.executable, "-c", _COMPILE_IN_THREADS, path, str(threads)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(processes)]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0 and out.strip() == "ok", err[-3000:]
    assert list((tmp_path / "cache").rglob("*.tmp")) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing in the cache is damaged
        np.testing.assert_array_equal(leptonc.compile(path, quiet=True)(X), _expected(3.0))


def test_processes_and_threads_compiling_into_one_cache(tmp_path, fresh_cache):
    _compile_at_once(tmp_path, processes=2, threads=2)


@pytest.mark.slow
def test_processes_and_threads_compiling_into_one_cache_long(tmp_path, monkeypatch):
    """The same into an empty cache, four threads a process: the GEMM driver is built at once too."""
    monkeypatch.setenv("LEPTONC_CACHE_DIR", str(tmp_path / "cache"))
    _compile_at_once(tmp_path, processes=2, threads=4)


def test_a_model_written_while_it_compiles_is_not_stored(tmp_path, counted_imports, monkeypatch):
    """The entry would hold the old file's key and a compile of whatever the import read: it is not kept."""
    path = str(tmp_path / "m.onnx")
    _model(path, 1.0)
    importing = api.import_graph

    def import_then_write(*args, **kwargs):
        graph = importing(*args, **kwargs)
        _model(path, 2.0)  # the file changes after it was read
        return graph

    monkeypatch.setattr(api, "import_graph", import_then_write)
    leptonc.compile(path, quiet=True)
    assert list((tmp_path / "cache" / "artifacts").glob("*.lep")) == []
    monkeypatch.setattr(api, "import_graph", importing)
    np.testing.assert_array_equal(leptonc.compile(path, quiet=True)(X), _expected(2.0))
