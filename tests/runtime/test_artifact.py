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


# -- manifests, headers and zips that lie ---------------------------------------------------------------------

def _load_quietly(path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return leptonc.load(path)


@pytest.mark.parametrize("lie", ["arena", "weights", "inputs", "kernels"])
def test_a_manifest_that_lies_about_the_program_changes_nothing(saved, tmp_path, lie):
    """Sizes that drive the arena, the order of the weights, the input signature: derived from the IR."""
    edits = {"arena": lambda m: m["program"]["buffers"].append({"bytes": 1, "first": 0, "last": 0}),
             "weights": lambda m: m["program"]["weights"].reverse(),
             "inputs": lambda m: m["signature"]["inputs"][0].update(shape=[3, 1 << 20]),
             "kernels": lambda m: m["program"]["kernels"].clear()}
    bad = tmp_path / "lie.lep"
    edit_manifest(saved, bad, edits[lie])  # hashes recomputed, unsigned
    cm = _load_quietly(bad)
    x = np.random.default_rng(2).standard_normal((3, 16)).astype(np.float32)
    np.testing.assert_allclose(cm(x), leptonc.run_reference(small_graph(), x)[0], rtol=1e-5, atol=1e-6)
    assert cm.manifest["program"] == leptonc.load(saved).manifest["program"]


def _with_weights(saved, path, tensors: dict, header_edit=None):
    from leptonc.runtime import safetensors

    blob = safetensors.dumps(tensors)
    if header_edit is not None:
        n = int.from_bytes(blob[:8], "little")
        header = json.loads(blob[8:8 + n])
        header_edit(header)
        text = json.dumps(header).encode()
        blob = len(text).to_bytes(8, "little") + text + blob[8 + n:]
    data = members(saved)
    data["weights.safetensors"] = blob
    write(path, data)


def test_weights_smaller_than_the_program_reads_are_refused(saved, tmp_path):
    from leptonc.runtime import safetensors

    stored = safetensors.loads(members(saved)["weights.safetensors"])
    small = {name: w[: len(w) // 2] for name, w in stored.items()}  # self-consistent, half the rows
    _with_weights(saved, tmp_path / "small.lep", small)
    with pytest.raises(ArtifactError, match="the program reads|IR's constant"):
        _load_quietly(tmp_path / "small.lep")
    _with_weights(saved, tmp_path / "missing.lep", {k: v for k, v in list(stored.items())[1:]})
    with pytest.raises(ArtifactError, match="lacks"):
        _load_quietly(tmp_path / "missing.lep")


@pytest.mark.parametrize("edit,message", [
    (lambda h: h[next(iter(h))].update(data_offsets=[0, 1 << 40]), "outside the data"),
    (lambda h: h[next(iter(h))].update(shape=[4]), "holds"),
    (lambda h: h[list(h)[1]].update(data_offsets=[0, 32]), "overlap"),
    (lambda h: h[next(iter(h))].update(shape=[-1]), "not a list of sizes"),
    (lambda h: h[next(iter(h))].update(dtype="Q7"), "Q7"),
    (lambda h: h.update(x=[1]), "expected dtype"),
])
def test_safetensors_headers_are_bounds_checked(saved, tmp_path, edit, message):
    from leptonc.runtime import safetensors

    stored = safetensors.loads(members(saved)["weights.safetensors"])
    _with_weights(saved, tmp_path / "h.lep", dict(stored), edit)
    with pytest.raises(ArtifactError, match=message):
        _load_quietly(tmp_path / "h.lep")


def test_a_huge_safetensors_header_length_is_refused():
    from leptonc.ir.errors import LeptoncError
    from leptonc.runtime import safetensors

    with pytest.raises(LeptoncError, match="a header of"):
        safetensors.loads((1 << 62).to_bytes(8, "little") + b"{}")


def _zip_with(path, entries):
    """A zip of (ZipInfo or name, bytes) entries, in order."""
    with zipfile.ZipFile(path, "w") as z:
        for info, data in entries:
            z.writestr(info, data)


def _bomb(saved, path, declared: int | None = None) -> None:
    """The artifact with graph.lir replaced by 256 MiB of zeros deflated to about 256 KiB; `declared`: the
    uncompressed size its headers state instead of the true one."""
    info = zipfile.ZipInfo("graph.lir")
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "w") as z:
        for name, blob in members(saved).items():
            if name != "graph.lir":
                z.writestr(name, blob)
        with z.open(info, "w") as f:
            chunk = bytes(1 << 20)
            for _ in range(256):
                f.write(chunk)
    if declared is not None:  # patch the size in the local header (offset 22) and the central one (24)
        raw = bytearray(path.read_bytes())
        with zipfile.ZipFile(path) as z:
            local = z.getinfo("graph.lir").header_offset
        central = raw.find(b"PK\x01\x02", raw.find(b"PK\x01\x02"))
        while raw[central + 46:central + 46 + 9] != b"graph.lir":
            central = raw.find(b"PK\x01\x02", central + 4)
        raw[local + 22:local + 26] = raw[central + 24:central + 28] = declared.to_bytes(4, "little")
        path.write_bytes(bytes(raw))


@pytest.mark.parametrize("declared", [None, 1000])
def test_zip_bomb_is_refused_quickly_in_bounded_memory(saved, tmp_path, declared):
    import time
    import tracemalloc

    bomb = tmp_path / "bomb.lep"
    _bomb(saved, bomb, declared)
    assert bomb.stat().st_size < 1 << 20
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(ArtifactError, match="zip bomb" if declared is None else "graph.lir"):
        leptonc.load(bomb)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 32 << 20 and time.perf_counter() - start < 5


def test_links_duplicates_and_unknown_members_are_refused(saved, tmp_path):
    data = members(saved)
    link = zipfile.ZipInfo("model.so")
    link.external_attr = (0o120777 << 16)  # a symlink entry
    _zip_with(tmp_path / "link.lep", [(n, d) for n, d in data.items() if n != "model.so"] + [(link, b"/etc/passwd")])
    with pytest.raises(ArtifactError, match="not a plain file"):
        leptonc.load(tmp_path / "link.lep")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (zipfile warns of the duplicate name)
        _zip_with(tmp_path / "dup.lep", list(data.items()) + [("graph.lir", data["graph.lir"])])
    with pytest.raises(ArtifactError, match="appears twice"):
        leptonc.load(tmp_path / "dup.lep")
    _zip_with(tmp_path / "extra.lep", list(data.items()) + [("model.mlir", b"")])
    with pytest.raises(ArtifactError, match="unexpected members"):
        leptonc.load(tmp_path / "extra.lep")
    _zip_with(tmp_path / "dir.lep", list(data.items()) + [("lib/", b"")])
    with pytest.raises(ArtifactError, match="unexpected member"):
        leptonc.load(tmp_path / "dir.lep")


@pytest.mark.parametrize("manifest,message", [
    (b"[" * 100000 + b"]" * 100000, "unreadable manifest.json"),
    (b"1" * 5000, "unreadable manifest.json|not a JSON object"),
    (b"\xff\xfe", "unreadable manifest.json"),
    (b"[]", "not a JSON object"),
])
def test_malformed_manifest_json(saved, tmp_path, manifest, message):
    data = members(saved)
    data["manifest.json"] = manifest
    _zip_with(tmp_path / "m.lep", list(data.items()))
    with pytest.raises(ArtifactError, match=message):
        leptonc.load(tmp_path / "m.lep")


@pytest.mark.parametrize("field,value", [
    ("target", 3), ("target", "gpu"), ("members", []), ("leptonc_version", None), ("signature", "x"),
    ("example_bindings", {"B": -1}), ("example_bindings", {"B": 1 << 40}), ("program", None),
    ("cpu_features", "avx2"), ("fusion_report", 1), ("accuracy", {"outputs": 3}), ("compiler", None),
])
def test_manifest_fields_of_the_wrong_type_are_named(saved, tmp_path, field, value):
    bad = tmp_path / "f.lep"
    edit_manifest(saved, bad, lambda m: m.update({field: value}))
    with pytest.raises(ArtifactError, match=f"'{field}'|{field}|sha256"):
        leptonc.load(bad)
    edit_manifest(saved, bad, lambda m: m.pop(field, None))
    if field not in ("accuracy", "example_bindings", "cpu_features"):  # (optional fields)
        with pytest.raises(ArtifactError, match=f"'{field}'|sha256"):
            leptonc.load(bad)
