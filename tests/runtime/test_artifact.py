"""The artifact: save/load round trip, and every kind of damage is a clear error with nothing from the
archive executed: tampered members, manifests that lie about sizes, safetensors headers that lie about
offsets, zip bombs, links, duplicate and unknown members, malformed JSON."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import leptonc
from leptonc.ir import DType, Graph, TensorType
from leptonc.runtime.artifact import FORMAT_VERSION, ArtifactError

from .artifact_tools import edit_manifest, isolated_home, machine_key, members, write


@pytest.fixture(scope="module", autouse=True)
def home(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        yield isolated_home(tmp_path_factory, mp)


def small_graph() -> Graph:
    rng = np.random.default_rng(0)
    g = Graph("small")
    x = g.add_input("x", TensorType(DType.f32, ("B", 16)))
    w = g.add_constant(rng.standard_normal((16, 8)).astype(np.float32), "fc.weight")
    b = g.add_constant(rng.standard_normal(8).astype(np.float32), "fc.bias")
    g.set_outputs([g.add("relu", g.add("add", g.add("matmul", x, w), b), name="y")])
    return g


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("art") / "small.lep"
    cm = leptonc.compile(small_graph(), quiet=True)
    cm.save(path)
    return path


def _rewrite(src, dst, edit):
    """Copy a zip, passing each member through edit(name, data) -> (name, data) or None to drop it."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            out = edit(info.filename, zin.read(info.filename))
            if out is not None:
                zout.writestr(out[0], out[1])


def test_round_trip_runs_and_matches(saved):
    cm = leptonc.load(saved)
    x = np.random.default_rng(1).standard_normal((5, 16)).astype(np.float32)
    np.testing.assert_allclose(cm(x), leptonc.run_reference(small_graph(), x)[0], rtol=1e-5, atol=1e-6)
    with zipfile.ZipFile(saved) as z:
        assert sorted(z.namelist()) == ["graph.lir", "manifest.json", "model.c", "model.so", "signature.json",
                                        "weights.safetensors"]
        manifest = json.loads(z.read("manifest.json"))
    assert manifest["format_version"] == FORMAT_VERSION and manifest["target"] == "cpu"
    assert manifest["signature"]["symbols"] == ["B"]
    assert manifest["pipeline"].endswith("fuse") and manifest["leptonc_version"] == leptonc.__version__
    assert set(manifest["members"]) == {"graph.lir", "model.c", "model.so", "weights.safetensors"}
    assert "avx2" in manifest["cpu_features"] or not manifest["cpu_features"] or "sse4_2" in manifest["cpu_features"]


def _flip_byte(data: bytes, where: int) -> bytes:
    return data[:where] + bytes([data[where] ^ 0xFF]) + data[where + 1:]


@pytest.mark.parametrize("member", ["weights.safetensors", "model.so", "model.c", "graph.lir"])
def test_tampered_member_is_refused(saved, tmp_path, member):
    bad = tmp_path / "bad.lep"
    _rewrite(saved, bad, lambda n, d: (n, _flip_byte(d, len(d) - 3) if n == member else d))
    with pytest.raises(ArtifactError, match=f"{member} does not match its sha256"):
        leptonc.load(bad)


def test_tampered_library_is_never_loaded(saved, tmp_path, monkeypatch):
    bad = tmp_path / "bad.lep"
    _rewrite(saved, bad, lambda n, d: (n, _flip_byte(d, 100) if n == "model.so" else d))
    loaded = []
    import ctypes

    real = ctypes.CDLL

    def spy(path, *a, **k):
        loaded.append(str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(ctypes, "CDLL", spy)
    with pytest.raises(ArtifactError):
        leptonc.load(bad)
    assert not any("lib-" in p or p.endswith("model.so") for p in loaded)


@pytest.mark.parametrize("name", ["../evil.so", "/etc/evil", "a/../../evil"])
def test_zip_slip_names_are_refused(saved, tmp_path, name):
    bad = tmp_path / "bad.lep"
    _rewrite(saved, bad, lambda n, d: (n, d))
    with zipfile.ZipFile(bad, "a") as z:
        z.writestr(name, b"payload")
    with pytest.raises(ArtifactError, match="escapes the archive"):
        leptonc.load(bad)
    assert not os.path.exists(tmp_path.parent / "evil.so")


def test_truncated_file_is_refused(saved, tmp_path):
    data = saved.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 10):
        bad = tmp_path / f"cut{cut}.lep"
        bad.write_bytes(data[:cut])
        with pytest.raises(ArtifactError, match="not a zip file, or truncated|unreadable|missing"):
            leptonc.load(bad)


def test_unknown_format_version_is_refused(saved, tmp_path):
    bad = tmp_path / "v99.lep"

    def edit(n, d):
        if n == "manifest.json":
            m = json.loads(d)
            m["format_version"] = 99
            return n, json.dumps(m).encode()
        return n, d

    _rewrite(saved, bad, edit)
    with pytest.raises(ArtifactError, match="format version 99 is not supported"):
        leptonc.load(bad)


def test_not_an_artifact(tmp_path):
    p = tmp_path / "x.lep"
    p.write_text("hello")
    with pytest.raises(ArtifactError, match="not a leptonc artifact"):
        leptonc.load(p)
    with pytest.raises(ArtifactError, match="no such file"):
        leptonc.load(tmp_path / "missing.lep")


def test_cpu_lacking_a_feature_rebuilds_from_source(saved, tmp_path):
    bad = tmp_path / "future.lep"
    edit_manifest(saved, bad, lambda m: m["cpu_features"].append("avx1024"), key=machine_key())
    with pytest.warns(UserWarning, match="lacks avx1024"):
        cm = leptonc.load(bad)  # rebuilt with this machine's compiler
    x = np.ones((2, 16), np.float32)
    np.testing.assert_allclose(cm(x), leptonc.run_reference(small_graph(), x)[0], rtol=1e-5, atol=1e-6)


RUN_WITHOUT_TORCH = r"""
import builtins, sys
real_import = builtins.__import__
def guarded(name, *args, **kwargs):
    if name.split(".")[0] in ("torch", "onnx", "onnxruntime"):
        raise ImportError(f"importing {name} is forbidden in this test")
    return real_import(name, *args, **kwargs)
builtins.__import__ = guarded
import numpy as np, leptonc
cm = leptonc.load(sys.argv[1])
y = cm(np.ones((3, 16), np.float32))
assert y.shape == (3, 8), y.shape
assert not any(m.split(".")[0] in ("torch", "onnx") for m in sys.modules)
print("ok", float(y.sum()))
"""


def test_runtime_needs_no_torch_or_onnx(saved):
    done = subprocess.run([sys.executable, "-c", RUN_WITHOUT_TORCH, str(saved)], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok")


def test_a_model_that_ran_keeps_one_copy_of_its_weights_and_still_saves(saved, tmp_path):
    x = np.random.default_rng(1).standard_normal((3, 16)).astype(np.float32)
    fresh = leptonc.compile(small_graph(), quiet=True, cache=False)
    for cm in (leptonc.load(saved), fresh):
        y = cm(x)
        for name, w in cm.executor.weights.items():  # the model's weights are the ones the kernels read
            assert np.shares_memory(cm.weights[name], w)
        cm.save(tmp_path / "again.lep")  # the loaded one copies its file, the fresh one writes its weights
        np.testing.assert_array_equal(leptonc.load(tmp_path / "again.lep")(x)[0], y[0])
