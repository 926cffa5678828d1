"""Every op of the registry through the stablehlo target: each emitted module parses and
verifies with jaxlib's MLIR bindings, and XLA's outputs match the reference interpreter."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax")

from leptonc.codegen.stablehlo import emit_module, lowered_ops  # noqa: E402
from leptonc.codegen.stablehlo.specialize import DATA_DEPENDENT  # noqa: E402
from leptonc.codegen.stablehlo.verify import verify_module  # noqa: E402
from leptonc.ir import DType, Graph, LeptoncError, TensorType, all_ops  # noqa: E402
from leptonc.ir.target_support import LACKS  # noqa: E402
from leptonc.runtime.reference import run_reference  # noqa: E402
from leptonc.codegen.stablehlo import xla_model  # noqa: E402

RNG = np.random.default_rng(0)


def f32(*shape, low=-2.0, high=2.0):
    return RNG.uniform(low, high, shape).astype(np.float32)


def ints(*shape, low=-5, high=6, dtype=np.int64):
    return RNG.integers(low, high, shape).astype(dtype)


def bools(*shape):
    return RNG.random(shape) < 0.5


class Const:
    """An operand that is a graph constant rather than a graph input (sizes known before run time)."""

    def __init__(self, *values, dtype=np.int64):
        self.array = np.array(values, dtype=dtype)


class Scalar(Const):
    def __init__(self, value, dtype=np.int64):
        self.array = np.array(value, dtype=dtype)


def graph_of(op: str, operands, **attrs) -> Graph:
    """One node of `op` over graph inputs (arrays) and constants (Const); all of its results are outputs."""
    g = Graph(op)
    ins = [g.add_constant(a.array, f"c{i}") if isinstance(a, Const) else
           g.add_input(f"x{i}", TensorType(DType.from_numpy(a.dtype), a.shape)) for i, a in enumerate(operands)]
    node = g.add_node(op, ins, attrs)
    g.set_outputs(node.outputs)
    return g


def run_inputs(operands) -> list:
    return [a for a in operands if not isinstance(a, Const)]


def const_array(array) -> Const:
    c = Const()
    c.array = np.asarray(array)
    return c


# one tree over 2 features: x0 <= 1 (a missing x0 goes true), then x1 in {2, 3} or x1 > 0
TREES = {"nodes_splits": (1.0, 0.0, 0.0), "nodes_featureids": (0, 1, 1), "nodes_modes": (0, 6, 3),
         "nodes_truenodeids": (1, 0, 2), "nodes_falsenodeids": (2, 1, 3), "nodes_trueleafs": (0, 1, 1),
         "nodes_falseleafs": (0, 1, 1), "leaf_targetids": (0, 1, 0, 1, 1), "leaf_weights": (1.0, 2.0, 3.0, 4.0, 5.0),
         "tree_roots": (0,), "n_targets": 2, "missing_tracks_true": (1, 0, 0), "membership_values": (2.0, 3.0)}

UNARY_FLOAT = ["exp", "sin", "cos", "tan", "atan", "sinh", "cosh", "tanh", "asinh", "erf", "sigmoid",
               "floor", "ceil", "round", "neg", "abs", "sign", "relu"]
CASES = [(op, [f32(3, 4)], {}) for op in UNARY_FLOAT] + [
    ("log", [f32(3, 4, low=0.1)], {}), ("sqrt", [f32(3, 4, low=0.1)], {}), ("rsqrt", [f32(3, 4, low=0.1)], {}),
    ("reciprocal", [f32(3, 4, low=0.5)], {}), ("asin", [f32(5, low=-0.9, high=0.9)], {}),
    ("acos", [f32(5, low=-0.9, high=0.9)], {}), ("atanh", [f32(5, low=-0.9, high=0.9)], {}),
    ("acosh", [f32(5, low=1.1, high=4)], {}),
    ("neg", [ints(6)], {}), ("abs", [ints(6)], {}), ("sign", [ints(6)], {}), ("sign", [ints(6, low=0, dtype=np.uint8)], {}),
    ("relu", [ints(6, dtype=np.int32)], {}),
    ("round", [np.array([0.5, 1.5, 2.5, -0.5, -1.5, 2.4], np.float32)], {}),
    ("not", [bools(2, 3)], {}), ("bitwise_not", [ints(6, dtype=np.int32)], {}),
    ("isnan", [np.array([0.0, np.nan, np.inf, -1.0], np.float32)], {}),
    ("isinf", [np.array([0.0, np.nan, np.inf, -np.inf], np.float32)], {}),
    ("isinf", [np.array([0.0, np.nan, np.inf, -np.inf], np.float32)], {"detect_negative": False}),
    ("add", [f32(2, 3), f32(3)], {}), ("sub", [f32(2, 1), f32(1, 3)], {}), ("mul", [f32(2, 3), f32(2, 3)], {}),
    ("div", [f32(2, 3), f32(2, 3, low=0.5)], {}), ("div", [ints(8), ints(8, low=1)], {}),
    ("div", [ints(8), -ints(8, low=1)], {}),
    ("max", [f32(4), f32(4)], {}), ("min", [ints(4), ints(4)], {}),
    ("pow", [f32(2, 3, low=0.1), f32(2, 3)], {}), ("pow", [f32(3, low=0.1), ints(3, low=0, high=3)], {}),
    ("pow", [ints(4, low=0, high=4), ints(4, low=0, high=4)], {}),
    ("pow", [ints(4, low=1, high=9), np.full(4, 0.5, np.float32)], {}),
    ("mod", [ints(8), ints(8, low=1)], {}), ("mod", [ints(8), -ints(8, low=1)], {}),
    ("mod", [f32(8), f32(8, low=0.5)], {}), ("mod", [f32(8), f32(8, low=0.5)], {"fmod": True}),
    ("mod", [ints(8), ints(8, low=1)], {"fmod": True}),
    ("equal", [ints(6, low=0, high=3), ints(6, low=0, high=3)], {}), ("less", [f32(2, 3), f32(3)], {}),
    ("less_equal", [ints(6, low=0, high=3), ints(6, low=0, high=3)], {}),
    ("greater", [f32(4), f32(4)], {}), ("greater_equal", [ints(6, low=0, high=3, dtype=np.uint8),
                                                          ints(6, low=0, high=3, dtype=np.uint8)], {}),
    ("and", [bools(5), bools(5)], {}), ("or", [bools(5), bools(1)], {}), ("xor", [bools(5), bools(5)], {}),
    ("bitwise_and", [ints(5, dtype=np.int32), ints(5, dtype=np.int32)], {}),
    ("bitwise_or", [ints(5, low=0, dtype=np.uint8), ints(5, low=0, dtype=np.uint8)], {}),
    ("bitwise_xor", [ints(5), ints(5)], {}),
    ("bit_shift", [ints(5, low=0, high=100, dtype=np.uint8), ints(5, low=0, high=4, dtype=np.uint8)],
     {"direction": "left"}),
    ("bit_shift", [ints(5, low=-100, high=100, dtype=np.int32), ints(5, low=0, high=4, dtype=np.int32)],
     {"direction": "right"}),
    ("bit_shift", [ints(5, low=0, high=200, dtype=np.uint8), ints(5, low=0, high=4, dtype=np.uint8)],
     {"direction": "right"}),
    ("where", [bools(2, 3), f32(2, 3), f32(3)], {}),
    ("cast", [f32(6) * 3], {"dtype": "i32"}), ("cast", [np.array([0.0, np.nan, -1.5], np.float32)], {"dtype": "bool"}),
    ("cast", [ints(6)], {"dtype": "f32"}), ("cast", [bools(4)], {"dtype": "f32"}), ("cast", [f32(6)], {"dtype": "f16"}),
    ("cast", [f32(6)], {"dtype": "bf16"}), ("cast", [ints(6)], {"dtype": "bool"}), ("cast", [ints(6)], {"dtype": "i8"}),
    ("reduce_sum", [f32(3, 4, 5)], {"axes": (0, 2)}), ("reduce_sum", [f32(3, 4)], {"axes": (1,), "keepdims": False}),
    ("reduce_sum", [f32(3, 4)], {"axes": ()}), ("reduce_sum", [ints(3, 4)], {"axes": (-1,)}),
    ("reduce_mean", [f32(3, 4, 5)], {"axes": (1,)}), ("reduce_mean", [ints(3, 4)], {"axes": (1,), "keepdims": False}),
    ("reduce_prod", [f32(3, 4, low=0.5, high=1.5)], {"axes": (0,)}),
    ("reduce_max", [f32(3, 4)], {"axes": (1,)}), ("reduce_max", [ints(3, 4)], {"axes": (0, 1), "keepdims": False}),
    ("reduce_min", [f32(3, 4)], {"axes": (0,)}), ("reduce_max", [bools(3, 4)], {"axes": (1,)}),
    ("argmax", [f32(3, 5)], {"axis": 1}), ("argmin", [f32(3, 5)], {"axis": 0, "keepdims": False}),
    ("argmax", [np.array([[1, 3, 3, 0]], np.float32)], {"axis": 1}),
    ("argmax", [np.array([[1, 3, 3, 0]], np.float32)], {"axis": 1, "select_last_index": True}),
    ("argmin", [ints(4, 6)], {"axis": -1}),
    ("reshape", [f32(2, 3, 4)], {"shape": (6, 4)}), ("transpose", [f32(2, 3, 4)], {"perm": (2, 0, 1)}),
    ("broadcast_to", [f32(3, 1)], {"shape": (2, 3, 4)}),
    ("concat", [f32(2, 3), f32(2, 1), f32(2, 2)], {"axis": 1}), ("concat", [ints(1, 3), ints(2, 3)], {"axis": -2}),
    ("split", [f32(6, 4)], {"axis": 0, "sizes": (1, 2, 3)}),
    ("slice", [f32(6, 7)], {"starts": (1, 0), "ends": (5, 2 ** 62), "axes": (0, 1), "steps": (2, 1)}),
    ("slice", [f32(6, 7)], {"starts": (-1,), "ends": (-2 ** 62,), "axes": (1,), "steps": (-2,)}),
    ("slice", [f32(6, 7)], {"starts": (4,), "ends": (1,), "axes": (0,), "steps": (-1,)}),
    ("slice", [f32(6, 7)], {"starts": (2,), "ends": (-1,), "axes": (-1,), "steps": (1,)}),
    ("pad", [f32(3, 4)], {"pads": (1, 0, 2, 3)}), ("pad", [f32(3, 4)], {"pads": (1, -1, 0, 2), "value": 1.5}),
    ("pad", [f32(3, 4)], {"pads": (2, 1, 1, 3), "mode": "reflect"}),
    ("pad", [f32(2, 3)], {"pads": (0, 5, 0, 4), "mode": "reflect"}),
    ("pad", [f32(3, 4)], {"pads": (2, 1, 1, 3), "mode": "edge"}),
    ("pad", [f32(3, 4)], {"pads": (2, -1, 1, 3), "mode": "wrap"}),
    ("gather", [f32(5, 3), ints(2, 4, low=-5, high=5)], {"axis": 0}),
    ("gather", [f32(2, 5, 3), ints(4, low=-5, high=5, dtype=np.int32)], {"axis": 1}),
    ("gather", [f32(5, 3), ints(low=0, high=5)], {"axis": 0}),
    ("gather_elements", [f32(3, 4), ints(3, 2, low=-4, high=4)], {"axis": 1}),
    ("gather_elements", [f32(3, 4), ints(2, 4, low=0, high=3)], {"axis": 0}),
    ("scatter_elements", [f32(3, 4), np.array([[0, 2], [1, 3], [3, 0]]), f32(3, 2)], {"axis": 1}),
    ("scatter_elements", [f32(3, 4), np.array([[0, 0], [1, 1], [3, 3]]), f32(3, 2)],
     {"axis": 1, "reduction": "add"}),
    ("scatter_elements", [f32(3, 4), np.array([[0, 1, 2, 0]]), f32(1, 4)], {"axis": 0, "reduction": "max"}),
    ("tile", [f32(2, 3)], {"repeats": (2, 3)}), ("tile", [ints(2, 1, 2)], {"repeats": (1, 4, 2)}),
    ("full", [], {"shape": (2, 3), "value": 1.5, "dtype": "f32"}),
    ("full", [], {"shape": (4,), "value": 7, "dtype": "i64"}),
    ("range", [], {"start": 1.0, "limit": 10.0, "delta": 2.5, "dtype": "f32"}),
    ("range", [], {"start": 5.0, "limit": 0.0, "delta": -1.0, "dtype": "i64"}),
    ("shape_of", [f32(2, 3, 4)], {}), ("shape_of", [f32(2, 3, 4)], {"start": 1, "end": -1}),
    ("topk", [f32(3, 6)], {"k": 3}), ("topk", [f32(5, 2)], {"k": 2, "axis": 0, "largest": False}),
    ("topk", [np.array([[1, 2, 2, 1, 3]], np.float32)], {"k": 4}),
    ("cumsum", [f32(3, 5)], {"axis": 1}), ("cumsum", [ints(4, 3)], {"axis": 0, "exclusive": True}),
    ("cumsum", [f32(3, 5)], {"axis": -1, "reverse": True, "exclusive": True}),
    ("matmul", [f32(3, 4), f32(4, 5)], {}), ("matmul", [f32(2, 3, 4), f32(4, 5)], {}),
    ("matmul", [f32(2, 3, 4), f32(2, 4, 5)], {}), ("matmul", [f32(3, 4), f32(2, 4, 5)], {}),
    ("matmul", [f32(2, 1, 3, 4), f32(5, 4, 2)], {}), ("matmul", [f32(4), f32(4, 5)], {}),
    ("matmul", [f32(2, 3, 4), f32(4)], {}), ("matmul", [f32(4), f32(4)], {}),
    ("matmul", [ints(3, 4, dtype=np.int32), ints(4, 2, dtype=np.int32)], {}),
    ("conv", [f32(2, 3, 8, 8), f32(4, 3, 3, 3)], {}),
    ("conv", [f32(2, 3, 8, 8), f32(4, 3, 3, 3), f32(4)], {"strides": (2, 1), "pads": (1, 1, 0, 2)}),
    ("conv", [f32(1, 4, 9, 9), f32(6, 2, 3, 3)], {"group": 2, "dilations": (2, 2), "pads": (2, 2, 2, 2)}),
    ("conv", [f32(2, 4, 10), f32(4, 1, 3), f32(4)], {"group": 4, "pads": (1, 1)}),
    ("conv", [f32(1, 2, 4, 5, 5), f32(3, 2, 2, 3, 3)], {"strides": (1, 2, 2)}),
    ("max_pool", [f32(2, 3, 8, 8)], {"kernel": (2, 2), "strides": (2, 2)}),
    ("max_pool", [f32(1, 2, 7, 7)], {"kernel": (3, 3), "strides": (2, 2), "pads": (1, 1, 1, 1), "ceil_mode": True}),
    ("max_pool", [ints(1, 2, 6, dtype=np.int32)], {"kernel": (2,), "dilations": (2,)}),
    ("avg_pool", [f32(2, 3, 8, 8)], {"kernel": (2, 2), "strides": (2, 2)}),
    ("avg_pool", [f32(1, 2, 7, 7)], {"kernel": (3, 3), "strides": (2, 2), "pads": (1, 1, 1, 1)}),
    ("avg_pool", [f32(1, 2, 7, 7)], {"kernel": (3, 3), "strides": (2, 2), "pads": (1, 1, 1, 1),
                                     "count_include_pad": True, "ceil_mode": True}),
    ("avg_pool", [f32(1, 2, 6, 6)], {"kernel": (2, 2), "strides": (2, 2), "ceil_mode": True}),
    ("conv_transpose", [f32(2, 3, 5, 5), f32(3, 4, 3, 3)], {}),
    ("conv_transpose", [f32(1, 4, 4, 5), f32(4, 3, 3, 2), f32(6)],
     {"strides": (2, 3), "pads": (1, 0, 2, 1), "dilations": (1, 2), "group": 2, "output_padding": (1, 2)}),
    ("conv_transpose", [f32(2, 2, 7), f32(2, 3, 4)], {"strides": (2,), "pads": (1, 1)}),
    ("col2im", [f32(2, 3 * 4, 9)], {"image_shape": (4, 4), "block_shape": (2, 2)}),
    ("col2im", [f32(1, 2 * 6, 6)], {"image_shape": (5, 5), "block_shape": (2, 3), "strides": (2, 2),
                                     "pads": (1, 0, 1, 1), "dilations": (1, 1)}),
    ("lp_pool", [f32(2, 3, 6, 6)], {"kernel": (2, 2), "strides": (2, 2)}),
    ("lp_pool", [f32(1, 2, 7, 7)], {"kernel": (3, 3), "pads": (1, 1, 1, 1), "p": 3.0}),
    ("lrn", [f32(2, 5, 3, 3)], {"size": 3}), ("lrn", [f32(1, 6, 4)], {"size": 4, "alpha": 0.01, "beta": 0.5, "bias": 2.0}),
    ("max_pool_with_indices", [f32(2, 3, 6, 6)], {"kernel": (2, 2), "strides": (2, 2)}),
    ("max_pool_with_indices", [f32(1, 2, 5, 7)], {"kernel": (3, 2), "pads": (1, 0, 1, 1), "storage_order": 1}),
    ("max_pool_with_indices", [np.zeros((1, 1, 4, 4), np.float32)], {"kernel": (2, 2), "strides": (2, 2)}),
    ("max_unpool", [f32(1, 2, 2, 2), np.array([0, 3, 9, 15, 17, 22, 27, 31]).reshape(1, 2, 2, 2)],
     {"output_shape": (1, 2, 4, 4)}),
    ("einsum", [f32(2, 3, 4), f32(2, 4, 5)], {"equation": "bij,bjk->bik"}),
    ("einsum", [f32(3, 4), f32(4, 5)], {"equation": "ij,jk"}), ("einsum", [f32(4, 4)], {"equation": "ii->"}),
    ("einsum", [f32(3, 4, 4)], {"equation": "bii->bi"}), ("einsum", [f32(3, 4)], {"equation": "ij->ji"}),
    ("einsum", [f32(2, 3), f32(3), f32(3, 4)], {"equation": "ij,j,jk->ik"}),
    ("einsum", [f32(2, 1, 3, 4), f32(5, 4, 6)], {"equation": "...ij,...jk->...ik"}),
    ("einsum", [f32(3), f32(4)], {"equation": "i,j->ij"}), ("einsum", [f32(3, 5), f32(5)], {"equation": "ij,j"}),
    ("det", [f32(3, 3)], {}), ("det", [f32(2, 4, 4)], {}), ("det", [np.array([[1, 2], [2, 4]], np.float32)], {}),
    ("det", [np.array([[0, 1, 2], [1, 0, 3], [4, -3, 8]], np.float32)], {}),
    ("quantize", [f32(3, 4), np.array(0.05, np.float32)], {"dtype": "i8"}),
    ("quantize", [f32(3, 4), f32(4, low=0.01, high=0.1), ints(4, low=100, high=150, dtype=np.uint8)],
     {"dtype": "u8", "axis": 1}),
    ("quantize", [f32(4, 6), f32(4, 3, low=0.1, high=0.5)], {"dtype": "i4", "axis": 1, "group": 2}),
    ("dequantize", [ints(3, 4, low=-128, high=128, dtype=np.int8), f32(3, low=0.01, high=0.1)], {}),
    ("dequantize", [ints(3, 4, low=0, high=256, dtype=np.uint8), np.array(0.1, np.float32),
                    np.array(128, np.uint8)], {}),
    ("dequantize", [ints(2, 6, low=-128, high=128, dtype=np.int8), f32(2, 2, low=0.1, high=0.5),
                    ints(2, 2, low=-3, high=3, dtype=np.int8)], {"axis": 1, "group": 3}),
    ("matmul_wq", [f32(2, 3, 8), ints(5, 8, low=-128, high=128, dtype=np.int8), f32(5, low=0.01, high=0.1)], {}),
    ("matmul_wq", [f32(3, 8), ints(5, 8, low=0, high=16, dtype=np.uint8), f32(5, 2, low=0.01, high=0.1),
                   ints(5, 2, low=6, high=10, dtype=np.uint8)], {"group": 4}),
    ("matmul_integer", [ints(3, 4, low=0, high=256, dtype=np.uint8), ints(4, 5, low=-128, high=128, dtype=np.int8)], {}),
    ("matmul_integer", [ints(2, 3, 4, low=0, high=256, dtype=np.uint8), ints(4, 5, low=0, high=256, dtype=np.uint8),
                        ints(3, low=0, high=256, dtype=np.uint8), np.array(7, np.uint8)], {}),
    ("matmul_w8a8", [f32(2, 3, 8), ints(5, 8, low=-127, high=128, dtype=np.int8), f32(5, low=0.01, high=0.1)], {}),
    ("matmul_w8a8", [np.zeros((2, 8), np.float32), ints(5, 8, low=-127, high=128, dtype=np.int8),
                     f32(5, low=0.01, high=0.1)], {}),
    ("bitcast", [f32(2, 3)], {"dtype": "i32"}), ("bitcast", [ints(4, dtype=np.int32)], {"dtype": "f32"}),
    ("bitcast", [ints(4, low=0, high=3, dtype=np.uint8)], {"dtype": "i8"}),
    ("dropout", [f32(2, 3), Scalar(0.5, np.float32), Scalar(False, np.bool_)], {}),
    ("tensor_scatter", [f32(2, 6, 3), f32(2, 2, 3), np.array([1, 4])], {}),
    ("tensor_scatter", [f32(2, 5, 3), f32(2, 3, 3), np.array([3, 0])], {"axis": 1, "mode": "circular"}),
    ("cumulative_dynamic", [f32(3, 4), Scalar(1)], {"kind": "sum"}),
    ("cumulative_dynamic", [f32(3, 4, low=0.5, high=1.5), Scalar(-2)], {"kind": "prod", "exclusive": True,
                                                                       "reverse": True}),
    ("col2im_dynamic", [f32(2, 3 * 4, 9), Const(4, 4), Const(2, 2)], {}),
    ("resize", [f32(1, 2, 4, 5)], {"shape": (1, 2, 8, 10), "scales": (1, 1, 2, 2)}),
    ("resize", [f32(1, 2, 4, 5)], {"shape": (1, 2, 7, 3), "scales": (0, 0, 0, 0), "mode": "linear"}),
    ("resize", [f32(2, 6, 6)], {"shape": (2, 9, 4), "scales": (1, 1.5, 0.6667), "mode": "cubic",
                                "coordinate_transformation_mode": "align_corners"}),
    ("resize", [f32(1, 1, 5, 5)], {"shape": (1, 1, 3, 3), "scales": (0, 0, 0, 0), "mode": "linear",
                                   "coordinate_transformation_mode": "tf_crop_and_resize",
                                   "roi": (0, 0, -0.2, 0.1, 1, 1, 0.8, 1.3), "extrapolation_value": 7.0}),
    ("resize", [ints(1, 1, 4, 4, low=0, high=255, dtype=np.uint8)], {"shape": (1, 1, 6, 6), "scales": (0, 0, 0, 0),
                                                                     "mode": "linear", "antialias": True}),
    ("grid_sample", [f32(2, 3, 5, 6), f32(2, 4, 3, 2, low=-1.2, high=1.2)], {}),
    ("grid_sample", [f32(1, 2, 5, 6), f32(1, 4, 3, 2, low=-1.2, high=1.2)], {"mode": "nearest", "padding_mode": "border"}),
    ("grid_sample", [f32(1, 2, 5, 6), f32(1, 4, 3, 2, low=-1.5, high=1.5)],
     {"mode": "cubic", "padding_mode": "reflection", "align_corners": True}),
    ("grid_sample", [f32(1, 2, 5, 6), f32(1, 4, 3, 2, low=-1.5, high=1.5)], {"mode": "linear", "padding_mode": "reflection"}),
    ("grid_sample", [f32(1, 2, 5, 6), f32(1, 4, 3, 2, low=-1.5, high=1.5)], {"mode": "cubic", "padding_mode": "border"}),
    ("grid_sample", [f32(1, 2, 3, 4, 5), f32(1, 2, 3, 2, 3, low=-1, high=1)], {}),
    ("tfidf_vectorizer", [np.array([[1, 1, 3, 3, 3, 7], [8, 6, 7, 5, 6, 8]], np.int32)],
     {"min_gram_length": 2, "max_gram_length": 2, "max_skip_count": 0, "mode": "TF", "ngram_counts": (0, 4),
      "ngram_indexes": (0, 1, 2, 3, 4, 5, 6), "pool": (2, 3, 5, 4, 5, 6, 7, 8, 6, 7)}),
    ("tfidf_vectorizer", [np.array([1, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8])],
     {"min_gram_length": 1, "max_gram_length": 2, "max_skip_count": 3, "mode": "TFIDF", "ngram_counts": (0, 4),
      "ngram_indexes": (0, 1, 2, 3, 4, 5, 6), "pool": (2, 3, 5, 4, 5, 6, 7, 8, 6, 7),
      "weights": (2.0, 1.0, 3.0, 1.0, 0.5, 1.0, 4.0)}),
    ("tfidf_vectorizer", [np.array([[1, 1, 3, 3, 3, 7], [8, 6, 7, 5, 6, 8]])],
     {"min_gram_length": 1, "max_gram_length": 2, "max_skip_count": 1, "mode": "IDF", "ngram_counts": (0, 4),
      "ngram_indexes": (0, 1, 2, 3, 4, 5, 6), "pool": (2, 3, 5, 4, 5, 6, 7, 8, 6, 7)}),
    ("resize_dynamic", [f32(1, 2, 4, 5), Const(dtype=np.float32), Const(1, 1, 2, 1.5, dtype=np.float32),
                        Const()], {"mode": "linear"}),
    ("resize_dynamic", [f32(1, 2, 4, 5), Const(dtype=np.float32), Const(dtype=np.float32), Const(6, 6)],
     {"axes": (2, 3), "keep_aspect_ratio_policy": "not_larger"}),
    ("roi_align", [f32(2, 3, 8, 9), np.array([[0, 0, 4, 4], [1.5, 2, 7.5, 6], [-2, -1, 3, 12]], np.float32),
                   np.array([0, 1, 1])], {"output_height": 2, "output_width": 3, "sampling_ratio": 2}),
    ("roi_align", [f32(1, 2, 6, 6), np.array([[1, 1, 10, 8], [0, 0, 2, 2]], np.float32), np.array([0, 0])],
     {"mode": "max", "output_height": 3, "output_width": 2, "sampling_ratio": 3, "spatial_scale": 0.5,
      "coordinate_transformation_mode": "output_half_pixel"}),
    ("affine_grid", [f32(2, 2, 3)], {"size": (2, 3, 4, 5)}),
    ("affine_grid", [f32(1, 3, 4)], {"size": (1, 1, 2, 3, 4), "align_corners": True}),
    ("affine_grid_dynamic", [f32(2, 2, 3), Const(2, 3, 4, 5)], {}),
    ("dft", [f32(2, 8, 1)], {"axis": 1}), ("dft", [f32(3, 6, 2)], {"axis": 0, "inverse": True}),
    ("dft", [f32(2, 8, 1)], {"axis": 1, "onesided": True, "length": 6}),
    ("dft", [f32(2, 5, 2)], {"axis": 1, "onesided": True, "inverse": True}),
    ("dft_dynamic", [f32(4, 2, 2), Scalar(5), Scalar(0)], {}),
    ("stft", [f32(2, 20, 1), f32(8, low=0, high=1)], {"step": 4}),
    ("stft", [f32(1, 16, 2)], {"step": 3, "length": 6, "onesided": False}),
    ("stft_dynamic", [f32(2, 20, 1), Scalar(5), f32(6, low=0, high=1), Scalar(0)], {}),
    ("deform_conv", [f32(2, 4, 6, 6), f32(6, 2, 3, 3), f32(2, 2 * 9 * 2, 4, 4)],
     {"group": 2, "offset_group": 2}),
    ("deform_conv", [f32(1, 2, 5, 6), f32(3, 2, 2, 2), f32(1, 8, 5, 4, low=-3, high=3), f32(3),
                     f32(1, 4, 5, 4, low=0, high=1)],
     {"pads": (1, 0, 1, 0), "strides": (1, 2), "dilations": (1, 2), "has_bias": True, "has_mask": True}),
    ("mel_weight_matrix", [Scalar(8), Scalar(64), Scalar(16000), Scalar(0.0, np.float32),
                           Scalar(8000.0, np.float32)], {"dtype": "f32"}),
    ("tree_ensemble", [np.array([[0.5, 2.0], [1.5, -1.0], [np.nan, 0.0], [3.0, 3.0]], np.float32)], TREES),
    ("tree_ensemble", [f32(5, 2)], {**TREES, "aggregate_function": 3, "post_transform": 1}),
    ("tree_ensemble", [f32(5, 2)], {**TREES, "aggregate_function": 0, "post_transform": 2}),
    ("squeeze", [f32(2, 1, 3, 1)], {"axes": (1, -1)}), ("unsqueeze", [f32(2, 3)], {"axes": (0, -1)}),
    ("gather_nd", [f32(4, 5, 3), ints(2, 6, 2, low=-4, high=4)], {}),
    ("gather_nd", [f32(2, 4, 5), ints(2, 3, 1, low=0, high=4, dtype=np.int32)], {"batch_dims": 1}),
    ("scatter_nd", [f32(4, 5), np.array([[0, 1], [3, -1]]), f32(2)], {}),
    ("scatter_nd", [f32(4, 5), np.array([[1], [1]]), f32(2, 5)], {"reduction": "add"}),
    ("reverse_sequence", [f32(5, 3, 2), np.array([5, 2, 0])], {}),
    ("reverse_sequence", [f32(3, 4), np.array([1, 4, 2], np.int32)], {"batch_axis": 0, "time_axis": 1}),
    ("trilu", [f32(2, 4, 5)], {}), ("trilu", [f32(4, 5)], {"upper": False, "diagonal": -1}),
    ("trilu", [f32(4, 5), np.array([2])], {}),
    ("cumprod", [f32(3, 5, low=0.5, high=1.5)], {"axis": 1}),
    ("cumprod", [ints(4, 3, low=1, high=3)], {"axis": 0, "exclusive": True, "reverse": True}),
    ("reshape_dynamic", [f32(2, 3, 4), Const(0, -1)], {}),
    ("squeeze_dynamic", [f32(2, 1, 4), Const(1)], {}), ("unsqueeze_dynamic", [f32(2, 4), Const(0, 3)], {}),
    ("expand_dynamic", [f32(3, 1), Const(2, 1, 4)], {}), ("tile_dynamic", [f32(2, 3), Const(2, 1)], {}),
    ("slice_dynamic", [f32(6, 7), Const(1, -1), Const(5, -8), Const(0, 1), Const(2, -2)], {}),
    ("pad_dynamic", [f32(3, 4), Const(1, 2, 0, -1), np.array([0.5], np.float32), Const(0, 1)], {}),
    ("pad_dynamic", [f32(3, 4), Const(1, 2), np.array(0.0, np.float32), Const(1)], {"mode": "reflect"}),
    ("full_dynamic", [Const(2, 3)], {"value": 2.5, "dtype": "f32"}),
    ("range_dynamic", [Scalar(1.0, np.float32), Scalar(4.0, np.float32), Scalar(0.75, np.float32)], {}),
    ("range_dynamic", [Scalar(10), Scalar(1), Scalar(-3)], {}),
    ("topk_dynamic", [f32(3, 6), Const(2)], {}), ("split_dynamic", [f32(6, 2), Const(2, 4)], {"axis": 0, "num": 2}),
    ("reduce_dynamic", [f32(3, 4, 5), Const(0, 2)], {"kind": "max", "keepdims": False}),
    ("reduce_dynamic", [f32(3, 4), Const(*())], {"kind": "mean"}),
    # W [6, 8] in 2x4 blocks: block row 0 holds block column 1, row 1 none, row 2 both
    ("matmul_bsr", [f32(5, 8), f32(3, 2, 4), Const(1, 0, 1, dtype=np.uint16), Const(0, 1, 1, 3, dtype=np.int32)], {}),
    ("matmul_csr", [f32(2, 5), ints(5, dtype=np.int8), Const(0, 3, 1, 2, 4, dtype=np.int32),
                    Const(0, 2, 2, 3, 5, dtype=np.int32), f32(4)], {}),
    # 2:4 over 8 inputs: each row keeps inputs 0, 2 of its first group and 1, 3 of its second
    ("matmul_nm", [f32(3, 8), f32(3, 4), const_array(np.full((3, 1), 0b11011000, np.uint8))], {"n": 2, "m": 4}),
]


def check_close(got: list, want: list) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, g.shape, w.dtype, w.shape)
        if w.dtype.kind in "biu":
            np.testing.assert_array_equal(g, w)
        else:
            g64, w64 = g.astype(np.float64), w.astype(np.float64)
            assert np.array_equal(np.isnan(g64), np.isnan(w64))
            finite = ~np.isnan(w64)
            scale = max(1.0, float(np.abs(w64[finite]).max(initial=0.0)))
            assert np.abs(g64[finite] - w64[finite]).max(initial=0.0) <= 1e-4 * scale


@pytest.mark.parametrize("op, operands, attrs", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_op_matches_reference(op, operands, attrs):
    g = graph_of(op, operands, **attrs)
    verify_module(emit_module(g))
    inputs = run_inputs(operands)
    check_close(xla_model(g)(*inputs), run_reference(g, *inputs))


def test_every_registered_op_has_a_lowering():
    """A new op of the registry needs a lowering, or a place in ir/target_support.py's LACKS with its reason."""
    missing = sorted(set(all_ops()) - lowered_ops() - set(LACKS["stablehlo"]))
    assert not missing, f"ops without a StableHLO lowering: {missing}"


