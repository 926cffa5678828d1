"""leptonc on Ray: an artifact travels through Ray's object store (no shared filesystem) and each worker loads it
once. `map_batches` runs a model over a Ray Data dataset; `leptonc.serve.ray_app` serves it on Ray Serve.

    import ray, leptonc.ray
    ds = ray.data.from_numpy(x)                        # a column "data"; name the model's input with a dict
    out = leptonc.ray.map_batches(ds.rename_columns({"data": "x"}), "m.lep", batch_size=64)
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .ir.errors import LeptoncError, optional_dependency


def ship(path: str | os.PathLike):
    """An object-store reference to the artifact's bytes, for `load_shipped` on any node of the cluster."""
    with optional_dependency("leptonc on Ray"):
        import ray

    data = Path(path).read_bytes()  # an OSError names the file
    return ray.put(data)


def load_shipped(ref_or_bytes, name: str):
    """The model from an artifact's bytes (or an object-store reference to them), through a private temp file."""
    import leptonc

    data = ref_or_bytes
    if not isinstance(data, bytes):
        import ray

        data = ray.get(data)
    with tempfile.TemporaryDirectory(prefix="leptonc-ray-") as tmp:
        path = Path(tmp) / f"{name}.lep"
        path.write_bytes(data)
        return leptonc.load(path)


class _Predict:
    """A Ray Data callable class: loads the model once per worker, then runs it on each numpy batch. The
    model's inputs are taken from the batch's columns of those names; its outputs become columns, and the
    batch's other columns pass through unchanged."""

    def __init__(self, shipped: dict, name: str):
        from .serve.protocol import Signature

        self.model = load_shipped(shipped["artifact"], name)
        self.signature = Signature(name, self.model.signature)

    def __call__(self, batch: dict) -> dict:
        names = [t["name"] for t in self.signature.inputs]
        missing = [n for n in names if n not in batch]
        if missing:
            raise LeptoncError(f"model '{self.signature.name}' needs a column {missing[0]!r}; the dataset has "
                               f"{sorted(batch)}")
        inputs = self.signature.check({n: batch[n] for n in names})
        outputs = self.model.run(*inputs)
        out = {k: v for k, v in batch.items() if k not in names}
        out.update({t["name"]: y for t, y in zip(self.signature.outputs, outputs)})
        return out


def map_batches(dataset, path: str | os.PathLike, *, batch_size: int = 256, concurrency=1, **options):
    """`dataset` with the model at `path` run over it in batches of `batch_size` rows: its input columns are
    replaced by its output columns. The model must lead every input and output with one symbolic (batch) dim.
    `concurrency` workers (an int, or (min, max) to autoscale) each load the model once; `options` go to
    `Dataset.map_batches` (e.g. num_cpus)."""
    with optional_dependency("leptonc.ray.map_batches"):
        import ray  # noqa: F401

    import leptonc
    from .serve.protocol import batch_symbol

    if batch_size < 1:
        raise LeptoncError(f"map_batches: batch_size must be at least 1, got {batch_size}")
    name = Path(path).stem
    signature = leptonc.load(path).signature  # verified here, before any worker starts
    if batch_symbol(signature) is None:
        raise LeptoncError(f"map_batches: model '{path}' has no batch dim (a symbolic dim leading every input and "
                           f"output), so its rows cannot be split into batches")
    _check_columns(dataset, [t["name"] for t in signature["inputs"]], path)
    return dataset.map_batches(_Predict, batch_size=batch_size, batch_format="numpy", concurrency=concurrency,
                               fn_constructor_kwargs={"shipped": {"artifact": ship(path)}, "name": name},
                               **options)


def _check_columns(dataset, names: list[str], path) -> None:
    """A LeptoncError, before any worker starts, when the dataset's columns are known without running it and
    lack one of the model's inputs (otherwise each worker checks its batches)."""
    columns = dataset.columns(fetch_if_missing=False)
    missing = [n for n in names if columns is not None and n not in columns]
    if missing:
        raise LeptoncError(f"map_batches: model '{path}' needs a column {missing[0]!r}; the dataset has "
                           f"{sorted(columns)}")
