"""Static forms of the dynamic ops: once a shape-like operand is known, its value becomes an attribute.

Frontends emit `reshape_dynamic(x, shape)` and friends where a target shape,
slice bounds, pads or axes are computed at run time. When fold's shape
arithmetic (shape_values.py) knows such an operand, this module builds the
static op: reshape, broadcast_to and full accept symbolic dims ("B", "B*S"),
the others need ints. `static_form(graph, node, memo)` returns the values
replacing the node's results, built before it, or None. Each form returns
the plan (op, operands, attributes) of the static node.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..ir import dims as D
from ..ir.errors import LeptoncError
from ..ir.graph import Graph, Node, Value
from ..ir.ops.dynamic import SHAPE_OPERANDS
from ..ir.ops.image import resize_dynamic_params
from ..ir.ops.shape import BIG, resolve_reshape
from ..ir.registry import get_op
from . import shape_values

Builder = Callable[[Graph, Node, Callable], "tuple[str, list, dict] | None"]
_FORMS: dict[str, Builder] = {}


def form(op: str) -> Callable[[Builder], Builder]:
    """Register the static form of dynamic op `op`."""
    def register(fn: Builder) -> Builder:
        _FORMS[op] = fn
        return fn
    return register


def static_form(graph: Graph, node: Node, memo: dict) -> list[Value] | None:
    """The static replacement of a dynamic node whose shape-like operands are known, or None."""
    build = _FORMS.get(node.op)
    if build is None:
        return None

    def known(i: int, ints: bool = True) -> tuple | None:
        dims = shape_values.elements(graph, node.inputs[i], memo)
        if dims is None or any(d == D.UNKNOWN for d in dims) or (ints and not shape_values.all_int(dims)):
            return None
        return dims

    try:
        plan = build(graph, node, known)
    except (ValueError, ArithmeticError):  # values no static form takes (a NaN scale): left dynamic
        return None
    if plan is None:
        return None
    return _materialize(graph, node, plan)


def refusal(graph: Graph, node: Node, operand_names: list[str] | None = None) -> str:
    """Why `node`, its shape-like operands known, has no static form: a line naming it, the operand values and
    the reason the static op or the reference implementation gives. `operand_names`: the names to show for its
    operands (those of the graph before constants replaced them)."""
    names = operand_names or [v.name for v in node.inputs]
    known = {i: graph.constant_of(node.inputs[i]) for i in SHAPE_OPERANDS.get(node.op, ()) if i < len(node.inputs)}
    shown = ", ".join(f"operand {i} (%{names[i]}) = {_show(a)}" for i, a in known.items())
    build = _FORMS.get(node.op)
    if build is None:
        return f"{node.label}: no static form is known for it ({shown})"
    if any(a is None for a in known.values()):
        missing = [f"operand {i} (%{names[i]})" for i, a in known.items() if a is None]
        return f"{node.label}: {', '.join(missing)} is not known before run time"
    why = _reference_refusal(graph, node) or "the static op refuses them"
    try:
        plan = build(graph, node, lambda i, ints=True: _values(graph, node, i))
        if plan is not None:
            op, inputs, attrs = plan
            new = graph.add_node(op, inputs, attrs, before=node)
            why = f"{op} gives {', '.join(str(v.type) for v in new.outputs)} for a result typed " \
                  f"{', '.join(str(v.type) for v in node.outputs)}"
            graph.erase(new)
    except (LeptoncError, ValueError, ArithmeticError) as e:
        why = str(e)
    return f"{node.label}: no static form for {shown}: {why}"


def _reference_refusal(graph: Graph, node: Node) -> str | None:
    """What the op's reference implementation says of these operands (zeros for the data), if it refuses."""
    if not all(v.type.is_static for v in node.inputs):
        return None
    args = [graph.constant_of(v) if graph.constant_of(v) is not None else np.zeros(v.shape, v.dtype.numpy)
            for v in node.inputs]
    try:
        with np.errstate(all="ignore"):
            get_op(node.op).reference(*args, **node.attrs)
    except Exception as e:  # noqa: BLE001  its message is the reason
        return str(e)
    return None


def _values(graph: Graph, node: Node, i: int) -> tuple | None:
    a = graph.constant_of(node.inputs[i])
    return None if a is None else tuple(a.reshape(-1).tolist())


