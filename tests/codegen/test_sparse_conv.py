"""The cpu target's sparse convolution (conv_bsr) against the reference interpreter: odd image sizes, strides,
padding, dilation, groups, 1-d, block shapes down the outputs and along the inputs, empty block rows,
the bias and a fused epilogue, a symbolic batch."""
import numpy as np
import pytest

from leptonc.ir import DType, Graph, TensorType
from leptonc.ir import sparse as S
from tests.codegen.cpu_check import compile_and_check
from tests.ir.test_sparse import sparse_matrix


def conv_bsr_graph(x_shape, w, block, *, kernel, strides=(), pads=(), dilations=(), group=1, bias=True,
                   epilogue=True, batch="B", seed=0):
    """y = relu(conv(x, W) + b) with W [O, C / group * prod(kernel)] in BSR."""
    rng = np.random.default_rng(seed)
    g = Graph("conv_bsr")
    x = g.add_input("x", TensorType(DType.f32, (batch,) + tuple(x_shape[1:])))
    v, c, r = S.bsr_from_dense(w, block)
    operands = [g.add_constant(v, "w.values"), g.add_constant(c, "w.cols"), g.add_constant(r, "w.rows")]
    if bias:
        operands.append(g.add_constant(rng.standard_normal(w.shape[0]).astype(np.float32), "b"))
    y = g.add("conv_bsr", x, *operands, kernel=kernel, strides=strides, pads=pads, dilations=dilations, group=group)
    if epilogue:
        y = g.add("relu", g.add("add", y, g.add_constant(np.float32(0.25), "shift")))
    g.set_outputs([y])
    return g


CASES = [  # x [N, C, H, W], O, kernel, strides, pads, dilations, group, block
    ((2, 16, 8, 8), 32, (3, 3), (), (1, 1, 1, 1), (), 1, (1, 8)),
    ((3, 16, 8, 8), 32, (3, 3), (), (1, 1, 1, 1), (), 1, (8, 1)),
    ((2, 3, 11, 13), 8, (3, 5), (2, 1), (0, 2, 1, 1), (), 1, (1, 1)),
    ((1, 6, 9, 17), 6, (3, 3), (1, 3), (2, 1, 0, 3), (2, 1), 3, (2, 3)),
    ((2, 8, 7, 10), 8, (1, 1), (), (), (), 8, (1, 1)),          # depthwise 1x1
    ((2, 4, 12, 21), 12, (2, 3), (2, 2), (1, 1, 1, 1), (), 2, (3, 2)),
    ((2, 5, 6, 5), 16, (3, 3), (), (1, 1, 1, 1), (), 1, (16, 1)),
    ((2, 4, 30), 8, (5,), (2,), (2, 1), (1,), 2, (4, 2)),        # 1-d
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-o{c[1]}-k{c[2]}-s{c[3]}-g{c[6]}-b{c[7]}")
def test_conv_bsr_matches_reference(case):
    x_shape, o, kernel, strides, pads, dilations, group, block = case
    rng = np.random.default_rng(1)
    k = x_shape[1] // group * int(np.prod(kernel))
    w = sparse_matrix(rng, o, k, block, density=0.3, empty_rows=1)
    g = conv_bsr_graph(x_shape, w, block, kernel=kernel, strides=strides, pads=pads, dilations=dilations,
                       group=group)
    compile_and_check(g, [rng.standard_normal(x_shape).astype(np.float32)])


@pytest.mark.parametrize("density", [0.0, 1.0])
def test_conv_bsr_empty_and_dense_weights(density):
    rng = np.random.default_rng(2)
    w = sparse_matrix(rng, 8, 4 * 9, (1, 4), density=density)
    g = conv_bsr_graph((2, 4, 9, 9), w, (1, 4), kernel=(3, 3), pads=(1, 1, 1, 1), bias=False, epilogue=False)
    compile_and_check(g, [rng.standard_normal((2, 4, 9, 9)).astype(np.float32)])


def test_conv_bsr_rejects_a_block_row_across_groups():
    w = np.ones((4, 2 * 9), np.float32)
    with pytest.raises(Exception, match="do not divide into block rows of 4"):
        conv_bsr_graph((1, 4, 5, 5), w, (4, 1), kernel=(3, 3), group=2)
