"""Random graphs for differential tests: hypothesis strategies for DAGs of registered ops with valid shapes.

    from hypothesis import given
    from tests.random_graphs import graphs, random_inputs

    @given(graphs())
    def test_something(g):
        inputs = random_inputs(g, seed=0)
        want = run_reference(g, *inputs)
        ...

A graph starts from one to three inputs (f32, rank 1 to 4, dims 1..4, the
first dim sometimes the symbol "B") and grows by builders, each adding a few
nodes over values already there: elementwise math with other values or with
constants (identity constants 0 and 1 among them), reductions, reshapes,
transposes, slices, concat, split, gather, pad, tile, broadcast_to, casts, dropout,
matmul and conv (optionally followed by a per-channel affine, as frontends
decompose batchnorm), shape arithmetic (shape_of, gather, arithmetic, full),
subexpressions over constants only, and duplicates of existing nodes. Some
values stay unused. The outputs are a few values, float or integer.

`builders` names the families, so a test can ask for a subset:
graphs(only=("matmul", "transpose")).
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from leptonc.ir import DType, Graph, TensorType
from leptonc.ir import dims as D
from leptonc.ir.errors import LeptoncError
from leptonc.ir.ops.shape import BIG

SYMBOL_SIZE = 3  # what random_inputs binds each symbol to

UNARY = ("exp", "log", "sqrt", "tanh", "sigmoid", "erf", "neg", "abs", "relu", "sin", "floor", "reciprocal")
BINARY = ("add", "sub", "mul", "div", "max", "min", "pow")
REDUCE = ("reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod")


def random_inputs(graph: Graph, seed: int = 0, symbol_size: int = SYMBOL_SIZE) -> list[np.ndarray]:
    """Arrays for the graph's inputs: normal floats, small non-negative ints, random bools;
    every symbol bound to symbol_size."""
    rng = np.random.default_rng(seed)
    bindings = {s: symbol_size for v in graph.inputs for d in v.shape for s in D.symbols(d)}
    out = []
    for v in graph.inputs:
        shape = v.type.concrete(bindings)
        if v.dtype.is_float:
            out.append(rng.standard_normal(shape).astype(v.dtype.numpy))
        elif v.dtype is DType.bool:
            out.append(rng.random(shape) < 0.5)
        else:
            out.append(rng.integers(0, 5, shape).astype(v.dtype.numpy))
    return out


class _Builder:
    """The graph being drawn, and the pools of values builders pick from."""

    def __init__(self, draw, graph: Graph):
        self.draw = draw
        self.g = graph
        self.floats: list = list(graph.inputs)
        self.ints: list = []

    def pick(self, pool=None, where=lambda v: True):
        pool = self.floats if pool is None else pool
        options = [v for v in pool if where(v)]
        if not options:
            return None
        # Favour recent values, so graphs grow deep rather than wide.
        i = self.draw(st.integers(0, len(options) - 1))
        j = self.draw(st.integers(0, len(options) - 1))
        return options[max(i, j)]

    def const(self, shape, kind: str = "normal", dtype=np.float32):
        if kind == "zeros":
            arr = np.zeros(shape, dtype)
        elif kind == "ones":
            arr = np.ones(shape, dtype)
        else:
            seed = self.draw(st.integers(0, 2 ** 16))
            arr = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
        return self.g.add_constant(arr, "c")

    def static_tail(self, v) -> tuple:
        """The trailing static dims of v's shape (a constant of that shape broadcasts against v)."""
        tail = []
        for d in reversed(v.shape):
            if not isinstance(d, int):
                break
            tail.insert(0, d)
        return tuple(tail)


def _unary(b: _Builder):
    x = b.pick()
    return [b.g.add(b.draw(st.sampled_from(UNARY)), x)]


def _binary(b: _Builder):
    x = b.pick()
    op = b.draw(st.sampled_from(BINARY))
    how = b.draw(st.sampled_from(("value", "const", "scalar", "identity", "identity_left")))
    if how == "value":
        y = b.pick(where=lambda v: v.shape == x.shape or v.shape == x.shape[1:] or v.shape == ())
        if y is None:
            return None
    elif how in ("identity", "identity_left"):
        tail = b.static_tail(x)
        shape = tail[len(tail) - b.draw(st.integers(0, len(tail))):]
        y = b.const(shape, "ones" if op in ("mul", "div", "pow") else "zeros")
        if how == "identity_left":
            x, y = y, x
    else:
        tail = b.static_tail(x)
        y = b.const(() if how == "scalar" else tail[len(tail) - b.draw(st.integers(0, len(tail))):])
    return [b.g.add(op, x, y)]