DATA_DEPENDENT_CASES = {
    "nonzero": [f32(2, 3)], "unique": [f32(2, 3)],
    "non_max_suppression": [f32(1, 4, 4), f32(1, 1, 4), np.array(2), np.array(0.5, np.float32),
                            np.array(0.0, np.float32)],
}


def test_every_data_dependent_op_has_a_case():
    assert set(DATA_DEPENDENT) == set(DATA_DEPENDENT_CASES)


@pytest.mark.parametrize("op", sorted(DATA_DEPENDENT_CASES))
def test_data_dependent_sizes_are_a_clear_error(op):
    g = graph_of(op, DATA_DEPENDENT_CASES[op])
    with pytest.raises(LeptoncError, match=f"{op}.*static shapes"):
        emit_module(g)


def test_adaptive_roi_align_is_a_clear_error():
    g = graph_of("roi_align", [f32(1, 2, 6, 6), np.array([[1, 1, 4, 4]], np.float32), np.array([0])])
    with pytest.raises(LeptoncError, match="sampling_ratio 0"):
        emit_module(g)


def test_training_dropout_is_a_clear_error():
    g = graph_of("dropout", [f32(2, 3), Scalar(0.5, np.float32), np.array(True)])
    with pytest.raises(LeptoncError, match="dropout.*training mode"):
        emit_module(g)


