"""The accuracy each lossy pass promises: precision passes declare a Tolerance for their options.

    declare_tolerance("quantize", lambda weights, per, group, activations: Tolerance(...))
    tolerance_of("default,quantize{weights=int4}")   # -> Tolerance, or None when every pass is exact

A Tolerance bounds, on every float output of a model, the error the pass may
introduce against the fp32 graph: the max abs error relative to
max(1, max|reference|), the signal-to-quantization-noise ratio in dB, and,
for outputs that are a classification or LM head, the fraction of inputs
whose top-1 class is unchanged. runtime/accuracy.py measures these.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

from .pipeline import parse_pipeline
from .registry import get_pass


@dataclass(frozen=True)
class Tolerance:
    max_rel_error: float   # max|y - ref| / max(1, max|ref|)
    min_sqnr_db: float     # 10 log10(sum ref^2 / sum (y - ref)^2)
    min_top1: float        # top-1 agreement with the fp32 graph on head outputs

    def combine(self, other: "Tolerance") -> "Tolerance":
        """The tolerance of two lossy passes in sequence: the looser bound of each (errors add up)."""
        return Tolerance(self.max_rel_error + other.max_rel_error, min(self.min_sqnr_db, other.min_sqnr_db),
                         min(self.min_top1, other.min_top1))

    def as_dict(self) -> dict:
        return asdict(self)


_TOLERANCES: dict[str, Callable[..., Tolerance]] = {}


def declare_tolerance(pass_name: str, tolerance: Callable[..., Tolerance]) -> None:
    """Declare that pass `pass_name` is lossy; `tolerance(**options)` gives its bound for those options."""
    _TOLERANCES[pass_name] = tolerance


def tolerance_of(pipeline) -> Tolerance | None:
    """The combined tolerance of the lossy passes in a pipeline, or None when it has none."""
    result = None
    for entry in parse_pipeline(pipeline):
        info = get_pass(entry.name)
        if info.is_pipeline:
            inner = tolerance_of(info.pipeline)
        elif entry.name in _TOLERANCES:
            options = {k: o.default for k, o in info.options.items()}
            options.update(entry.options)
            inner = _TOLERANCES[entry.name](**options)
        else:
            inner = None
        if inner is not None:
            result = inner if result is None else result.combine(inner)
    return result