def _where(b: _Builder):
    x = b.pick()
    cond = b.g.add("less", x, b.const(()))
    return [b.g.add("where", cond, x, b.g.add("neg", x))]


def _reduce(b: _Builder):
    x = b.pick(where=lambda v: v.type.rank >= 1)
    if x is None:
        return None
    axes = b.draw(st.lists(st.integers(0, x.type.rank - 1), unique=True, max_size=x.type.rank))
    return [b.g.add(b.draw(st.sampled_from(REDUCE)), x, axes=axes, keepdims=b.draw(st.booleans()))]


def _transpose(b: _Builder):
    x = b.pick(where=lambda v: v.type.rank >= 2)
    if x is None:
        return None
    perm = b.draw(st.permutations(range(x.type.rank)))
    y = b.g.add("transpose", x, perm=perm)
    if b.draw(st.booleans()):  # a transpose of a transpose
        y = b.g.add("transpose", y, perm=b.draw(st.permutations(range(x.type.rank))))
    return [y]


def _reshape(b: _Builder):
    x = b.pick(where=lambda v: v.type.rank >= 1)
    if x is None:
        return None
    shape = list(x.shape)
    how = b.draw(st.sampled_from(("merge", "split", "unsqueeze", "same")))
    if how == "merge" and len(shape) >= 2:
        i = b.draw(st.integers(0, len(shape) - 2))
        shape[i:i + 2] = [D.mul(shape[i], shape[i + 1])]
    elif how == "split":
        i = b.draw(st.integers(0, len(shape) - 1))
        if shape[i] in (4, 6):
            shape[i:i + 1] = [2, shape[i] // 2]
    elif how == "unsqueeze":
        shape.insert(b.draw(st.integers(0, len(shape))), 1)
    y = b.g.add("reshape", x, shape=shape)
    if b.draw(st.booleans()):  # a reshape of a reshape: back to the original shape
        y = b.g.add("reshape", y, shape=list(x.shape))
    return [y]


def _slice(b: _Builder):
    x = b.pick(where=lambda v: any(isinstance(d, int) and d > 1 for d in v.shape))
    if x is None:
        return None
    axes = [i for i, d in enumerate(x.shape) if isinstance(d, int) and d > 1]
    axis = b.draw(st.sampled_from(axes))
    n = x.shape[axis]
    if b.draw(st.booleans()):
        start, end, step = 0, BIG, 1  # keeps everything
    else:
        start = b.draw(st.integers(0, n - 1))
        end = b.draw(st.integers(start + 1, n))
        step = b.draw(st.integers(1, 2))
    return [b.g.add("slice", x, starts=[start], ends=[end], axes=[axis], steps=[step])]


def _concat_split(b: _Builder):
    x = b.pick(where=lambda v: v.type.rank >= 1)
    if x is None:
        return None
    y = b.pick(where=lambda v: v.shape == x.shape) if b.draw(st.booleans()) else x
    static = [i for i, d in enumerate(x.shape) if isinstance(d, int)]
    if not static:
        return [b.g.add("concat", x, y, axis=0)]
    axis = b.draw(st.sampled_from(static))
    c = b.g.add("concat", x, y, axis=axis)
    n = c.shape[axis]
    first = b.draw(st.integers(0, n))
    parts = b.g.add_node("split", [c], {"axis": axis, "sizes": (first, n - first)}).outputs
    return [c, *parts]


def _gather(b: _Builder):
    x = b.pick(where=lambda v: any(isinstance(d, int) and d > 0 for d in v.shape))
    if x is None:
        return None
    axis = b.draw(st.sampled_from([i for i, d in enumerate(x.shape) if isinstance(d, int) and d > 0]))
    n = x.shape[axis]
    idx = b.draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=3))
    return [b.g.add("gather", x, b.g.add_constant(np.array(idx, np.int64), "idx"), axis=axis)]


