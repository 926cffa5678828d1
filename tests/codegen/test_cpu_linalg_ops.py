"""conv_transpose, col2im, deform_conv, einsum, det and bitcast on the cpu target against the reference.

conv_transpose over 1, 2 and 3 spatial dims with groups, strides, pads, dilations, output padding and a
bias, in f32, f64 and f16 (widened); einsum over transposes, diagonals, broadcast ellipses, three
operands, full sums, integers and bf16; det of singular, pivoting and batched matrices; bitcast between
types of one width (f16's bits included)."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import leptonc
from leptonc.ir import DType, Graph, TensorType
from tests.codegen.cpu_check import assert_matches_reference


def _one_op(op: str, operands: list[np.ndarray], constant: tuple = (), **attrs) -> Graph:
    """A graph of one op; operands whose index is in `constant` are weights."""
    g = Graph(op)
    args = [g.add_constant(a, f"w{i}") if i in constant else
            g.add_input(f"x{i}", TensorType(DType.from_numpy(a.dtype), a.shape)) for i, a in enumerate(operands)]
    g.set_outputs([g.add(op, *args, **attrs)])
    return g


def _check(g: Graph, inputs: list[np.ndarray], exact_dtype: bool = False):
    got, want = leptonc.compile(g, quiet=True).run(*inputs), leptonc.run_reference(g, *inputs)
    if exact_dtype or got[0].dtype.kind != "f" or got[0].dtype == np.float64:
        assert got[0].dtype == want[0].dtype and got[0].shape == want[0].shape
        np.testing.assert_allclose(got[0].astype(np.float64), want[0].astype(np.float64), rtol=1e-6, atol=1e-9)
    else:
        assert_matches_reference(got, want)


CONV_TRANSPOSE = [
    ((2, 3, 5), (3, 4, 3), {}),
    ((2, 4, 7), (4, 3, 4), {"strides": (3,), "pads": (1, 2), "dilations": (2,), "group": 2, "output_padding": (1,)}),
    ((1, 3, 4, 5), (3, 2, 3, 3), {"strides": (2, 2), "pads": (1, 1, 1, 1)}),
    ((2, 4, 4, 5), (4, 3, 3, 2), {"strides": (2, 3), "pads": (1, 0, 2, 1), "dilations": (1, 2), "group": 2,
                                  "output_padding": (1, 2)}),
    ((1, 6, 3, 3), (6, 1, 2, 2), {"group": 6, "strides": (2, 2)}),      # depthwise
    ((1, 2, 3, 4, 3), (2, 2, 2, 3, 2), {"strides": (1, 2, 2), "pads": (0, 1, 0, 0, 1, 1)}),
]


@pytest.mark.parametrize("x_shape, w_shape, attrs", CONV_TRANSPOSE, ids=lambda v: str(v))
def test_conv_transpose_matches_the_reference(x_shape, w_shape, attrs):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[1] * attrs.get("group", 1)).astype(np.float32)
    _check(_one_op("conv_transpose", [x, w, b], constant=(1, 2), **attrs), [x])
    _check(_one_op("conv_transpose", [x, w], **attrs), [x, w])


@pytest.mark.parametrize("dtype", [np.float64, np.float16], ids=str)
def test_conv_transpose_in_f64_and_f16(dtype):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 4, 5, 5)).astype(dtype), rng.standard_normal((4, 2, 3, 3)).astype(dtype)
    g = _one_op("conv_transpose", [x, w], strides=(2, 2), pads=(1, 1, 0, 0), group=2)
    got, want = leptonc.compile(g, quiet=True).run(x, w), leptonc.run_reference(g, x, w)
    assert got[0].dtype == want[0].dtype
    tol = 1e-12 if dtype == np.float64 else 2e-3
    np.testing.assert_allclose(got[0].astype(np.float64), want[0].astype(np.float64), rtol=tol, atol=tol * 10)


EINSUM = [
    ("ij->ji", [(3, 4)]), ("ii->i", [(4, 4)]), ("ii", [(4, 4)]), ("bii->bi", [(3, 4, 4)]), ("ij->", [(3, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]), ("ij,jk", [(3, 4), (4, 5)]), ("i,i", [(6,), (6,)]),
    ("i,j->ij", [(3,), (4,)]), ("ij,j,jk->ik", [(2, 3), (3,), (3, 4)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 6)]),
    ("bhqd,bhkd->bhqk", [(1, 2, 3, 4), (1, 2, 5, 4)]), ("iij,jk->ik", [(3, 3, 2), (2, 4)]), ("...i->...", [(2, 3, 4)]),
]


@pytest.mark.parametrize("equation, shapes", EINSUM, ids=lambda v: str(v))
def test_einsum_matches_the_reference(equation, shapes):
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    _check(_one_op("einsum", xs, equation=equation), xs)


def test_einsum_over_integers_wraps_and_bf16_rounds():
    rng = np.random.default_rng(2)
    a, b = rng.integers(-100, 100, (3, 40), dtype=np.int8), rng.integers(-100, 100, (40, 2), dtype=np.int8)
    _check(_one_op("einsum", [a, b], equation="ij,jk->ik"), [a, b])   # sums far beyond i8: wrap as numpy
    c = rng.integers(-100, 100, (3, 3, 40), dtype=np.int8)
    _check(_one_op("einsum", [c, b], equation="iij,jk->ik"), [c, b])   # (a diagonal: the einsum kernel)
    big = rng.integers(-2 ** 62, 2 ** 62, (3, 3, 4), dtype=np.int64)
    _check(_one_op("einsum", [big], equation="iij->j"), [big])   # int64 sums past 2^63 wrap too
    x = rng.standard_normal((2, 3, 4)).astype(ml_dtypes.bfloat16)
    y = rng.standard_normal((2, 4, 5)).astype(ml_dtypes.bfloat16)
    g = _one_op("einsum", [x, y], equation="bij,bjk->bik")
    got, want = leptonc.compile(g, quiet=True).run(x, y), leptonc.run_reference(g, x, y)
    assert got[0].dtype == want[0].dtype
    np.testing.assert_allclose(got[0].astype(np.float32), want[0].astype(np.float32), rtol=2 ** -7, atol=1e-6)


def test_det_matches_the_reference():
    rng = np.random.default_rng(3)
    batch = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    batch[0, 1] = [[1, 2, 3, 4, 5]] * 5                                  # singular
    batch[1, 0, :, 0] = 0                                                # a zero column: singular
    batch[1, 2] = np.eye(5)[[1, 0, 2, 4, 3]]                             # two row swaps: +1
    batch[0, 2, 0, 0] = np.nan
    _check(_one_op("det", [batch]), [batch])
    _check(_one_op("det", [batch[0, 0].astype(np.float64)]), [batch[0, 0].astype(np.float64)])


@pytest.mark.parametrize("src, dst", [(np.float32, np.int32), (np.int64, np.float64), (np.float16, np.int16),
                                      (np.bool_, np.uint8), (np.uint16, np.float16)], ids=str)
def test_bitcast_keeps_the_bytes(src, dst):
    x = np.random.default_rng(4).integers(0, 2, (3, 4)).astype(src) if src == np.bool_ else \
        np.arange(-6, 6).reshape(3, 4).astype(src) * src(3 if np.dtype(src).kind == "f" else 1)
    g = _one_op("bitcast", [x], dtype=DType.from_numpy(dst))
    got = leptonc.compile(g, quiet=True).run(x)[0]
    assert got.dtype == dst and np.array_equal(got.view(np.uint8), x.view(np.uint8))


@pytest.mark.parametrize("x_shape, attrs", [
    ((2, 12, 9), {"image_shape": (4, 4), "block_shape": (2, 2)}),
    ((1, 12, 6), {"image_shape": (5, 5), "block_shape": (2, 3), "strides": (2, 2), "pads": (1, 0, 1, 1)}),
    ((1, 8, 9), {"image_shape": (5, 5), "block_shape": (2, 2), "dilations": (2, 2)}),
    ((1, 16, 16), {"image_shape": (3, 3, 4), "block_shape": (2, 2, 2), "strides": (1, 2, 1),
                   "pads": (0, 0, 1, 0, 1, 0)}),
], ids=lambda v: str(v))
def test_col2im_matches_the_reference(x_shape, attrs):
    x = np.random.default_rng(5).standard_normal(x_shape).astype(np.float32)
    _check(_one_op("col2im", [x], **attrs), [x])


def test_col2im_with_a_block_count_that_does_not_fit_is_an_error():
    with pytest.raises(leptonc.LeptoncError, match="col2im: 9 blocks fit the image, the input has 8"):
        _one_op("col2im", [np.zeros((1, 8, 8), np.float32)], image_shape=(4, 4), block_shape=(2, 2))


@pytest.mark.parametrize("x_shape, w_shape, attrs", [
    ((2, 4, 6, 6), (6, 2, 3, 3), {"group": 2, "offset_group": 2}),
    ((1, 2, 5, 6), (3, 2, 2, 2), {"pads": (1, 0, 1, 0), "strides": (1, 2), "dilations": (1, 2)}),
    ((1, 6, 5, 5), (4, 3, 3, 3), {"group": 2, "offset_group": 3, "pads": (1, 1, 1, 1)}),
], ids=lambda v: str(v))
@pytest.mark.parametrize("extras", [(), ("bias", "mask")], ids=["plain", "bias_mask"])
def test_deform_conv_matches_the_reference(x_shape, w_shape, attrs, extras):
    """Offsets up to 3 pixels either way, so that taps fall between pixels and outside the image."""
    rng = np.random.default_rng(6)
    g = Graph("deform")
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    s, p, dl = attrs.get("strides", (1, 1)), attrs.get("pads", (0, 0, 0, 0)), attrs.get("dilations", (1, 1))
    out = [(x_shape[2 + i] + p[i] + p[i + 2] - dl[i] * (w_shape[2 + i] - 1) - 1) // s[i] + 1 for i in range(2)]
    taps = attrs.get("offset_group", 1) * w_shape[2] * w_shape[3]
    operands = [x, w, rng.uniform(-3, 3, (x_shape[0], 2 * taps, *out)).astype(np.float32)]
    if "bias" in extras:
        operands.append(rng.standard_normal(w_shape[0]).astype(np.float32))
    if "mask" in extras:
        operands.append(rng.uniform(0, 1, (x_shape[0], taps, *out)).astype(np.float32))
    args = [g.add_input(f"x{i}", TensorType(DType.f32, a.shape)) for i, a in enumerate(operands)]
    g.set_outputs([g.add("deform_conv", *args, has_bias="bias" in extras, has_mask="mask" in extras, **attrs)])
    _check(g, operands)
