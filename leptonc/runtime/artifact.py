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

Reading never unpickles, refuses member names that escape the archive and
unknown format versions, and checks every hash before anything from the
archive is written to disk or loaded.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..ir.errors import LeptoncError
from . import safetensors

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MEMBERS = ("graph.lir", "weights.safetensors", "model.c", "model.so")
TARGET_MEMBERS = {"cpu": MEMBERS, "stablehlo": ("graph.lir", "weights.safetensors", "model.mlir"),
                  "triton": ("graph.lir", "weights.safetensors", "kernels.py")}
SOURCE_MEMBER = {"cpu": "model.c", "stablehlo": "model.mlir", "triton": "kernels.py"}


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
    """Write the artifact (the manifest's member hashes are filled in here)."""
    payload = {"graph.lir": art.ir_text.encode()}
    target = art.manifest.get("target", "cpu")
    payload[SOURCE_MEMBER[target]] = art.source.encode()
    if target == "cpu":  # only the cpu target ships a library
        payload["model.so"] = art.library
    hashes = {name: sha256(data) for name, data in payload.items()}
    tmp = Path(f"{path}.{os.getpid()}.tmp")
    try:
        _write_members(tmp, art, payload, hashes)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def _write_members(tmp: Path, art: Artifact, payload: dict, hashes: dict) -> None:
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
        manifest = dict(art.manifest, format_version=FORMAT_VERSION, members=hashes)
        z.writestr(MANIFEST, json.dumps(manifest, indent=1, sort_keys=True), compress_type=zipfile.ZIP_DEFLATED)


def read_artifact(path: str | os.PathLike) -> Artifact:
    """Read and verify an artifact; every problem is an ArtifactError naming it."""
    where = str(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
        z = zipfile.ZipFile(io.BytesIO(raw))
    except FileNotFoundError:
        raise ArtifactError(f"{where}: no such file") from None
    except (zipfile.BadZipFile, OSError) as e:
        raise ArtifactError(f"{where}: not a leptonc artifact (not a zip file, or truncated): {e}") from None
    with z:
        names = z.namelist()
        for name in names:
            if _escapes(name):
                raise ArtifactError(f"{where}: member name {name!r} escapes the archive; refusing to load")
        unknown = sorted(set(names) - {MANIFEST, *(m for ms in TARGET_MEMBERS.values() for m in ms)})
        if unknown:
            raise ArtifactError(f"{where}: unexpected members {unknown}")
        try:
            manifest = json.loads(z.read(MANIFEST))
        except KeyError:
            raise ArtifactError(f"{where}: no {MANIFEST}") from None
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error) as e:
            raise ArtifactError(f"{where}: unreadable {MANIFEST}: {e}") from None
        if not isinstance(manifest, dict):
            raise ArtifactError(f"{where}: {MANIFEST} is not a JSON object")
        version = manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise ArtifactError(f"{where}: artifact format version {version!r} is not supported "
                                f"(this leptonc reads version {FORMAT_VERSION})")
        members = TARGET_MEMBERS.get(manifest.get("target"), MEMBERS)
        hashes = manifest.get("members")
        if not isinstance(hashes, dict) or set(hashes) != set(members):
            raise ArtifactError(f"{where}: the manifest does not list the hashes of {list(members)}")
        data = {}
        for name in members:
            try:
                blob = _member(z, raw, name)
            except KeyError:
                raise ArtifactError(f"{where}: member {name} is missing") from None
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as e:
                raise ArtifactError(f"{where}: member {name} is unreadable ({e})") from None
            if sha256(blob) != hashes[name]:
                raise ArtifactError(f"{where}: member {name} does not match its sha256 in the manifest "
                                    "(the file was modified); refusing to load")
            data[name] = blob if name == "weights.safetensors" else bytes(blob)
    source = data[SOURCE_MEMBER.get(manifest.get("target"), "model.c")]
    return Artifact(manifest, data["graph.lir"].decode(), data["weights.safetensors"], source.decode(),
                    data.get("model.so", b""))


def _member(z: zipfile.ZipFile, raw: bytes, name: str):
    """A member's bytes: a view into `raw` when it is stored uncompressed (the weights), else inflated."""
    info = z.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED:
        return z.read(name)
    head = raw[info.header_offset:info.header_offset + 30]
    if len(head) < 30 or head[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header of {name}")
    name_len, extra_len = struct.unpack_from("<HH", head, 26)
    start = info.header_offset + 30 + name_len + extra_len
    if start + info.compress_size > len(raw):
        raise zipfile.BadZipFile(f"{name} is cut short")
    return memoryview(raw)[start:start + info.compress_size]


def _escapes(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":")