def _layout_no_ops(b: _Builder):
    """Ops that leave their operand as it is: canonicalize's business."""
    x = b.pick()
    how = b.draw(st.sampled_from(("cast", "cast_roundtrip", "pad", "tile", "broadcast_to", "reduce_none", "concat1",
                                  "dropout")))
    if how == "dropout":  # inference dropout (training false), or training with a fixed seed
        training = b.draw(st.booleans())
        ratio = b.g.add_constant(np.array(0.25, np.float32), "ratio")
        flag = b.g.add_constant(np.array(training), "training")
        return [b.g.add_node("dropout", [x, ratio, flag], {"seed": 7}).outputs[0]]
    if how == "cast":
        return [b.g.add("cast", x, dtype=DType.f32)]
    if how == "cast_roundtrip":
        return [b.g.add("cast", b.g.add("cast", x, dtype=DType.f64), dtype=DType.f32)]
    if how == "pad":
        return [b.g.add("pad", x, pads=[0] * (2 * x.type.rank))]
    if how == "tile":
        return [b.g.add("tile", x, repeats=[1] * x.type.rank)]
    if how == "broadcast_to":
        y = b.g.add("broadcast_to", x, shape=list(x.shape))
        return [b.g.add("broadcast_to", y, shape=[2, *x.shape])]
    if how == "reduce_none":
        return [b.g.add("reduce_sum", x, axes=[])]
    return [b.g.add("concat", x, axis=0)] if x.type.rank else None


def _matmul(b: _Builder):
    x = b.pick(where=lambda v: v.type.rank >= 2 and isinstance(v.shape[-1], int))
    if x is None:
        return None
    k, n = x.shape[-1], b.draw(st.integers(1, 4))
    how = b.draw(st.sampled_from(("weight", "weight_affine", "transposed", "self")))
    if how == "self":  # x @ x^T
        perm = list(range(x.type.rank - 2)) + [x.type.rank - 1, x.type.rank - 2]
        return [b.g.add("matmul", x, b.g.add("transpose", x, perm=perm))]
    if how == "transposed":  # (x^T)^T-style patterns around matmul: transpose(matmul(transpose(w), x^T))
        perm = list(range(x.type.rank - 2)) + [x.type.rank - 1, x.type.rank - 2]
        wt = b.g.add("transpose", b.const((n, k)), perm=[1, 0])
        y = b.g.add("matmul", x, wt)
        return [b.g.add("transpose", y, perm=perm)]
    y = b.g.add("matmul", x, b.const((k, n)))
    if how == "weight_affine":  # a per-column scale and shift, as a decomposed batchnorm after a linear layer
        y = b.g.add("mul", y, b.const((n,)))
        y = b.g.add("add", y, b.const((n,)))
    return [y]