def _show(a) -> str:
    return "?" if a is None else str(a.reshape(-1).tolist() if a.ndim else a.item())


def _axes(axes, rank: int) -> tuple | None:
    """Axes in [-rank, rank) made non-negative; None when one is out of range (a refusal, never a wrap)."""
    if not all(-rank <= a < rank for a in axes):
        return None
    return tuple(a % rank for a in axes)


def refine_dynamic_type(graph: Graph, node: Node, memo: dict) -> bool:
    """Give a dynamic op without a static form the result size its known operands imply.

    range_dynamic has ceil((limit - start) / delta) elements: with constant
    operands the result type becomes static (and fold can then evaluate it);
    range_dynamic(0, n, 1) over a symbolic n is typed [n] instead of [?].
    """
    if node.op != "range_dynamic" or node.outputs[0].shape != (D.UNKNOWN,):
        return False
    out = node.outputs[0]
    values = [graph.constant_of(v) for v in node.inputs]
    if all(v is not None for v in values):
        start, limit, delta = (np.asarray(v).reshape(-1)[0].item() for v in values)
        if delta == 0:
            return False  # fails at run time, as it should
        out.type = out.type.with_shape((max(int(np.ceil((limit - start) / delta)), 0),))
        return True
    start, limit, delta = (shape_values.elements(graph, v, memo) for v in node.inputs)
    if start != (0,) or delta != (1,) or limit is None or limit[0] == D.UNKNOWN:
        return False
    out.type = out.type.with_shape(limit)
    return True


def _materialize(graph: Graph, node: Node, plan: tuple) -> list[Value] | None:
    """Add the planned node(s) before `node`; keep them if every result refines the old result's type.
    An operand of a plan may itself be a plan (op, operands, attributes), built first."""
    made: list[Node] = []

    def build(plan, names=None) -> list[Value]:
        op, inputs, attrs = plan
        inputs = [build(v)[0] if isinstance(v, tuple) else v for v in inputs]
        made.append(graph.add_node(op, inputs, attrs, names=names, before=node))
        return made[-1].outputs

    try:
        outputs = build(plan, [v.name for v in node.outputs])
    except LeptoncError:
        outputs = None
    if outputs is not None and len(outputs) == len(node.outputs) and all(
            _refines(a.type, b.type) for a, b in zip(outputs, node.outputs)):
        return outputs
    for new in reversed(made):
        graph.erase(new)
    return None


def _refines(new, old) -> bool:
    return new.dtype == old.dtype and new.rank == old.rank and all(
        o == D.UNKNOWN or D.same(n, o) for n, o in zip(new.shape, old.shape))


@form("reshape_dynamic")
def _reshape(graph, node, known):
    target = known(1, ints=False)
    if target is None:
        return None
    x = node.inputs[0]
    if node.attrs["allowzero"] and 0 in target and -1 in target:
        return None
    shape = resolve_reshape(x.shape, target, allow_zero=node.attrs["allowzero"])
    return None if D.UNKNOWN in shape else ("reshape", [x], {"shape": shape})


@form("expand_dynamic")
def _expand(graph, node, known):
    target = known(1, ints=False)
    if target is None:
        return None
    x = node.inputs[0]
    rank = max(x.type.rank, len(target))
    a = (1,) * (rank - x.type.rank) + tuple(x.shape)
    b = (1,) * (rank - len(target)) + tuple(target)
    shape = []
    for p, q in zip(a, b):
        if q == 1 or D.same(p, q):
            shape.append(p)
        elif p == 1:
            shape.append(q)
        else:
            return None  # sizes that differ, or may: left to run time
    return ("broadcast_to", [x], {"shape": tuple(shape)})


@form("full_dynamic")
def _full(graph, node, known):
    shape = known(0, ints=False)
    value = node.attrs["value"]
    if shape is None or not isinstance(value, (bool, int, float)) or float(value) != value:
        return None
    return ("full", [], {"shape": shape, "value": float(value), "dtype": node.attrs["dtype"]})


@form("tile_dynamic")
def _tile(graph, node, known):
    repeats = known(1)
    return None if repeats is None else ("tile", [node.inputs[0]], {"repeats": repeats})


