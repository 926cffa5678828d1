"""Samples of the image and selection ops that every target is held to (resize, topk, grid_sample,
affine_grid), shared by tests/codegen/test_cpu_image_ops.py and test_triton_image_ops.py, and the check that
runs one op's samples side by side in one graph (one compile) against the reference interpreter."""
from __future__ import annotations

import itertools

import numpy as np

import leptonc
from leptonc.ir.samples import Sample, Sampler, sample_graph
from tests.codegen.cpu_check import assert_matches_reference

COORDS = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
          "tf_crop_and_resize")


def check(op: str, samples: list[Sample], target: str) -> None:
    """Every sample of `op` compiled for `target` in one graph equals the reference's result."""
    graph, inputs, owned = sample_graph([(op, sample) for sample in samples], name=f"{target}_{op}")
    want = leptonc.run_reference(graph, *inputs)
    got = leptonc.compile(graph, target=target, quiet=True, accuracy=False).run(*inputs)
    for sample, where in zip(samples, owned):
        try:
            assert_matches_reference(list(got[where]), list(want[where]))
        except AssertionError as e:
            raise AssertionError(f"{op} {sample.attrs}: {e}") from None


def resize(s: Sampler, x, shape, scales, **attrs) -> Sample:
    """A resize sample; tf_crop_and_resize gets a region of interest that reaches outside, to extrapolate."""
    if attrs.get("coordinate_transformation_mode") == "tf_crop_and_resize":
        r = x.ndim
        attrs = {"roi": (0.0,) * (r - 2) + (0.1, -0.2) + (1.0,) * (r - 2) + (0.8, 1.25), "extrapolation_value": -3.0,
                 **attrs}
    return s(x, shape=shape, scales=scales, **attrs)


def resize_coordinate_samples(s: Sampler, mode: str) -> list[Sample]:
    """Every coordinate transformation (and nearest rounding), up and down, by scales and by sizes."""
    x = s.f32(2, 3, 5, 7)
    rounding = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil") if mode == "nearest" else ("floor",)
    return [resize(s, x, shape, scales, mode=mode, coordinate_transformation_mode=coords, nearest_mode=nearest)
            for coords, nearest in itertools.product(COORDS, rounding)
            for shape, scales in (((2, 3, 9, 16), (1, 1, 1.8, 16 / 7)), ((2, 3, 3, 4), (0, 0, 0, 0)),
                                  ((2, 3, 1, 7), (1, 1, 0.2, 1)), ((2, 3, 10, 14), (1, 1, 2, 2)))]


def resize_special_samples(s: Sampler) -> list[Sample]:
    """Antialiasing, exclude_outside, cubic_coeff_a, integer types, f64, and infinities or NaN beside a tap."""
    x = s.f32(1, 2, 11, 9)
    u8 = s.ints(1, 2, 11, 9, low=0, high=256, dtype=np.uint8)
    i16 = s.ints(1, 2, 11, 9, low=-300, high=300, dtype=np.int16)
    samples = []
    for mode in ("linear", "cubic"):
        for shape in ((1, 2, 4, 3), (1, 2, 5, 20), (1, 2, 2, 2)):
            samples.append(s(x, shape=shape, scales=(0, 0, 0, 0), mode=mode, antialias=True))
            samples.append(s(u8, shape=shape, scales=(0, 0, 0, 0), mode=mode, antialias=True))
        samples.append(s(x, shape=(1, 2, 6, 13), scales=(0, 0, 0, 0), mode=mode, exclude_outside=True,
                         cubic_coeff_a=-0.5))
        samples.append(s(i16, shape=(1, 2, 17, 5), scales=(0, 0, 0, 0), mode=mode, cubic_coeff_a=-0.5))
    samples.append(s(s.f32(3, 4).astype(np.float64), shape=(5, 9), scales=(0, 0), mode="cubic"))
    samples.append(s(s.f32(1, 1, 4), shape=(1, 1, 4), scales=(1, 1, 1)))  # every axis kept as it is
    samples.append(s(x, shape=(1, 2, 6, 3), scales=(0, 0, 0, 0), mode="nearest",
                     coordinate_transformation_mode="pytorch_half_pixel", exclude_outside=True))
    special = x.copy()
    special[0, 0, 3, 4], special[0, 1, 7, 2], special[0, 1, 0, 0] = np.inf, np.nan, -np.inf
    big = s.ints(1, 1, 3, 4, low=-2**62, high=2**62, dtype=np.int64)
    for nearest in ("floor", "ceil", "round_prefer_ceil"):  # an infinity or NaN next to the position taken
        samples.append(s(special, shape=(1, 2, 23, 14), scales=(0, 0, 0, 0), mode="nearest", nearest_mode=nearest))
        samples.append(s(big, shape=(1, 1, 7, 9), scales=(0, 0, 0, 0), mode="nearest", nearest_mode=nearest))
    samples.append(s(special, shape=(1, 2, 11, 9), scales=(0, 0, 0, 0), mode="linear"))
    return samples


