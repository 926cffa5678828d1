"""Observers: the range [lo, hi] a tensor is quantized over, from the values it takes on calibration data.

    hists = histograms(calibration, graph, values)      # two runs of the samples: ranges, then counts
    lo, hi = OBSERVERS["mse"](hists[0])
    scale, zero_point = uint8_params(lo, hi)

  minmax      the least and greatest value seen;
  percentile  the 0.01st and 99.99th percentiles (outliers clipped);
  mse         the range, among [lo * t, hi * t] for t from 1 down to 0.05, that minimizes the expected squared
              error of quantizing the values seen: clipping error of the values outside it, plus rounding
              error (step^2 / 12) of those inside.

Ranges always hold 0 (a real zero must be exact: padding, relu), so uint8_params never fails.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..ir.graph import Graph, Value
from .calibration import Calibration

BINS = 2048
PERCENTILE = 99.99
LEVELS = 255  # steps of a uint8 range


@dataclass
class Histogram:
    """Counts of a tensor's values in BINS equal bins over [lo, hi], its least and greatest values seen."""

    lo: float
    hi: float
    counts: np.ndarray

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(self.lo, self.hi, len(self.counts) + 1)

    @property
    def centers(self) -> np.ndarray:
        e = self.edges
        return (e[:-1] + e[1:]) / 2


def histograms(calibration: Calibration, graph: Graph, values: list[Value], bins: int = BINS) -> list[Histogram]:
    """The histogram of each value over the calibration samples (its range from a first run of them, the
    counts from a second). A value holding inf or NaN cannot be quantized: ValueError names it."""
    lo = np.full(len(values), np.inf)
    hi = np.full(len(values), -np.inf)
    for arrays in calibration.observe(graph, values):
        for i, a in enumerate(arrays):
            if a.size:
                lo[i], hi[i] = min(lo[i], float(np.min(a))), max(hi[i], float(np.max(a)))
    for i, v in enumerate(values):
        if not (np.isfinite(lo[i]) and np.isfinite(hi[i])):
            raise ValueError(f"%{v.name} takes no finite range on the calibration data ({lo[i]}, {hi[i]})")
    lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
    counts = np.zeros((len(values), bins), np.int64)
    for arrays in calibration.observe(graph, values):
        for i, a in enumerate(arrays):
            if hi[i] > lo[i]:
                counts[i] += np.histogram(a, bins, range=(lo[i], hi[i]))[0]
    return [Histogram(float(lo[i]), float(hi[i]), counts[i]) for i in range(len(values))]


def minmax(h: Histogram) -> tuple[float, float]:
    return h.lo, h.hi


def percentile(h: Histogram, p: float = PERCENTILE) -> tuple[float, float]:
    """The (100 - p)th and pth percentiles, read off the histogram's cumulative counts (bin edges)."""
    total = h.counts.sum()
    if total == 0:
        return h.lo, h.hi
    cdf = np.cumsum(h.counts) / total
    edges = h.edges
    lo = edges[int(np.searchsorted(cdf, (100 - p) / 100, side="left"))]
    hi = edges[int(np.searchsorted(cdf, p / 100, side="left")) + 1]
    return min(float(lo), 0.0), max(float(hi), 0.0)


def expected_error(h: Histogram, lo: float, hi: float) -> float:
    """Expected squared error of quantizing the values counted in h over [lo, hi] in LEVELS steps: bins
    outside are clipped to the edge (their centers' distance), bins inside round (step^2 / 12)."""
    c, n = h.centers, h.counts
    step = (hi - lo) / LEVELS
    clipped = np.where(c > hi, c - hi, np.where(c < lo, lo - c, 0.0))
    inside = (c >= lo) & (c <= hi)
    return float(np.sum(n * clipped ** 2) + np.sum(n[inside]) * step * step / 12)


def mse(h: Histogram, candidates: int = 96) -> tuple[float, float]:
    """The range [lo * t, hi * t], t in (0, 1], of least expected_error."""
    if h.hi <= h.lo:
        return h.lo, h.hi
    ts = np.linspace(1.0, 0.05, candidates)
    errs = [expected_error(h, h.lo * t, h.hi * t) for t in ts]
    t = float(ts[int(np.argmin(errs))])
    return h.lo * t, h.hi * t


OBSERVERS: dict[str, Callable[[Histogram], tuple[float, float]]] = {
    "minmax": minmax, "percentile": percentile, "mse": mse}


def uint8_params(lo: float, hi: float) -> tuple[np.float32, np.uint8]:
    """(scale, zero point) of the asymmetric uint8 quantization of [lo, hi] (widened to hold 0): real 0 is
    exactly the zero point; a range of zeros gets scale 1."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo <= 0:
        return np.float32(1.0), np.uint8(0)
    scale = np.float32((hi - lo) / LEVELS)
    zero_point = int(np.clip(np.rint(-lo / float(scale)), 0, LEVELS))
    return scale, np.uint8(zero_point)