@form("slice_dynamic")
def _slice(graph, node, known):
    parts = [known(i, ints=i >= 3) for i in range(1, 5)]
    if any(p is None for p in parts):
        return None
    starts, ends, axes, steps = parts
    x = node.inputs[0]
    axes = _axes(axes, x.type.rank)
    if axes is None or 0 in steps or len({len(starts), len(ends), len(axes), len(steps)}) != 1:
        return None
    starts = tuple(_slice_bound(b, x.shape[a]) for b, a in zip(starts, axes))
    ends = tuple(_slice_bound(b, x.shape[a]) for b, a in zip(ends, axes))
    if None in starts or None in ends:
        return None
    return ("slice", [x], {"starts": starts, "ends": ends, "axes": axes, "steps": steps})


def _slice_bound(bound, dim):
    """A slice bound as an int that means the same on an axis of size `dim`, or None.

    A symbolic bound (S, S + 1: a size, never negative) is the same index as its offset from the dim when
    that offset is an int: at or past the dim it clamps to the end (BIG); below it, it is the negative index
    dim - k. A bound that may be negative (S - 5 is -2 when S is 3, which ONNX counts from the end), or whose
    offset from the dim depends on the sizes, has no such int.
    """
    if isinstance(bound, int):
        return bound
    offset = D.sub(bound, dim)
    if D.may_be_negative(bound) or not isinstance(offset, int):
        return None
    return BIG if offset >= 0 else offset


@form("pad_dynamic")
def _pad(graph, node, known):
    pads, axes = known(1), known(3)
    value = graph.constant_of(node.inputs[2])
    if pads is None or axes is None or value is None:
        return None
    x = node.inputs[0]
    rank = x.type.rank
    axes = _axes(axes, rank)
    if axes is None or len(pads) != 2 * len(axes):
        return None
    full = [0] * (2 * rank)
    for i, a in enumerate(axes):
        full[a], full[a + rank] = pads[i], pads[i + len(axes)]
    v = np.asarray(value).reshape(-1)
    fill = float(v[0]) if v.size else 0.0
    if v.size and fill != v[0]:
        return None  # an integer fill that a float attribute cannot hold exactly
    return ("pad", [x], {"pads": tuple(full), "mode": node.attrs["mode"], "value": fill})


@form("topk_dynamic")
def _topk(graph, node, known):
    k = known(1)
    if k is None or len(k) != 1 or _axes((node.attrs["axis"],), node.inputs[0].type.rank) is None:
        return None
    return ("topk", [node.inputs[0]], {"k": k[0], "axis": node.attrs["axis"], "largest": node.attrs["largest"],
                                       "sorted": node.attrs["sorted"]})


@form("squeeze_dynamic")
def _squeeze(graph, node, known):
    axes = known(1)
    x = node.inputs[0]
    axes = None if axes is None else _axes(axes, x.type.rank)
    if axes is None or any(x.shape[a] != 1 for a in axes):
        return None
    drop = set(axes)
    return ("reshape", [x], {"shape": tuple(d for i, d in enumerate(x.shape) if i not in drop)})


@form("unsqueeze_dynamic")
def _unsqueeze(graph, node, known):
    axes = known(1)
    x = node.inputs[0]
    if axes is None:
        return None
    rank = x.type.rank + len(axes)
    ones = _axes(axes, rank)
    if ones is None or len(set(ones)) != len(ones):
        return None
    dims = iter(x.shape)
    return ("reshape", [x], {"shape": tuple(1 if i in ones else next(dims) for i in range(rank))})


@form("split_dynamic")
def _split(graph, node, known):
    sizes = known(1)
    return None if sizes is None else ("split", [node.inputs[0]], {"axis": node.attrs["axis"], "sizes": sizes})


@form("reduce_dynamic")
def _reduce(graph, node, known):
    axes = known(1)
    x = node.inputs[0]
    if axes is None:
        return None
    if not axes:
        if node.attrs["noop_with_empty_axes"]:
            return ("reshape", [x], {"shape": x.shape})  # x itself (a view that canonicalize then drops)
        axes = tuple(range(x.type.rank))
    axes = _axes(axes, max(x.type.rank, 1))
    if axes is None:
        return None
    axes = tuple(sorted(set(axes)))
    return (f"reduce_{node.attrs['kind']}", [x], {"axes": axes, "keepdims": node.attrs["keepdims"]})