def _conv(b: _Builder):
    x = b.pick(where=lambda v: v.type.rank == 4 and all(isinstance(d, int) and d > 0 for d in v.shape[1:]))
    if x is None:
        return None
    if b.draw(st.booleans()):  # explicit zero padding of the spatial dims, as some exporters write it
        x = b.g.add("pad", x, pads=[0, 0, 0, b.draw(st.integers(0, 1)), 0, 0, b.draw(st.integers(0, 1)), 1])
    c, h, w = x.shape[1:]
    o = b.draw(st.integers(1, 4))
    k = b.draw(st.integers(1, min(h, w, 3)))
    operands = [x, b.const((o, c, k, k))]
    if b.draw(st.booleans()):
        operands.append(b.const((o,)))
    y = b.g.add_node("conv", operands, {"pads": (k // 2,) * 4}).output
    if b.draw(st.booleans()):  # batchnorm as frontends decompose it: (y - mean) / sqrt(var + eps) * gamma + beta
        var = b.g.add("abs", b.const((o, 1, 1)))
        denom = b.g.add("sqrt", b.g.add("add", var, b.g.add_constant(np.array(1e-5, np.float32), "eps")))
        y = b.g.add("sub", y, b.const((o, 1, 1)))
        y = b.g.add("div", y, denom)
        y = b.g.add("mul", y, b.const((o, 1, 1)))
        y = b.g.add("add", y, b.const((o, 1, 1)))
    return [y]


def _shape_arithmetic(b: _Builder):
    """shape_of and the integer arithmetic exports do on it; sometimes a full of the shape."""
    x = b.pick(where=lambda v: v.type.rank >= 1)
    if x is None:
        return None
    s = b.g.add("shape_of", x)
    rank = x.type.rank
    idx = b.draw(st.lists(st.integers(0, rank - 1), min_size=1, max_size=rank))
    picked = b.g.add("gather", s, b.g.add_constant(np.array(idx, np.int64), "idx"))
    how = b.draw(st.sampled_from(("mul", "add", "concat", "slice")))
    if how in ("mul", "add"):
        out = b.g.add(how, picked, b.g.add_constant(np.array(2, np.int64), "k"))
    elif how == "concat":
        out = b.g.add("concat", picked, b.g.add_constant(np.array([-1], np.int64), "minus_one"), axis=0)
    else:
        out = b.g.add("slice", s, starts=[0], ends=[rank - 1 if rank > 1 else 1], axes=[0], steps=[1])
    b.ints.append(out)
    if x.type.is_static:
        b.floats.append(b.g.add("full", shape=list(x.shape), value=0.5, dtype=DType.f32))
    return []


def _constant_subexpression(b: _Builder):
    """Ops over constants only (fold's business), then combined with a value."""
    x = b.pick()
    tail = b.static_tail(x)
    c = b.const(tail)
    c = b.g.add(b.draw(st.sampled_from(("exp", "neg", "tanh", "abs"))), c)
    c = b.g.add(b.draw(st.sampled_from(("add", "mul"))), c, b.const(tail))
    if len(tail) >= 2 and b.draw(st.booleans()):
        perm = list(range(len(tail)))[::-1]
        c = b.g.add("transpose", b.g.add("transpose", c, perm=perm), perm=perm)
    return [b.g.add(b.draw(st.sampled_from(("add", "mul", "sub"))), x, c)]


def _duplicate(b: _Builder):
    """The same op on the same operands again (cse's business); commutative ops with operands swapped."""
    candidates = [n for n in b.g.nodes if n.op != "const" and n.inputs and len(n.outputs) == 1
                  and n.output.dtype is DType.f32]
    if not candidates:
        return None
    node = b.draw(st.sampled_from(candidates))
    inputs = list(node.inputs)
    if node.op in ("add", "mul", "max", "min") and b.draw(st.booleans()):
        inputs.reverse()
    return [b.g.add_node(node.op, inputs, node.attrs).output]


BUILDERS = {
    "unary": _unary, "binary": _binary, "where": _where, "reduce": _reduce, "transpose": _transpose,
    "reshape": _reshape, "slice": _slice, "concat_split": _concat_split, "gather": _gather,
    "no_ops": _layout_no_ops, "matmul": _matmul, "conv": _conv, "shape": _shape_arithmetic,
    "constants": _constant_subexpression, "duplicate": _duplicate,
}


@st.composite
def graphs(draw, max_steps: int = 10, symbolic: bool = True, only: tuple | None = None) -> Graph:
    """A random valid graph (see the module docstring)."""
    names = sorted(only or BUILDERS)
    g = Graph("random")
    for i in range(draw(st.integers(1, 3))):
        rank = draw(st.integers(1, 4))
        shape = draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank))
        if symbolic and draw(st.booleans()):
            shape[0] = "B"
        g.add_input(f"x{i}", TensorType(DType.f32, shape))
    b = _Builder(draw, g)
    for _ in range(draw(st.integers(min(3, max_steps), max_steps))):
        try:
            new = BUILDERS[draw(st.sampled_from(names))](b)
        except LeptoncError:
            continue  # operands this builder cannot combine; its partial nodes stay as dead code
        for v in new or ():
            (b.floats if v.dtype is DType.f32 else b.ints).append(v)
    candidates = b.floats[len(g.inputs):] + b.ints or list(g.inputs)
    count = draw(st.integers(1, min(3, len(candidates))))
    outputs = [candidates[-1]] + [draw(st.sampled_from(candidates)) for _ in range(count - 1)]
    g.set_outputs(outputs)
    return g
