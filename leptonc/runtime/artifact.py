"""The artifact: one zip file holding everything needed to run a compiled model.

    manifest.json        format version, leptonc version, target, required CPU features,
                         signature (inputs, outputs, symbols), pipeline, program metadata,
                         and the sha256 of every other member
    graph.lir            the optimized IR as text
    weights.safetensors  the weights
    model.c              the generated C source          (cpu target)
    model.so             the built library               (cpu target)
    model.mlir           the StableHLO module            (stablehlo target)
    kernels.py           the Triton kernels and launchers (triton target; the launch plan is in the manifest)
    signature.json       an Ed25519 signature of manifest.json's bytes, and its public key (trust.py)

Reading never unpickles. It takes the members named above and no others
(no duplicates, no links), inflates none past its declared size nor past
MAX_INFLATE times its compressed size, checks the manifest's fields and every
hash before anything from the archive is written to disk or loaded, and says
who signed the manifest. What the manifest says of the program (kernels,
buffers, weights, signature) is not believed: `load` derives it again from
the IR (derive.py).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import struct
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..ir.errors import LeptoncError
from . import safetensors
from .files import replacing

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "signature.json"
MEMBERS = ("graph.lir", "weights.safetensors", "model.c", "model.so")
TARGET_MEMBERS = {"cpu": MEMBERS, "stablehlo": ("graph.lir", "weights.safetensors", "model.mlir"),
                  "triton": ("graph.lir", "weights.safetensors", "kernels.py")}
SOURCE_MEMBER = {"cpu": "model.c", "stablehlo": "model.mlir", "triton": "kernels.py"}
KNOWN = {MANIFEST, SIGNATURE, *(m for ms in TARGET_MEMBERS.values() for m in ms)}
MAX_MANIFEST = 64 << 20  # bytes
MAX_INFLATE = 200        # uncompressed bytes per compressed byte of a deflated member, at most
MAX_SIZE = 2**31 - 1     # the largest symbol size a manifest may state


class ArtifactError(LeptoncError):
    """An artifact that is malformed, tampered with, or from an unknown format version."""


@dataclass
class Artifact:
    """The members of an artifact. The weights are a safetensors blob (as read), or, for a model just
    compiled, the arrays themselves in `weights`, encoded only when the artifact is written."""

    manifest: dict
    ir_text: str
    weights_blob: bytes | memoryview
    source: str
    library: bytes
    weights: dict | None = None
    signer: str | None = None  # the public key (hex) that signed the manifest, if any


def program_manifest(target: str, compiler: str, pipeline: str, program_meta: dict, fusion_report: str,
                     bindings: dict | None) -> dict:
    """The manifest of a kernel-program target (cpu, triton): everything but the member hashes."""
    from .. import __version__

    return {
        "leptonc_version": __version__,
        "target": target,
        "compiler": compiler,
        "signature": {"inputs": program_meta["inputs"], "outputs": program_meta["outputs"],
                      "symbols": program_meta["symbols"]},
        "pipeline": pipeline,
        "program": program_meta,
        "example_bindings": bindings,
        "fusion_report": fusion_report,
    }


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_artifact(path: str | os.PathLike, art: Artifact) -> None:
    """Write the artifact (the manifest's member hashes are filled in here), signed by this machine's key."""
    payload = {"graph.lir": art.ir_text.encode()}
    target = art.manifest.get("target", "cpu")
    payload[SOURCE_MEMBER[target]] = art.source.encode()
    if target == "cpu":  # only the cpu target ships a library
        payload["model.so"] = art.library
    hashes = {name: sha256(data) for name, data in payload.items()}
    with replacing(path) as tmp:
        _write_members(tmp, art, payload, hashes)


def _write_members(tmp: Path, art: Artifact, payload: dict, hashes: dict) -> None:
    from . import trust

    with zipfile.ZipFile(tmp, "w") as z:
        for name, data in payload.items():
            z.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
        # the weights stream into the archive uncompressed, hashed on the way
        digest = hashlib.sha256()
        with z.open(zipfile.ZipInfo("weights.safetensors"), "w", force_zip64=True) as f:
            for chunk in (safetensors.chunks(art.weights) if art.weights is not None else [art.weights_blob]):
                digest.update(chunk)
                f.write(chunk)
        hashes["weights.safetensors"] = digest.hexdigest()
        manifest = json.dumps(dict(art.manifest, format_version=FORMAT_VERSION, members=hashes), indent=1,
                              sort_keys=True).encode()
        z.writestr(MANIFEST, manifest, compress_type=zipfile.ZIP_DEFLATED)
        signature = trust.sign(manifest)
        if signature is None:
            _warn_unsigned()
        else:
            z.writestr(SIGNATURE, signature)


@lru_cache(maxsize=None)
def _warn_unsigned() -> None:
    from .trust import config_dir

    warnings.warn(f"leptonc cannot make a signing key in {config_dir()}: artifacts are written unsigned, and "
                  "loading them rebuilds their code from their IR", stacklevel=4)


def read_artifact(path: str | os.PathLike) -> Artifact:
    """Read and verify an artifact; every problem is an ArtifactError naming the file and what is wrong."""
    where = str(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise ArtifactError(f"{where}: no such file") from None
    except (OSError, MemoryError) as e:
        raise ArtifactError(f"{where}: cannot read the file: {e}") from None
    try:
        z = zipfile.ZipFile(io.BytesIO(raw))
    except _ZIP_ERRORS as e:
        raise ArtifactError(f"{where}: not a leptonc artifact (not a zip file, or truncated): {e}") from None
    with z:
        infos = _member_infos(z, where, len(raw))
        manifest_bytes = _read(z, raw, infos, MANIFEST, where)
        manifest = _parse_manifest(manifest_bytes, where)
        check_manifest(manifest, where)
        members = TARGET_MEMBERS[manifest["target"]]
        extra = sorted(set(infos) - {MANIFEST, SIGNATURE, *members})
        if extra:
            raise ArtifactError(f"{where}: unexpected members {extra} in a {manifest['target']} artifact")
        signer = None
        if SIGNATURE in infos:
            from .trust import TrustError, signer as verify

            try:
                signer = verify(_read(z, raw, infos, SIGNATURE, where), manifest_bytes)
            except TrustError as e:
                raise ArtifactError(f"{where}: {e}; refusing to load") from None
        data = {}
        for name in members:
            blob = _read(z, raw, infos, name, where)
            if sha256(blob) != manifest["members"][name]:
                raise ArtifactError(f"{where}: member {name} does not match its sha256 in the manifest "
                                    "(the file was modified); refusing to load")
            data[name] = blob
    try:
        ir_text, source = data["graph.lir"].decode(), data[SOURCE_MEMBER[manifest["target"]]].decode()
    except UnicodeDecodeError as e:
        raise ArtifactError(f"{where}: a text member is not UTF-8 ({e})") from None
    return Artifact(manifest, ir_text, data["weights.safetensors"], source, data.get("model.so", b""),
                    signer=signer)


_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, struct.error, zlib.error,
               NotImplementedError, OverflowError, IndexError, KeyError, UnicodeDecodeError, MemoryError)


def _member_infos(z: zipfile.ZipFile, where: str, file_size: int) -> dict[str, zipfile.ZipInfo]:
    """The members by name, each a plain file of a known name, stored or deflated, at most once."""
    infos: dict[str, zipfile.ZipInfo] = {}
    for info in z.infolist():
        name = info.filename
        if _escapes(name):
            raise ArtifactError(f"{where}: member name {name!r} escapes the archive; refusing to load")
        if name not in KNOWN:
            raise ArtifactError(f"{where}: unexpected member {name!r}")
        if name in infos:
            raise ArtifactError(f"{where}: member {name} appears twice; refusing to load")
        if stat.S_IFMT(info.external_attr >> 16) not in (0, stat.S_IFREG):
            raise ArtifactError(f"{where}: member {name} is not a plain file (a link or a folder); refusing to load")
        if info.flag_bits & 0x1 or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ArtifactError(f"{where}: member {name} is encrypted or compressed with an unsupported method")
        stored = info.compress_type == zipfile.ZIP_STORED
        if info.compress_size > file_size or info.file_size > (
                info.compress_size if stored else MAX_INFLATE * info.compress_size + 4096):
            raise ArtifactError(f"{where}: member {name} declares {info.file_size} bytes from {info.compress_size} "
                                "compressed ones (a zip bomb?); refusing to load")
        infos[name] = info
    if MANIFEST not in infos:
        raise ArtifactError(f"{where}: no {MANIFEST}")
    return infos


def _read(z: zipfile.ZipFile, raw: bytes, infos: dict, name: str, where: str):
    """A member's bytes, never more than its declared size: a view into `raw` when it is stored (the
    weights), else inflated."""
    info = infos.get(name)
    if info is None:
        raise ArtifactError(f"{where}: member {name} is missing")
    if name == MANIFEST and info.file_size > MAX_MANIFEST:
        raise ArtifactError(f"{where}: {MANIFEST} is {info.file_size} bytes (at most {MAX_MANIFEST})")
    try:
        if info.compress_type == zipfile.ZIP_STORED:
            view = _stored(raw, info)
            return view if name == "weights.safetensors" else bytes(view)
        with z.open(info) as f:
            data = f.read(info.file_size + 1)
        if len(data) != info.file_size:
            raise zipfile.BadZipFile(f"{len(data)} bytes where {info.file_size} were declared")
        return data
    except _ZIP_ERRORS as e:
        raise ArtifactError(f"{where}: member {name} is unreadable ({e})") from None


def _stored(raw: bytes, info: zipfile.ZipInfo) -> memoryview:
    head = raw[info.header_offset:info.header_offset + 30]
    if len(head) < 30 or head[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header of {info.filename}")
    name_len, extra_len = struct.unpack_from("<HH", head, 26)
    start = info.header_offset + 30 + name_len + extra_len
    if start + info.compress_size > len(raw) or info.file_size != info.compress_size:
        raise zipfile.BadZipFile(f"{info.filename} is cut short")
    return memoryview(raw)[start:start + info.compress_size]


def _parse_manifest(data: bytes, where: str) -> dict:
    try:
        manifest = json.loads(data)
    except (ValueError, RecursionError) as e:  # (UnicodeDecodeError and JSONDecodeError are ValueErrors)
        raise ArtifactError(f"{where}: unreadable {MANIFEST}: {str(e)[:200]}") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{where}: {MANIFEST} is not a JSON object")
    return manifest


def _escapes(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":")


# -- the manifest's fields -----------------------------------------------------------------------------------

def check_manifest(m: dict, where: str) -> None:
    """Check the type of every field that leptonc reads (the program's fields are checked by being derived
    again from the IR at load). A field of the wrong type is an ArtifactError naming it."""
    version = m.get("format_version")
    if version != FORMAT_VERSION or type(version) is not int:
        raise ArtifactError(f"{where}: artifact format version {version!r} is not supported "
                            f"(this leptonc reads version {FORMAT_VERSION})")
    field = _Fields(m, where)
    target = field.get("target", str)
    if target not in TARGET_MEMBERS:
        raise ArtifactError(f"{where}: manifest field 'target' is {target!r} (known: {', '.join(TARGET_MEMBERS)})")
    hashes = field.get("members", dict)
    if set(hashes) != set(TARGET_MEMBERS[target]) or not all(
            isinstance(h, str) and len(h) == 64 and all(c in "0123456789abcdef" for c in h) for h in hashes.values()):
        raise ArtifactError(f"{where}: the manifest does not list the sha256 of {list(TARGET_MEMBERS[target])}")
    for name in ("leptonc_version", "pipeline"):
        field.get(name, str)
    field.get("signature", dict)
    field.sizes("example_bindings", m.get("example_bindings"), optional=True)
    if target == "stablehlo":
        meta = field.get("stablehlo", dict)
        field.sizes("stablehlo.bindings", meta.get("bindings"))
        field.names("stablehlo.weights", meta.get("weights"))
    else:
        field.get("compiler", str)
        field.get("program", dict)
        field.get("fusion_report", str)
        field.names("cpu_features", m.get("cpu_features", []))
    if "accuracy" in m:
        from .accuracy import format_accuracy

        try:
            format_accuracy(m["accuracy"])
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, ImportError) as e:
            raise ArtifactError(f"{where}: manifest field 'accuracy' is malformed ({type(e).__name__}: {e})") \
                from None


class _Fields:
    """Type checks of a manifest's fields, each failure an ArtifactError naming the file and the field."""

    def __init__(self, manifest: dict, where: str):
        self.m, self.where = manifest, where

    def fail(self, name: str, want: str, value) -> ArtifactError:
        return ArtifactError(f"{self.where}: manifest field '{name}' must be {want}, not {str(value)[:80]!r}")

    def get(self, name: str, kind: type):
        value = self.m.get(name)
        if not isinstance(value, kind):
            raise self.fail(name, f"a {kind.__name__}", value)
        return value

    def sizes(self, name: str, value, optional: bool = False) -> None:
        """A map of symbol names to sizes (0 to MAX_SIZE)."""
        if value is None and optional:
            return
        if not isinstance(value, dict) or not all(
                isinstance(k, str) and type(v) is int and 0 <= v <= MAX_SIZE for k, v in value.items()):
            raise self.fail(name, f"a map of symbol names to sizes (0 to {MAX_SIZE})", value)

    def names(self, name: str, value) -> None:
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise self.fail(name, "a list of strings", value)
