"""Grouped convolutions on the cpu target (a GEMM per group, A packed from the input one tap's channels at a
time, groups split over the threads), against the reference interpreter on odd shapes: group widths that are
not a multiple of the vector width, strides, uneven padding, dilation, windows wider than the input, 1-d, few
and many pixels, fused epilogues."""
from __future__ import annotations

import numpy as np
import pytest

from tests.codegen.cpu_check import compile_and_check
from tests.codegen.test_cpu_conv import conv_graph, relu6, residual_relu

GROUPED = [
    ((1, 12, 9, 11), (12, 3, 3, 3), {"group": 4, "pads": (1, 1, 1, 1)}),                            # width 3
    ((2, 20, 10, 7), (12, 5, 3, 3), {"group": 4, "strides": (2, 2), "pads": (0, 1, 2, 1)}),          # O < C
    ((1, 18, 8, 8), (27, 6, 3, 3), {"group": 3, "dilations": (2, 2), "pads": (2, 2, 2, 2)}),         # dilated
    ((1, 16, 7, 13), (16, 8, 3, 5), {"group": 2, "strides": (1, 3), "dilations": (1, 2), "pads": (1, 4, 0, 3)}),
    ((1, 8, 3, 3), (8, 4, 5, 5), {"group": 2, "pads": (2, 2, 2, 2)}),                                # window > input
    ((1, 128, 14, 14), (128, 64, 3, 3), {"group": 2, "pads": (1, 1, 1, 1)}),                        # RegNet's width
    ((1, 96, 9, 9), (96, 24, 3, 3), {"group": 4, "strides": (2, 2), "pads": (1, 1, 1, 1)}),
    ((1, 40, 40, 40), (40, 8, 3, 3), {"group": 5, "pads": (1, 1, 1, 1)}),                           # many pixels
    ((2, 12, 33), (12, 4, 5), {"group": 3, "strides": (2,), "dilations": (2,), "pads": (3, 2)}),     # 1-d
]


@pytest.mark.parametrize("x_shape,w_shape,attrs", GROUPED)
@pytest.mark.parametrize("epilogue", [None, relu6, residual_relu], ids=["plain", "relu6", "residual"])
def test_grouped_convolutions(x_shape, w_shape, attrs, epilogue):
    compile_and_check(*conv_graph(x_shape, w_shape, epilogue, **attrs))


def test_grouped_conv_without_bias_and_a_static_batch():
    g, xs = conv_graph((3, 10, 6, 5), (15, 2, 3, 3), bias=False, batch=3, group=5, pads=(1, 0, 1, 2))
    compile_and_check(g, xs)


def test_nan_in_the_input_reaches_only_its_group():
    g, xs = conv_graph((1, 8, 5, 5), (8, 4, 3, 3), group=2, pads=(1, 1, 1, 1))
    xs[0][0, 1, 2, 2] = np.nan
    cm = compile_and_check(g, xs)
    y = cm.run(*xs)[0]
    assert np.isnan(y[0, :4]).any() and not np.isnan(y[0, 4:]).any()
