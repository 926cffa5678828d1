"""Whose native code a machine runs: its signing key, the keys it trusts, and the signatures of artifacts.

Each machine keeps an Ed25519 signing key in leptonc's config folder ($LEPTONC_HOME, else
$XDG_CONFIG_HOME/leptonc, else ~/.config/leptonc), made on first use, readable by its owner only. Writing an
artifact signs its manifest, which holds the sha256 of every other member, so the signature covers the
whole artifact. `load` runs an artifact's shipped library only when a trusted key signed it: this machine's
own key, a key of the trust store (the file `trusted_keys` in the config folder: `leptonc trust add`), a key
of $LEPTONC_TRUSTED_KEYS (hex keys separated by commas or spaces), or one passed to `load(trusted_keys=)`.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from ..ir.errors import LeptoncError

KEY_FILE = "signing_key"
STORE_FILE = "trusted_keys"
ENV_KEYS = "LEPTONC_TRUSTED_KEYS"
_HEX_KEY = re.compile(r"[0-9a-f]{64}")


class TrustError(LeptoncError):
    """A key that is not an Ed25519 public key, or a trust store that cannot be written."""


def config_dir() -> Path:
    root = os.environ.get("LEPTONC_HOME") or os.path.join(
        os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config"), "leptonc")
    return Path(root)


def signing_key(create: bool = True):
    """This machine's Ed25519 private key; made (mode 0600) when there is none and `create`. None when there
    is none and it cannot be made (an unwritable config folder)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = config_dir() / KEY_FILE
    try:
        return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(path.read_text().strip()))
    except (FileNotFoundError, NotADirectoryError):  # no key (a config path under a file cannot hold one)
        if not create:
            return None
    except (OSError, ValueError) as e:
        raise TrustError(f"{path}: not a leptonc signing key ({e}); move it away to make a new one") from None
    try:
        return _create_key(path)
    except OSError:
        return None


def _create_key(path: Path):
    """A new key written to `path`, or the one another process wrote there first."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".key-")  # mkstemp makes it 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(key.private_bytes_raw().hex() + "\n")
        os.link(tmp, path)  # fails if another process made one meanwhile: use that one
    except FileExistsError:
        return signing_key(create=False)
    finally:
        os.unlink(tmp)
    return key


def public_hex(private_key) -> str:
    return private_key.public_key().public_bytes_raw().hex()


def own_key() -> str | None:
    """This machine's public key (hex), without making one."""
    key = signing_key(create=False)
    return None if key is None else public_hex(key)


def parse_key(text: str) -> str:
    """A public key given as 64 hex digits, or as a file that holds them (what `leptonc trust key` prints)."""
    text = text.strip()
    if not _HEX_KEY.fullmatch(text.lower()) and os.path.isfile(text):
        text = Path(text).read_text().strip()
    key = text.lower()
    if not _HEX_KEY.fullmatch(key):
        raise TrustError(f"{text[:80]!r} is not an Ed25519 public key (64 hex digits, or a file holding them; "
                         "`leptonc trust key` prints this machine's)")
    return key


def stored_keys() -> list[str]:
    """The keys of the trust store, in the order they were added."""
    try:
        lines = (config_dir() / STORE_FILE).read_text().split()
    except FileNotFoundError:
        return []
    return [k for k in lines if _HEX_KEY.fullmatch(k)]


def _write_store(keys: list[str]) -> None:
    path = config_dir() / STORE_FILE
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".trusted-")
        with os.fdopen(fd, "w") as f:
            f.write("".join(k + "\n" for k in keys))
        os.replace(tmp, path)
    except OSError as e:
        raise TrustError(f"cannot write the trust store {path}: {e}") from None


def add(key: str) -> bool:
    """Trust `key`; False when it was trusted already."""
    key = parse_key(key)
    keys = stored_keys()
    if key in keys:
        return False
    _write_store(keys + [key])
    return True


def remove(key: str) -> bool:
    """Stop trusting `key`; False when the store did not hold it."""
    key = parse_key(key)
    keys = stored_keys()
    if key not in keys:
        return False
    _write_store([k for k in keys if k != key])
    return True


def trusted_keys(extra=()) -> set[str]:
    """Every key whose signature lets an artifact's library run: this machine's, the store's, the
    environment's and `extra`'s."""
    keys = set(stored_keys()) | {parse_key(k) for k in extra}
    keys |= {parse_key(k) for k in re.split(r"[,\s]+", os.environ.get(ENV_KEYS, "")) if k}
    own = own_key()
    return keys | {own} if own else keys


def sign(data: bytes) -> bytes | None:
    """The signature member for `data` (a manifest), by this machine's key; None when it has no key."""
    key = signing_key()
    if key is None:
        return None
    return json.dumps({"algorithm": "ed25519", "key": public_hex(key), "signature": key.sign(data).hex()},
                      sort_keys=True).encode()


def signer(member: bytes, data: bytes) -> str:
    """The public key (hex) whose signature of `data` the signature member holds; TrustError when the member
    is malformed or the signature does not verify (the manifest was changed after signing)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        entry = json.loads(member)
        if not isinstance(entry, dict) or entry.get("algorithm") != "ed25519":
            raise ValueError("not an ed25519 signature")
        key, signature = entry["key"], entry["signature"]
        if not isinstance(key, str) or not _HEX_KEY.fullmatch(key) or not isinstance(signature, str):
            raise ValueError("malformed key or signature")
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(key)).verify(bytes.fromhex(signature), data)
    except InvalidSignature:
        raise TrustError("the signature does not match the manifest (the artifact was changed after it was "
                         "signed)") from None
    except (ValueError, KeyError, TypeError, RecursionError) as e:
        raise TrustError(f"malformed signature member ({e})") from None
    return key
