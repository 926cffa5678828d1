"""Run-time inputs that break a shape constraint are refused before any kernel runs, naming the input
and the dim."""
from __future__ import annotations

import numpy as np
import pytest

from leptonc.ir import DType, ShapeError, TensorType, parse_ir
from leptonc.ir.dims import signed_dims
from leptonc.runtime.signature import bind_inputs


def _f32(*shape):
    return np.zeros(shape, np.float32)


def test_inputs_sharing_a_symbol_must_agree_on_its_size():
    types = [TensorType(DType.f32, ("B", 4)), TensorType(DType.f32, ("B",))]
    _, bindings = bind_inputs(["x", "y"], types, [_f32(2, 4), _f32(2)])
    assert bindings == {"B": 2}
    with pytest.raises(ShapeError, match=r"input 'y' expects f32\[B\], got shape \[3\]: dim 0 must be 2 "
                                         r"\(B = 2\), as input 'x' dim 0 binds B"):
        bind_inputs(["x", "y"], types, [_f32(2, 4), _f32(3)])


def test_a_symbol_inside_an_expression_is_solved_and_checked():
    types = [TensorType(DType.f32, ("2*S + 1",)), TensorType(DType.f32, ("S", "S"))]
    assert bind_inputs(["x", "y"], types, [_f32(7), _f32(3, 3)])[1] == {"S": 3}
    with pytest.raises(ShapeError, match=r"input 'y' .* dim 1 must be 3 \(S = 3\)"):
        bind_inputs(["x", "y"], types, [_f32(7), _f32(3, 4)])
    with pytest.raises(ShapeError, match=r"input 'x' dim 0 is 2\*S \+ 1, whose symbol 'S' no input binds"):
        bind_inputs(["x"], types[:1], [_f32(6)])


def test_sizes_that_make_a_dim_of_the_graph_negative_are_refused():
    g = parse_ir("graph @g(%x: f32[1, 1, H, W], %w: f32[1, 1, 3, 3]) -> (f32[1, 1, H - 2, W - 2]) {\n"
                 "  %y = conv(%x, %w) : f32[1, 1, H - 2, W - 2]\n  return %y\n}")
    signed = signed_dims(v for n in g.nodes for v in n.outputs)
    assert signed == [("y", 2, "H - 2"), ("y", 3, "W - 2")]
    names, types = [v.name for v in g.inputs], [v.type for v in g.inputs]
    assert bind_inputs(names, types, [_f32(1, 1, 3, 5), _f32(1, 1, 3, 3)], signed)[1] == {"H": 3, "W": 5}
    with pytest.raises(ShapeError, match=r"inputs with H = 1 make dim 2 of %y \(H - 2\) negative \(-1\)"):
        bind_inputs(names, types, [_f32(1, 1, 1, 5), _f32(1, 1, 3, 3)], signed)
