"""What small integer tensors hold, as dims: the shape arithmetic that exports compute at run time.

An exported model computes shapes with ops: shape_of(x), gather or slice
of the result, concat with constants, arithmetic on dims, the product of
dims (flatten), reshapes and casts of such vectors, and the
where(equal(shape, -1), 1, shape) that exporters write for Expand. `elements(graph, v)` follows
those ops and returns the value of v as a tuple of dims (ints, symbols such as
"B", expressions such as "B*S", or "?"), or None when v is not such a
computation. `fold` turns an all-int result into a constant and uses symbolic
results to turn dynamic ops into static ones.
"""
from __future__ import annotations

from ..ir import dims as D
from ..ir.dtypes import DType
from ..ir.graph import Graph, Value

MAX_LENGTH = 64  # longer integer tensors are data, not shapes


def elements(graph: Graph, v: Value, memo: dict | None = None) -> tuple | None:
    """The flattened value of a rank-0/1 integer (or bool) tensor as dims (or bools), or None if not computable."""
    if memo is None:
        memo = {}
    if v not in memo:  # keyed by the Value itself (not its id, which a new value could reuse)
        memo[v] = _compute(graph, v, memo)
    return memo[v]


def _is_shape_like(v: Value) -> bool:
    return (v.dtype.is_int or v.dtype is DType.bool) and v.type.rank <= 1 and v.type.is_static and \
        (v.type.rank == 0 or v.shape[0] <= MAX_LENGTH)


def _compute(graph: Graph, v: Value, memo: dict) -> tuple | None:
    if not _is_shape_like(v) or v.producer is None:
        return None
    node = v.producer
    arr = graph.constant_of(v)
    if arr is not None:
        return tuple(bool(x) if arr.dtype == bool else int(x) for x in arr.reshape(-1))
    a = node.attrs

    def operand(i):
        return elements(graph, node.inputs[i], memo)

    if node.op == "shape_of":
        return tuple(node.inputs[0].shape[slice(a["start"], a["end"])])
    if node.op in _SAME_ELEMENTS and node.inputs[0].dtype.is_int and v.dtype.is_int:
        return operand(0)
    if node.op == "gather" and a["axis"] == 0:
        data, idx = operand(0), operand(1)
        if data is None or idx is None or not all(isinstance(i, int) and -len(data) <= i < len(data) for i in idx):
            return None
        return tuple(data[i] for i in idx)
    if node.op == "slice" and tuple(a["axes"]) in ((0,), (-1,)):
        data = operand(0)
        return None if data is None else tuple(data[a["starts"][0]:a["ends"][0]:a["steps"][0]])
    if node.op == "concat":
        parts = [elements(graph, x, memo) for x in node.inputs]
        return None if any(p is None for p in parts) else tuple(d for p in parts for d in p)
    if node.op in ("reduce_prod", "reduce_sum") and node.inputs[0].type.rank == 1 and a["axes"]:
        data = operand(0)
        if data is None:
            return None
        out = 1 if node.op == "reduce_prod" else 0
        for d in data:
            out = D.mul(out, d) if node.op == "reduce_prod" else D.add(out, d)
        return (out,)
    if (node.op in _ARITH or node.op == "where") and all(x.dtype.is_int for x in node.inputs[-2:]):
        args = [elements(graph, x, memo) for x in node.inputs]
        if any(a is None for a in args) or len({len(a) for a in args} - {1}) > 1:
            return None
        n = max(len(a) for a in args)
        args = [a * n if len(a) == 1 else a for a in args]
        fn = _where if node.op == "where" else _ARITH[node.op]
        return tuple(fn(*xs) for xs in zip(*args))
    return None


# Ops that keep the elements of their first operand (in order) on small vectors.
_SAME_ELEMENTS = ("cast", "reshape", "squeeze", "unsqueeze", "reshape_dynamic", "squeeze_dynamic",
                  "unsqueeze_dynamic")


def _div(a, b):
    if isinstance(a, int) and isinstance(b, int):
        if b == 0:
            return D.UNKNOWN
        q = abs(a) // abs(b)  # integer division truncates toward zero, as the div op does
        return q if (a >= 0) == (b > 0) else -q
    if isinstance(b, int) and b > 0:
        return D.floordiv(a, b)  # dims are non-negative, so truncation is floor division
    return D.divide_exact(a, b)


def _minmax(pick):
    def run(a, b):
        if isinstance(a, int) and isinstance(b, int):
            return pick(a, b)
        return a if D.same(a, b) else D.UNKNOWN
    return run


def _equal(a, b):
    if D.same(a, b):
        return True
    if isinstance(a, int) and isinstance(b, int):
        return False
    # A symbolic dim is a size, never negative: exports compare shapes with -1 this way.
    if (isinstance(a, int) and a < 0 and b != D.UNKNOWN) or (isinstance(b, int) and b < 0 and a != D.UNKNOWN):
        return False
    return D.UNKNOWN


def _where(cond, a, b):
    if cond is True or cond is False:
        return a if cond else b
    return a if D.same(a, b) else D.UNKNOWN


_ARITH = {"add": D.add, "sub": D.sub, "mul": D.mul, "div": _div, "max": _minmax(max), "min": _minmax(min),
          "equal": _equal}


def all_int(dims: tuple | None) -> bool:
    return dims is not None and all(isinstance(d, int) for d in dims)