@form("cumulative_dynamic")
def _cumulative(graph, node, known):
    axis = known(1)
    axis = None if axis is None or len(axis) != 1 else _axes(axis, node.inputs[0].type.rank)
    if axis is None:
        return None
    op = "cumsum" if node.attrs["kind"] == "sum" else "cumprod"
    return (op, [node.inputs[0]], {"axis": axis[0], "exclusive": node.attrs["exclusive"],
                                   "reverse": node.attrs["reverse"]})


@form("range_dynamic")
def _range(graph, node, known):
    values = [graph.constant_of(v) for v in node.inputs]
    if any(v is None for v in values):
        return _symbolic_range(node, known)
    start, limit, delta = (np.asarray(v).reshape(-1)[0].item() for v in values)
    if any(float(v) != v for v in (start, limit, delta)):
        return None  # an integer a float attribute cannot hold exactly
    return ("range", [], {"start": float(start), "limit": float(limit), "delta": float(delta),
                          "dtype": node.outputs[0].dtype})


def _symbolic_range(node, known):
    """An integer range whose bounds are dims (range(0, S, 1)): start + the exclusive running sum of
    [count] deltas, its count a dim. Only where that count is one dim expression for every size
    (limit - start never negative, divided exactly by delta)."""
    bounds, delta = [known(i, ints=False) for i in (0, 1)], known(2)
    out = node.outputs[0]
    if None in bounds or delta is None or not out.dtype.is_int or any(v.dtype != out.dtype for v in node.inputs):
        return None
    (start,), (limit,), (delta,) = bounds[0], bounds[1], delta
    span = D.sub(limit, start) if delta > 0 else D.sub(start, limit)
    if delta == 0 or span == D.UNKNOWN or D.may_be_negative(span):
        return None
    count = D.floordiv(D.add(span, abs(delta) - 1), abs(delta))
    if count == D.UNKNOWN:
        return None
    steps = ("cumsum", [("full", [], {"shape": (count,), "value": float(delta), "dtype": out.dtype})],
             {"axis": 0, "exclusive": True, "reverse": False})
    return steps if start == 0 else ("add", [steps, node.inputs[0]], {})


@form("resize_dynamic")
def _resize(graph, node, known):
    x = node.inputs[0]
    roi, scales, sizes = (graph.constant_of(v) for v in node.inputs[1:])
    if roi is None or scales is None or sizes is None or not x.type.is_static:
        return None
    axes = node.attrs["axes"]
    if axes and _axes(axes, x.type.rank) is None:
        return None
    shape, sc, roi = resize_dynamic_params(x.shape, roi, scales, sizes, axes, node.attrs["keep_aspect_ratio_policy"])
    if not all(sc) or min(shape) < 0:
        return None
    modes = {k: v for k, v in node.attrs.items() if k not in ("axes", "keep_aspect_ratio_policy")}
    return ("resize", [x], {"shape": tuple(shape), "scales": tuple(float(s) for s in sc),
                            "roi": tuple(float(r) for r in roi), **modes})


@form("affine_grid_dynamic")
def _affine_grid(graph, node, known):
    size = known(1)
    return None if size is None else ("affine_grid", [node.inputs[0]],
                                      {"size": size, "align_corners": node.attrs["align_corners"]})


@form("col2im_dynamic")
def _col2im(graph, node, known):
    image, block = known(1), known(2)
    if image is None or block is None:
        return None
    return ("col2im", [node.inputs[0]], {"image_shape": image, "block_shape": block, **node.attrs,
                                         "pads": node.attrs["pads"] or (0,) * (2 * len(image))})


@form("dft_dynamic")
def _dft(graph, node, known):
    length, axis = known(1), known(2)
    if length is None or axis is None or len(length) != 1 or len(axis) != 1:
        return None
    return ("dft", [node.inputs[0]], {"axis": axis[0], "length": length[0], **node.attrs})


@form("stft_dynamic")
def _stft(graph, node, known):
    step, length = known(1), known(3)
    window = node.inputs[2]
    if step is None or length is None or len(step) != 1 or len(length) != 1 or not window.type.is_static:
        return None
    operands = [node.inputs[0]] + ([window] if window.type.numel else [])
    return ("stft", operands, {"step": step[0], "length": length[0], "onesided": node.attrs["onesided"]})
