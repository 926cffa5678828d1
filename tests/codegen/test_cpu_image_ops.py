"""The cpu target's image, selection and pooling kernels against the reference interpreter: resize in every
mode, coordinate transformation and rounding, topk with ties, NaN and integer extremes, the pad modes with
pads wider than the axis, reverse_sequence, grid_sample, affine_grid, roi_align, lp_pool,
max_pool_with_indices and max_unpool, on odd shapes; indices out of range are errors, as in the reference.

Each test runs its cases side by side in one graph (one compile)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import leptonc
from leptonc.ir import LeptoncError
from leptonc.ir.errors import IndexRangeError
from leptonc.ir.samples import Sample, Sampler, sample_graph
from tests.codegen.cpu_check import assert_matches_reference
from tests.codegen.image_op_samples import (affine_grid_samples, check, grid_sample_samples, resize_coordinate_samples,
                                             resize_special_samples, topk_samples)

s = Sampler("test_cpu_image_ops")


def _check(op: str, samples: list[Sample]) -> None:
    check(op, samples, "cpu")


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_resize_every_coordinate_mode_up_and_down(mode):
    _check("resize", resize_coordinate_samples(s, mode))


def test_resize_antialias_exclude_outside_cubic_a_and_integer_types():
    _check("resize", resize_special_samples(s))


def test_topk_ties_nan_extremes_and_both_selection_paths():
    _check("topk", topk_samples(s, long_lines=True))


def _pad_mode_samples() -> list[Sample]:
    x = s.f32(2, 3, 4)
    one = s.f32(3, 1)
    samples = []
    for mode in ("edge", "reflect", "wrap"):
        samples += [s(x, pads=(0, 2, 3, 0, 1, 2), mode=mode),
                    s(x, pads=(1, 7, 9, 2, 8, 11), mode=mode),        # wider than each axis: repeated
                    s(x, pads=(0, -1, 5, 1, 2, -2), mode=mode),       # crop one side, pad the other
                    s(one, pads=(2, 3, 1, 4), mode=mode),
                    s(s.ints(3, 5, dtype=np.int32), pads=(4, 1, 0, 6), mode=mode)]
    return samples


def test_pad_modes_wider_than_the_axis_and_with_crops():
    _check("pad", _pad_mode_samples())


def test_pad_modes_on_triton_read_the_same_index_function(monkeypatch):
    pytest.importorskip("triton")
    if not pytest.importorskip("torch").cuda.is_available():
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    cases = [("pad", sample) for sample in _pad_mode_samples()]
    graph, inputs, owned = sample_graph(cases, name="triton_pad")
    want = leptonc.run_reference(graph, *inputs)
    got = leptonc.compile(graph, target="triton", quiet=True, accuracy=False).run(*inputs)
    for where in owned:
        assert_matches_reference([np.asarray(a) for a in got[where]], list(want[where]))


def test_reverse_sequence_lengths_from_zero_to_the_whole_axis():
    x = s.f32(5, 4, 3)
    _check("reverse_sequence", [s(x, np.array([0, 5, 2, 1])), s(x.transpose(1, 0, 2).copy(), np.array([3, 0, 5, 4],
                                                                                                      np.int32),
                                                                batch_axis=0, time_axis=1),
                                s(x, np.array([3]))])  # one length for every batch entry


def _compiled_and_reference(op, sample):
    graph, inputs, _ = sample_graph([(op, sample)])
    return leptonc.compile(graph, quiet=True, accuracy=False), graph, inputs


def test_reverse_sequence_length_past_the_axis_is_an_error():
    cm, graph, inputs = _compiled_and_reference("reverse_sequence", s(s.f32(3, 2), np.array([1, 4])))
    with pytest.raises(Exception):  # noqa: B017  the reference's read out of range
        leptonc.run_reference(graph, *inputs)
    with pytest.raises(IndexRangeError, match="index 4 is out of range for dim 0 of size 3"):
        cm.run(*inputs)


def test_grid_sample_every_mode_padding_and_alignment():
    _check("grid_sample", grid_sample_samples(s))


def test_affine_grid_two_and_three_dims_and_unit_sizes():
    _check("affine_grid", affine_grid_samples(s))


def test_roi_align_modes_and_adaptive_sampling():
    x = s.f32(2, 3, 9, 11)
    rois = np.array([[0, 0, 4, 4], [1.5, 2, 7.5, 6], [-2, -1, 3, 12], [3, 3, 3.2, 3.1], [5, 6, 1, 2]], np.float32)
    batch = np.array([0, 1, -1, 0, 1])
    samples = []
    for mode, coords, ratio in itertools.product(("avg", "max"), ("half_pixel", "output_half_pixel"), (0, 2)):
        samples.append(s(x, rois, batch, mode=mode, coordinate_transformation_mode=coords, sampling_ratio=ratio,
                         output_height=3, output_width=2, spatial_scale=0.75))
    _check("roi_align", samples)


def test_roi_align_batch_index_out_of_range_is_an_error():
    x = s.f32(2, 1, 4, 4)
    cm, graph, inputs = _compiled_and_reference("roi_align", s(x, np.array([[0, 0, 2, 2]] * 2, np.float32),
                                                               np.array([1, 2])))
    with pytest.raises(Exception):  # noqa: B017  the reference's read out of range
        leptonc.run_reference(graph, *inputs)
    with pytest.raises(IndexRangeError, match="index 2 is out of range"):
        cm.run(*inputs)


def test_lp_pool_any_rank_padding_ceil_mode_and_dilation():
    samples = [s(s.f32(2, 3, 7, 6), kernel=(3, 2), strides=(2, 2), pads=(1, 0, 1, 1), ceil_mode=True, p=1.0),
               s(s.f32(1, 2, 9), kernel=(3,), dilations=(2,), p=3.0),
               s(s.f32(1, 2, 4, 5, 6), kernel=(2, 2, 3), strides=(1, 2, 2)),
               s(s.f32(1, 1, 5, 5).astype(np.float64), kernel=(2, 2), pads=(1, 1, 1, 1), p=2.5)]
    _check("lp_pool", samples)


def test_max_pool_with_indices_any_rank_nan_and_integers():
    x = s.f32(2, 2, 7, 6)
    x[0, 1, 2, 3] = np.nan
    samples = [s(x, kernel=(3, 2), strides=(2, 2), pads=(1, 0, 1, 1), ceil_mode=True),
               s(x, kernel=(2, 3), dilations=(2, 1), storage_order=1),
               s(s.f32(1, 3, 10), kernel=(3,), strides=(3,), ceil_mode=True),
               s(s.f32(1, 2, 4, 5, 3), kernel=(2, 2, 2), pads=(0, 1, 1, 1, 0, 0), storage_order=1),
               s(s.ints(1, 2, 5, 5, dtype=np.int32), kernel=(2, 2)),
               s(np.full((1, 1, 3, 3), -np.inf, np.float32), kernel=(2, 2), pads=(1, 1, 1, 1))]
    _check("max_pool_with_indices", samples)


def test_max_unpool_repeated_and_negative_indices():
    idx = np.array([0, 3, 3, -1, 17, -32, 9, 31]).reshape(1, 2, 2, 2)
    _check("max_unpool", [s(s.f32(1, 2, 2, 2), idx, output_shape=(1, 2, 4, 4)),
                          s(s.ints(1, 2, 2, 2, dtype=np.int32), idx, output_shape=(2, 4, 2, 2))])


def test_max_unpool_index_out_of_range_is_an_error():
    cm, graph, inputs = _compiled_and_reference("max_unpool", s(s.f32(1, 1, 1, 2), np.array([[[[1, 16]]]]),
                                                                output_shape=(1, 1, 4, 4)))
    with pytest.raises(Exception):  # noqa: B017
        leptonc.run_reference(graph, *inputs)
    with pytest.raises(IndexRangeError, match="index 16 is out of range"):
        cm.run(*inputs)


def test_topk_over_bool_is_refused_with_the_node_named():
    graph, _, _ = sample_graph([("topk", s(np.array([[True, False]]), k=1))])
    with pytest.raises(LeptoncError, match="topk"):
        leptonc.compile(graph, quiet=True, accuracy=False)


def test_pools_over_three_spatial_dims_and_other_integers():
    x = s.f32(2, 3, 5, 6, 7)
    x[0, 1, 2, 3, 4] = np.nan
    i32 = s.ints(1, 2, 4, 5, 6, low=-1000, high=1000, dtype=np.int32)
    window = dict(kernel=(2, 3, 2), strides=(2, 1, 2), pads=(1, 0, 1, 0, 2, 1))
    _check("max_pool", [s(x, **window), s(x, kernel=(3, 3, 3), dilations=(2, 1, 2), ceil_mode=True, strides=(2, 2, 3)),
                        s(i32, **window),
                        # 1 and 2 spatial dims of the integers conv.py's kernels leave out
                        s(s.ints(2, 3, 6, 7, low=-2**40, high=2**40, dtype=np.int64), kernel=(3, 2), pads=(1, 0, 1, 1),
                          strides=(2, 2), ceil_mode=True),
                        s(s.ints(1, 2, 9, low=0, high=60000, dtype=np.uint16), kernel=(4,), dilations=(2,))])
    _check("avg_pool", [s(x, **window), s(x, count_include_pad=True, **window),
                        s(x, kernel=(3, 2, 3), strides=(2, 2, 2), pads=(1, 1, 1, 1, 0, 1), ceil_mode=True),
                        s(x, kernel=(3, 2, 3), strides=(2, 2, 2), pads=(1, 1, 1, 1, 0, 1), ceil_mode=True,
                          count_include_pad=True)])


def test_one_library_serves_every_batch_size():
    graph = leptonc.parse_ir("""graph @sym(%x: f32[B, 3, 5, 7], %t: f32[B, 40]) -> (f32[B, 3, 10, 3], f32[B, 5],
        i64[B, 5], f32[B, 3, 9, 8], f32[B, 3, 10, 14], f32[B, 3, 2, 3]) {
  %y = resize(%x) {shape = ["B", 3, 10, 3], scales = [1.0, 1.0, 0.0, 0.0], mode = "linear"} : f32[B, 3, 10, 3]
  %v, %i = topk(%t) {k = 5} : f32[B, 5], i64[B, 5]
  %p = pad(%x) {pads = [0, 0, 2, 0, 0, 0, 2, 1], mode = "reflect"} : f32[B, 3, 9, 8]
  %n = resize(%x) {shape = ["B", 3, 10, 14], scales = [1.0, 1.0, 2.0, 2.0]} : f32[B, 3, 10, 14]
  %l = lp_pool(%x) {kernel = [2, 2], strides = [2, 2]} : f32[B, 3, 2, 3]
  return %y, %v, %i, %p, %n, %l
}""")
    cm = leptonc.compile(graph, quiet=True, accuracy=False)
    for b in (1, 3):
        rng = np.random.default_rng(b)
        xs = [rng.standard_normal(shape).astype(np.float32) for shape in ((b, 3, 5, 7), (b, 40))]
        assert_matches_reference(cm.run(*xs), leptonc.run_reference(graph, *xs))


def test_grid_sample_at_nan_infinite_and_huge_coordinates():
    grid = s.f32(1, 3, 3, 2, low=-1.2, high=1.2)
    grid[0, 0, 0, 0], grid[0, 1, 1, 1], grid[0, 2, 2, 0], grid[0, 2, 1, 1] = np.nan, np.inf, -np.inf, 1e30
    x = s.f32(1, 2, 4, 5)
    _check("grid_sample", [s(x, grid, mode=mode, padding_mode=padding, align_corners=align)
                           for mode, padding, align in itertools.product(("linear", "nearest", "cubic"),
                                                                         ("zeros", "border", "reflection"),
                                                                         (False, True))])


@pytest.mark.parametrize("text, size, message", [
    ("%y, %i = topk(%t) {k = 4} : f32[2, 4], i64[2, 4]", 3, "index 4 is out of range for dim 1 of size 3"),
    ('%y = pad(%t) {pads = [0, 1, 1, 3], mode = "wrap"} : f32[3, S + 4]', 0, "out of range for dim 1 of size 0"),
])
def test_run_time_sizes_a_kernel_cannot_honour_are_errors(text, size, message):
    out = text.split(" : ")[1].split(", i64")[0]
    graph = leptonc.parse_ir(f"graph @g(%t: f32[2, S]) -> ({out}) {{\n  {text}\n  return %y\n}}")
    cm = leptonc.compile(graph, quiet=True, accuracy=False)
    t = s.f32(2, size)
    with pytest.raises(LeptoncError):  # the reference refuses too
        leptonc.run_reference(graph, t)
    with pytest.raises(IndexRangeError, match=message):
        cm.run(t)
    wide = s.f32(2, 6)
    assert_matches_reference(cm.run(wide), leptonc.run_reference(graph, wide))


@pytest.mark.parametrize("text, shapes", [
    ('%y = resize(%x) {shape = [2, 6], scales = [1.0, 0.0], mode = "linear"} : f32[2, 6]', [(2, "H")]),
    ("%y = grid_sample(%x, %g) : f32[1, 1, 2, 2]", [(1, 1, "H", 3), (1, 2, 2, 2)]),
    ("%y = roi_align(%x, %r, %b) {output_height = 2, output_width = 2} : f32[1, 1, 2, 2]",
     [(1, 1, "H", 3), (1, 4), (1,)]),
], ids=["resize", "grid_sample", "roi_align"])
def test_an_axis_of_run_time_size_zero_is_an_error_as_in_the_reference(text, shapes):
    names = ["%x", "%g"] if "grid" in text else ["%x", "%r", "%b"][:len(shapes)]
    signature = ", ".join(f"{n}: {'i64' if n == '%b' else 'f32'}[{', '.join(map(str, sh))}]"
                          for n, sh in zip(names, shapes))
    graph = leptonc.parse_ir(f"graph @g({signature}) -> ({text.split(' : ')[1]}) {{\n  {text}\n  return %y\n}}")
    cm = leptonc.compile(graph, quiet=True, accuracy=False)

    def inputs(h):
        return [np.zeros(sh, np.int64) if n == "%b" else s.f32(*(h if d == "H" else d for d in sh), low=0.0)
                for n, sh in zip(names, shapes)]
    good = inputs(4)
    assert_matches_reference(cm.run(*good), leptonc.run_reference(graph, *good))
    empty = inputs(0)
    with pytest.raises(LeptoncError):
        leptonc.run_reference(graph, *empty)
    with pytest.raises(IndexRangeError, match="of size 0"):
        cm.run(*empty)
