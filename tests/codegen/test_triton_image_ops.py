"""The triton target's resize and topk, u16/u32/u64 buffers and bool reductions against the reference
interpreter (on the GPU, else by Triton's interpreter): resize in every mode, coordinate transformation and
rounding, antialiased, excluding the outside, over integers and next to infinities and NaN; topk with ties,
NaN and integer extremes. Each test runs its cases side by side in one graph (one compile); shapes are small."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

pytest.importorskip("triton")
pytest.importorskip("torch")

import leptonc  # noqa: E402
from leptonc.ir import DType, Graph, TensorType  # noqa: E402
from leptonc.ir.samples import Sample, Sampler, sample_graph  # noqa: E402
from tests.codegen.cpu_check import assert_matches_reference  # noqa: E402

s = Sampler("test_triton_image_ops")


@pytest.fixture(autouse=True)
def on_triton_device(triton_device):
    """The kernels run on the GPU where there is one, else through Triton's interpreter."""


def _check(op: str, samples: list[Sample]) -> None:
    graph, inputs, owned = sample_graph([(op, sample) for sample in samples], name=f"triton_{op}")
    want = leptonc.run_reference(graph, *inputs)
    got = leptonc.compile(graph, target="triton", quiet=True, accuracy=False).run(*inputs)
    for sample, where in zip(samples, owned):
        try:
            assert_matches_reference(list(got[where]), list(want[where]))
        except AssertionError as e:
            raise AssertionError(f"{op} {sample.attrs}: {e}") from None


_COORDS = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
           "tf_crop_and_resize")


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_resize_every_coordinate_mode_up_and_down(mode):
    x = s.f32(1, 2, 5, 7)
    rounding = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil") if mode == "nearest" else ("floor",)
    samples = []
    for coords, nearest in itertools.product(_COORDS, rounding):
        extra = {"roi": (0.0, 0.0, 0.1, -0.2, 1.0, 1.0, 0.8, 1.25), "extrapolation_value": -3.0} \
            if coords == "tf_crop_and_resize" else {}
        for shape, scales in (((1, 2, 9, 16), (1, 1, 1.8, 16 / 7)), ((1, 2, 3, 4), (0, 0, 0, 0)),
                              ((1, 2, 1, 7), (1, 1, 0.2, 1))):
            samples.append(s(x, shape=shape, scales=scales, mode=mode, coordinate_transformation_mode=coords,
                             nearest_mode=nearest, **extra))
    _check("resize", samples)


def test_resize_antialias_exclude_outside_integers_and_non_finite_neighbours():
    x = s.f32(1, 2, 11, 9)
    u8 = s.ints(1, 2, 11, 9, low=0, high=256, dtype=np.uint8)
    i16 = s.ints(1, 2, 11, 9, low=-300, high=300, dtype=np.int16)
    samples = []
    for mode in ("linear", "cubic"):
        samples.append(s(x, shape=(1, 2, 4, 3), scales=(0, 0, 0, 0), mode=mode, antialias=True))
        samples.append(s(u8, shape=(1, 2, 5, 20), scales=(0, 0, 0, 0), mode=mode, antialias=True))
        samples.append(s(x, shape=(1, 2, 6, 13), scales=(0, 0, 0, 0), mode=mode, exclude_outside=True,
                         cubic_coeff_a=-0.5))
        samples.append(s(i16, shape=(1, 2, 17, 5), scales=(0, 0, 0, 0), mode=mode, cubic_coeff_a=-0.5))
    samples.append(s(s.f32(3, 4).astype(np.float64), shape=(5, 9), scales=(0, 0), mode="cubic"))
    samples.append(s(s.f32(1, 1, 4), shape=(1, 1, 4), scales=(1, 1, 1)))  # every axis kept as it is
    special = x.copy()
    special[0, 0, 3, 4], special[0, 1, 7, 2], special[0, 1, 0, 0] = np.inf, np.nan, -np.inf
    big = s.ints(1, 1, 3, 4, low=-2**62, high=2**62, dtype=np.int64)
    for nearest in ("floor", "ceil"):  # an infinity or NaN next to the position taken
        samples.append(s(special, shape=(1, 2, 23, 14), scales=(0, 0, 0, 0), mode="nearest", nearest_mode=nearest))
        samples.append(s(big, shape=(1, 1, 7, 9), scales=(0, 0, 0, 0), mode="nearest", nearest_mode=nearest))
    samples.append(s(special, shape=(1, 2, 11, 9), scales=(0, 0, 0, 0), mode="linear"))
    _check("resize", samples)


