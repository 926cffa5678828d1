"""The trust model: an artifact's own native code runs only when a trusted key signed it. A library (or a
triton kernel module) replaced by someone else, with every hash recomputed, never runs: the model runs code
generated again from its IR, and gives the right answers."""
from __future__ import annotations

import json
import stat
import warnings
import zipfile

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import leptonc
from leptonc.cli import main
from leptonc.codegen.cpu import build
from leptonc.runtime import trust
from leptonc.runtime.artifact import ArtifactError

from .artifact_tools import edit_manifest, isolated_home, machine_key, members, write
from .test_artifact import small_graph

X = np.random.default_rng(3).standard_normal((4, 16)).astype(np.float32)


@pytest.fixture(scope="module", autouse=True)
def home(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        yield isolated_home(tmp_path_factory, mp)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("trust") / "small.lep"
    leptonc.compile(small_graph(), quiet=True, cache=False).save(path)
    return path


@pytest.fixture(scope="module")
def evil_library(saved, tmp_path_factory):
    """The artifact's own library, built with a constructor that leaves a marker file: what an attacker ships."""
    marker = tmp_path_factory.mktemp("evil") / "ran"
    source = members(saved)["model.c"].decode() + (
        "\n#include <stdio.h>\n__attribute__((constructor)) static void lep_evil(void) {\n"
        f'  FILE* f = fopen("{marker}", "w"); if (f) {{ fputs("ran", f); fclose(f); }}\n}}\n')
    path, _ = build.build_library(source, use_cache=False)
    return path.read_bytes(), marker


def expected():
    return leptonc.run_reference(small_graph(), X)[0]


def with_library(saved, out, library: bytes, key=None):
    data = members(saved)
    data["model.so"] = library
    write(out, data, key=key)


@pytest.mark.parametrize("signer", ["unsigned", "stranger"])
def test_a_replaced_library_never_runs(saved, evil_library, tmp_path, signer):
    library, marker = evil_library
    bad = tmp_path / "evil.lep"
    with_library(saved, bad, library, key=Ed25519PrivateKey.generate() if signer == "stranger" else None)
    with pytest.warns(UserWarning, match="not signed" if signer == "unsigned" else "does not trust"):
        cm = leptonc.load(bad)
    np.testing.assert_allclose(cm(X), expected(), rtol=1e-5, atol=1e-6)
    assert not marker.exists()
    with pytest.warns(UserWarning):  # leptonc run neither
        assert main(["run", str(bad)]) == 0
    assert not marker.exists()


def test_a_trusted_key_runs_its_library(saved, evil_library, tmp_path, monkeypatch):
    """The other side of the gate: the same library signed by a key the loader trusts is what runs."""
    library, marker = evil_library
    author = Ed25519PrivateKey.generate()
    author_hex = trust.public_hex(author)
    signed = tmp_path / "signed.lep"
    with_library(saved, signed, library, key=author)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no regeneration: the shipped library runs
        np.testing.assert_allclose(leptonc.load(signed, trusted_keys=[author_hex])(X), expected(), rtol=1e-5,
                                   atol=1e-6)
    assert marker.read_text() == "ran"
    marker.unlink()
    monkeypatch.setenv("LEPTONC_TRUSTED_KEYS", f"{'ab' * 32}, {author_hex}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        leptonc.load(signed)(X)
    # (a library already loaded in this process is not loaded again: the constructor ran once)


def test_own_artifacts_run_their_library_and_others_regenerate(saved, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cm = leptonc.load(saved)  # signed by this machine's key
    assert cm.artifact.signer == trust.own_key()
    np.testing.assert_allclose(cm(X), expected(), rtol=1e-5, atol=1e-6)
    unsigned = tmp_path / "unsigned.lep"
    write(unsigned, members(saved))  # an old artifact, from before signatures
    with pytest.warns(UserWarning, match="is not signed: running code generated from its IR"):
        cm = leptonc.load(unsigned)
    np.testing.assert_allclose(cm(X), expected(), rtol=1e-5, atol=1e-6)
    cm.save(tmp_path / "resaved.lep")  # unchanged: a copy of the unsigned file
    assert "signature.json" not in members(tmp_path / "resaved.lep")


def test_trust_store_round_trip(saved, tmp_path):
    author = Ed25519PrivateKey.generate()
    author_hex = trust.public_hex(author)
    signed = tmp_path / "signed.lep"
    write(signed, members(saved), key=author)
    with pytest.warns(UserWarning, match=f"signed by key {author_hex[:16]}.*leptonc trust add {author_hex}"):
        leptonc.load(signed)
    keyfile = tmp_path / "author.pub"
    keyfile.write_text(author_hex + "\n")
    assert trust.add(str(keyfile)) and not trust.add(author_hex)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(leptonc.load(signed)(X), expected(), rtol=1e-5, atol=1e-6)
    assert trust.remove(author_hex) and not trust.remove(author_hex)
    with pytest.warns(UserWarning, match="does not trust"):
        leptonc.load(signed)


def test_untrusted_without_a_compiler_is_refused_saying_how_to_trust(saved, tmp_path, monkeypatch):
    author = Ed25519PrivateKey.generate()
    signed = tmp_path / "signed.lep"
    write(signed, members(saved), key=author)
    monkeypatch.setattr(build, "find_compiler", lambda: None)
    with pytest.raises(ArtifactError, match=f"no C compiler .* `leptonc trust add {trust.public_hex(author)}`"):
        leptonc.load(signed)


def test_a_manifest_changed_after_signing_is_refused(saved, tmp_path):
    data = members(saved)
    m = json.loads(data["manifest.json"])
    m["pipeline"] = "something else"
    data["manifest.json"] = json.dumps(m, indent=1, sort_keys=True).encode()
    bad = tmp_path / "bad.lep"
    write(bad, data, rehash=False)
    with zipfile.ZipFile(bad, "a") as z:  # the old signature
        z.writestr("signature.json", members(saved)["signature.json"])
    with pytest.raises(ArtifactError, match="changed after it was signed"):
        leptonc.load(bad)


def test_the_signing_key_is_private_and_made_once(home):
    key = machine_key()
    path = home / trust.KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert trust.public_hex(key) == trust.own_key() == trust.public_hex(machine_key())


def test_bad_keys_are_one_line_errors(monkeypatch):
    with pytest.raises(trust.TrustError, match="not an Ed25519 public key"):
        trust.add("0123")
    monkeypatch.setenv("LEPTONC_TRUSTED_KEYS", "not-a-key")
    with pytest.raises(trust.TrustError, match="not an Ed25519 public key"):
        trust.trusted_keys()


def cli(capsys, *args) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def test_trust_verbs(capsys):
    rc, out, _ = cli(capsys, "trust", "key")
    assert rc == 0 and out.strip() == trust.own_key()
    other = "cd" * 32
    rc, out, _ = cli(capsys, "trust", "add", other)
    assert rc == 0 and f"trusted: {other}" in out
    listed = cli(capsys, "trust", "list")[1].splitlines()
    assert other in listed and f"{trust.own_key()}  (this machine's own key)" in listed
    rc, out, _ = cli(capsys, "trust", "remove", other)
    assert rc == 0 and "no longer trusted" in out and other not in cli(capsys, "trust", "list")[1]
    rc, _, err = cli(capsys, "trust", "add", "xyz")
    assert rc == 2 and err.count("\n") == 1 and "not an Ed25519 public key" in err


def test_triton_kernels_are_always_the_derived_ones(tmp_path, monkeypatch):
    pytest.importorskip("triton")
    marker = tmp_path / "ran"
    path = tmp_path / "t.lep"
    leptonc.compile(small_graph(), target="triton", quiet=True).save(path)
    data = members(path)
    data["kernels.py"] = data["kernels.py"] + f"\nopen({str(marker)!r}, 'w').write('ran')\n".encode()
    bad = tmp_path / "bad.lep"
    write(bad, data, key=machine_key())  # even signed by a trusted key: kernels.py is generated again
    cm = leptonc.load(bad)
    assert str(marker) not in cm.source and cm.source == members(path)["kernels.py"].decode()
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        monkeypatch.setenv("TRITON_INTERPRET", "1")  # (read when the kernel module is imported)
    x = np.ones((2, 16), np.float32)
    np.testing.assert_allclose(cm(x), leptonc.run_reference(small_graph(), x)[0], rtol=1e-4, atol=1e-5)
    assert not marker.exists()


def test_a_lying_manifest_signed_by_a_trusted_author_changes_nothing(saved, tmp_path):
    """A trusted author's buggy manifest (arena sizes, weights swapped) is still not believed."""
    bad = tmp_path / "buggy.lep"

    def lie(m):
        m["program"]["weights"].reverse()
        m["signature"]["inputs"][0]["shape"] = [1 << 40, 16]

    edit_manifest(saved, bad, lie, key=machine_key())
    with pytest.warns(UserWarning):  # its program is not what its IR compiles to: regenerated
        cm = leptonc.load(bad)
    np.testing.assert_allclose(cm(X), expected(), rtol=1e-5, atol=1e-6)
    assert cm.signature["inputs"][0]["shape"] == ["B", 16]


def test_a_config_folder_that_cannot_exist_saves_unsigned_with_a_warning(tmp_path, monkeypatch):
    """LEPTONC_HOME under a regular file (unwritable even for root): save warns and writes an unsigned artifact,
    which loads through the regenerate path and runs right."""
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("LEPTONC_HOME", str(tmp_path / "file" / "home"))
    path = tmp_path / "m.lep"
    with pytest.warns(UserWarning, match="cannot make a signing key"):
        leptonc.compile(small_graph(), quiet=True, cache=False).save(path)
    with pytest.warns(UserWarning, match="is not signed"):
        cm = leptonc.load(path)
    np.testing.assert_allclose(cm(X), leptonc.run_reference(small_graph(), X)[0], rtol=1e-5, atol=1e-6)