def test_sizes_from_a_run_time_operand_are_a_clear_error():
    g = graph_of("reshape_dynamic", [f32(2, 3), np.array([3, 2])])
    with pytest.raises(LeptoncError, match="reshape_dynamic' depend on operand 1 .*only known at run time"):
        emit_module(g)


def test_shape_arithmetic_is_known_per_size():
    """shape_of -> slice -> concat -> reshape_dynamic: the target is computed at emission, for each size."""
    g = Graph("flatten")
    x = g.add_input("x", TensorType(DType.f32, ("B", 3, 4)))
    batch = g.add("slice", g.add("shape_of", x), starts=(0,), ends=(1,), axes=(0,), steps=(1,))
    target = g.add("concat", batch, g.add_constant(np.array([-1]), "minus_one"), axis=0)
    g.set_outputs([g.add("reshape_dynamic", x, target)])
    model = xla_model(g)
    for n in (2, 5):
        arr = f32(n, 3, 4)
        check_close(model(arr), run_reference(g, arr))
        assert "tensor<%dx12xf32>" % n in model.module_for({"B": n}).text


def test_every_lowering_has_a_case():
    untested = sorted(lowered_ops() - {c[0] for c in CASES} - {"const"})
    assert not untested, f"lowerings without a test case: {untested}"