def test_topk_ties_nan_and_integer_extremes():
    f = s.f32(3, 40, 5)
    f[0, 3, :] = np.nan
    f[1, :, 2] = 0.5          # ties: the lower index first
    f[2, 7, 1] = -0.0
    lo = np.iinfo(np.int64).min
    ints = np.array([[3, lo, 7, 7, -2, lo, 9, 0], [1, 1, 1, 1, 1, 1, 1, 1]], np.int64)
    u = np.array([[0, 2**63, 5, 2**64 - 1, 5, 1]], np.uint64)
    i8 = s.ints(4, 9, low=-128, high=128, dtype=np.int8)
    i8[0, 0] = -128           # its negation wraps, as in the reference
    samples = []
    for largest in (True, False):
        samples += [s(f, k=k, axis=1, largest=largest) for k in (0, 1, 17, 40)]
        samples += [s(f, k=5, axis=-1, largest=largest), s(f, k=2, axis=0, largest=largest),
                    s(ints, k=8, largest=largest), s(ints, k=3, largest=largest), s(u, k=4, largest=largest),
                    s(i8, k=6, largest=largest), s(i8, k=4, axis=0, largest=largest)]
    _check("topk", samples)


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.uint64])
def test_wide_unsigned_buffers(dtype):
    g = Graph("unsigned")
    dt = DType.from_numpy(dtype)
    a = g.add_input("a", TensorType(dt, (3, 5)))
    b = g.add_input("b", TensorType(dt, (5,)))
    g.set_outputs([g.add("add", a, b), g.add("less", a, b), g.add("reduce_max", a, axes=(1,), keepdims=False)])
    info = np.iinfo(dtype)
    x = np.array(s.ints(3, 5, low=0, high=1000, dtype=np.int64), dtype)
    x[0, 0] = info.max
    y = np.array(s.ints(5, low=0, high=1000, dtype=np.int64), dtype)
    assert_matches_reference(leptonc.compile(g, target="triton", quiet=True).run(x, y), leptonc.run_reference(g, x, y))


def test_reduce_max_and_min_over_bool_are_any_and_all():
    g = Graph("bools")
    a = g.add_input("a", TensorType(DType.bool, (4, 6)))
    g.set_outputs([g.add("reduce_max", a, axes=(1,), keepdims=False),
                   g.add("reduce_min", a, axes=(1,), keepdims=True)])
    x = np.zeros((4, 6), bool)
    x[1, 2] = True
    x[2] = True
    x[3, :5] = True
    assert_matches_reference(leptonc.compile(g, target="triton", quiet=True).run(x), leptonc.run_reference(g, x))


def test_bitcast_reads_the_same_bits():
    g = Graph("bits")
    f = g.add_input("f", TensorType(DType.f32, (2, 3)))
    b = g.add_input("b", TensorType(DType.bool, (4,)))
    u = g.add_input("u", TensorType(DType.u16, (5,)))
    g.set_outputs([g.add("bitcast", f, dtype=DType.i32), g.add("bitcast", b, dtype=DType.u8),
                   g.add("bitcast", u, dtype=DType.i16)])
    x = s.f32(2, 3)
    x[0, 0] = -np.inf
    inputs = (x, np.array([True, False, True, True]), np.array([0, 1, 32768, 65535, 7], np.uint16))
    assert_matches_reference(leptonc.compile(g, target="triton", quiet=True).run(*inputs),
                             leptonc.run_reference(g, *inputs))


def test_affine_grid_2d_and_3d_both_corner_modes():
    theta2, theta3 = s.f32(2, 2, 3), s.f32(2, 3, 4)
    samples = []
    for corners in (False, True):
        samples += [s(theta2, size=(2, 3, 5, 7), align_corners=corners),
                    s(theta2, size=(2, 1, 1, 4), align_corners=corners),
                    s(theta3, size=(2, 1, 3, 1, 6), align_corners=corners)]
    _check("affine_grid", samples)


