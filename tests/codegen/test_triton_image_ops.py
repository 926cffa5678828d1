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
from leptonc.ir.samples import Sample, Sampler  # noqa: E402
from tests.codegen.image_op_samples import (affine_grid_samples, check, grid_sample_samples,  # noqa: E402
                                             resize_coordinate_samples, resize_special_samples, topk_samples)
from tests.codegen.cpu_check import assert_matches_reference  # noqa: E402

s = Sampler("test_triton_image_ops")


@pytest.fixture(autouse=True)
def on_triton_device(triton_device):
    """The kernels run on the GPU where there is one, else through Triton's interpreter."""


def _check(op: str, samples: list[Sample]) -> None:
    check(op, samples, "triton")


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_resize_every_coordinate_mode_up_and_down(mode):
    _check("resize", resize_coordinate_samples(s, mode))


def test_resize_antialias_exclude_outside_integers_and_non_finite_neighbours():
    _check("resize", resize_special_samples(s))


def test_topk_ties_nan_and_integer_extremes():
    _check("topk", topk_samples(s, long_lines=False))


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
    _check("affine_grid", affine_grid_samples(s))


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
    _check("grid_sample", grid_sample_samples(s))


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