def topk_samples(s: Sampler, long_lines: bool) -> list[Sample]:
    """Ties (the lower index first), NaN, -0.0, integer extremes whose negation wraps, k from 0 to the whole
    axis; with `long_lines`, lines of 100 and 700 too (the cpu's block skipping and its sort above k = 256)."""
    f = s.f32(3, 40, 5)
    f[0, 3, :] = np.nan
    f[1, :, 2] = 0.5
    f[2, 7, 1] = -0.0
    lo = np.iinfo(np.int64).min
    ints = np.array([[3, lo, 7, 7, -2, lo, 9, 0], [1, 1, 1, 1, 1, 1, 1, 1]], np.int64)
    u = np.array([[0, 2**63, 5, 2**64 - 1, 5, 1]], np.uint64)
    i8 = s.ints(4, 9, low=-128, high=128, dtype=np.int8)
    i8[0, 0] = -128
    long = np.round(s.f32(2, 700), 1)  # many ties
    long[0, 11], long[1, 600] = np.nan, np.nan
    wide = s.ints(3, 100, low=-50, high=50, dtype=np.int32)
    wide[1, 70] = np.iinfo(np.int32).min
    samples = []
    for largest in (True, False):
        samples += [s(f, k=k, axis=1, largest=largest) for k in (0, 1, 5, 17, 40)]
        if long_lines:
            samples += [s(long, k=k, largest=largest) for k in (256, 257, 700)]
            samples += [s(wide, k=3, largest=largest), s(long.T.copy(), k=2, axis=0, largest=largest)]
        samples += [s(f, k=5, axis=-1, largest=largest), s(f, k=2, axis=0, largest=largest),
                    s(ints, k=8, largest=largest), s(ints, k=3, largest=largest), s(u, k=4, largest=largest),
                    s(i8, k=6, largest=largest), s(i8, k=4, axis=0, largest=largest)]
    return samples


def grid_sample_samples(s: Sampler) -> list[Sample]:
    """Every mode, padding mode and corner rule, 1 to 3 spatial dims (cubic: 1 and 2), points outside and
    exactly on the corners and the center, and f64."""
    x2, x1, x3 = s.f32(2, 3, 5, 6), s.f32(1, 2, 7), s.f32(1, 2, 3, 4, 5)
    g2 = s.f32(2, 4, 3, 2, low=-1.6, high=1.6)
    g2[0, 0, 0] = (-1.0, 1.0)
    g2[0, 0, 1] = (0.0, 0.0)
    g2[1, 3, 2] = (1.0, -1.0)
    samples = []
    for mode, padding, align in itertools.product(("linear", "nearest", "cubic"), ("zeros", "border", "reflection"),
                                                  (False, True)):
        attrs = dict(mode=mode, padding_mode=padding, align_corners=align)
        samples.append(s(x2, g2, **attrs))
        samples.append(s(x1, s.f32(1, 5, 1, low=-1.4, high=1.4), **attrs))
        if mode != "cubic":
            samples.append(s(x3, s.f32(1, 2, 3, 2, 3, low=-1.3, high=1.3), **attrs))
    samples.append(s(x2.astype(np.float64), g2.astype(np.float64), mode="cubic"))
    return samples


def affine_grid_samples(s: Sampler) -> list[Sample]:
    """2-d and 3-d grids, unit sizes, both corner rules."""
    return [s(s.f32(2, 2, 3), size=(2, 3, 4, 5)), s(s.f32(2, 2, 3), size=(2, 1, 1, 6), align_corners=True),
            s(s.f32(2, 2, 3), size=(2, 3, 5, 7), align_corners=True),
            s(s.f32(1, 3, 4), size=(1, 1, 2, 3, 4)), s(s.f32(1, 3, 4), size=(1, 2, 3, 1, 2), align_corners=True)]