def test_dft_forward_inverse_onesided_and_lengths():
    real, cplx = s.f32(2, 8, 1), s.f32(2, 7, 3, 2)
    samples = []
    for inverse, onesided in itertools.product((False, True), (False, True)):
        for length in (0, 5, 12):
            samples.append(s(real if not inverse else cplx, axis=1, length=length,
                             inverse=inverse, onesided=onesided))
    samples.append(s(cplx, axis=2, length=0, inverse=False, onesided=False))
    _check("dft", samples)


def test_stft_real_and_complex_with_and_without_window():
    real, cplx, window = s.f32(2, 20, 1), s.f32(1, 17, 2), s.f32(6)
    samples = [s(real, step=3, length=6, onesided=True), s(cplx, step=2, length=5, onesided=False),
               s(real, window, step=4, length=0, onesided=False), s(cplx, window, step=5, length=6, onesided=True)]
    _check("stft", samples)


def test_fmod_of_floats_at_infinities_zeros_and_nan():
    g = Graph("fmod")
    a = g.add_input("a", TensorType(DType.f32, (12,)))
    b = g.add_input("b", TensorType(DType.f32, (12,)))
    g.set_outputs([g.add("mod", a, b, fmod=True)])
    inf, nan = np.inf, np.nan
    x = np.array([-6, 6, 5.5, -0.0, 3, -1, inf, -inf, 2, nan, 7, -7.5], np.float32)
    y = np.array([3, -3, 2, 1, inf, -inf, 2, 3, 0, 1, nan, 2], np.float32)
    assert_matches_reference(leptonc.compile(g, target="triton", quiet=True).run(x, y), leptonc.run_reference(g, x, y))
    got = leptonc.compile(g, target="triton", quiet=True).run(x, y)[0]
    assert np.array_equal(np.signbit(got[:4]), [True, False, False, True])  # a zero takes the dividend's sign


def test_grid_sample_every_mode_padding_and_corner_rule():
    x2, x3 = s.f32(2, 3, 5, 6), s.f32(1, 2, 3, 4, 5)
    g2 = s.f32(2, 4, 7, 2, low=-1.6, high=1.6)  # some points outside, to pad
    g3 = s.f32(1, 2, 3, 2, 3, low=-1.4, high=1.4)
    samples = []
    for mode, padding, corners in itertools.product(("nearest", "linear", "cubic"), ("zeros", "border", "reflection"),
                                                    (False, True)):
        samples.append(s(x2, g2, mode=mode, padding_mode=padding, align_corners=corners))
        if mode != "cubic":
            samples.append(s(x3, g3, mode=mode, padding_mode=padding, align_corners=corners))
    _check("grid_sample", samples)


def test_tanh_keeps_its_relative_accuracy_near_zero():
    g = Graph("tanh")
    a = g.add_input("a", TensorType(DType.f32, (9,)))
    g.set_outputs([g.add("tanh", a)])
    x = np.array([1e-30, -3e-7, 2e-5, -1e-3, 0.05, -0.0999, 0.1, -0.7, 30.0], np.float32)
    got = leptonc.compile(g, target="triton", quiet=True).run(x)[0]
    np.testing.assert_allclose(got, np.tanh(x.astype(np.float64)), rtol=1e-6, atol=0)


def test_lp_pool_sums_powers_in_double():
    x = s.f32(2, 3, 7, 8)
    samples = [s(x, kernel=(3, 2), p=2.0), s(x, kernel=(2, 3), strides=(2, 2), pads=(1, 0, 1, 1), p=3.0),
               s(x, kernel=(2, 2), dilations=(2, 1), ceil_mode=True, strides=(2, 3), p=1.0),
               s(s.f32(2, 3, 9), kernel=(4,), p=2.5)]
    _check("lp_pool", samples)


def test_max_pool_over_integers_in_their_own_type():
    u8 = s.ints(1, 2, 6, 7, low=0, high=256, dtype=np.uint8)
    i32 = s.ints(1, 2, 6, 7, low=-2**31, high=2**31, dtype=np.int32)
    _check("max_pool", [s(u8, kernel=(3, 3), pads=(1, 1, 1, 1)), s(i32, kernel=(2, 3), strides=(2, 1)),
                        s(s.ints(2, 3, 9, low=-128, high=128, dtype=np.int8), kernel=(4,), dilations=(2,))])
