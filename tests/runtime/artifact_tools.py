"""Editing artifacts as an attacker (or a careless author) would: members changed, hashes recomputed, the
manifest signed again with a key of one's choosing or not at all."""
from __future__ import annotations

import hashlib
import json
import zipfile

from leptonc.runtime.artifact import MANIFEST, SIGNATURE


def members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def write(path, data: dict[str, bytes], *, rehash: bool = True, key=None) -> None:
    """Write members `data` as an artifact: with the manifest's hashes recomputed (`rehash`), and signed by
    `key` (an Ed25519 private key; None: unsigned, whatever `data` holds under signature.json)."""
    data = dict(data)
    data.pop(SIGNATURE, None)
    try:
        m = json.loads(data[MANIFEST]) if rehash else None
    except (KeyError, ValueError, RecursionError):  # (no manifest, or one that no reader parses: as it is)
        m = None
    if isinstance(m, dict) and isinstance(m.get("members"), dict):
        m["members"] = {n: hashlib.sha256(data[n]).hexdigest() if n in data else h for n, h in m["members"].items()}
        data[MANIFEST] = json.dumps(m, indent=1, sort_keys=True).encode()
    if key is not None:
        signed = {"algorithm": "ed25519", "key": key.public_key().public_bytes_raw().hex(),
                  "signature": key.sign(data[MANIFEST]).hex()}
        data[SIGNATURE] = json.dumps(signed).encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, blob in data.items():
            z.writestr(name, blob, compress_type=zipfile.ZIP_STORED if name == "weights.safetensors"
                       else zipfile.ZIP_DEFLATED)


def edit_manifest(path, out, edit, *, key=None) -> None:
    """Copy artifact `path` to `out` with edit(manifest) applied (in place), hashes recomputed, signed by key."""
    data = members(path)
    m = json.loads(data[MANIFEST])
    edit(m)
    data[MANIFEST] = json.dumps(m).encode()
    write(out, data, key=key)


def machine_key():
    """This machine's signing key (LEPTONC_HOME's)."""
    from leptonc.runtime.trust import signing_key

    return signing_key()


def isolated_home(tmp_path_factory, monkeypatch_context):
    """Point LEPTONC_HOME at a fresh folder (a machine with no keys yet) and LEPTONC_TRUSTED_KEYS at nothing."""
    home = tmp_path_factory.mktemp("leptonc-home")
    monkeypatch_context.setenv("LEPTONC_HOME", str(home))
    monkeypatch_context.delenv("LEPTONC_TRUSTED_KEYS", raising=False)
    return home


__all__ = ["edit_manifest", "isolated_home", "machine_key", "members", "write"]
