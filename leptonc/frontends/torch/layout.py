"""Mappings of views, layout and data movement (slicing, gathering, indexing, assignment, padding, sorting)
and of the ATen ops that create tensors (full, zeros, arange...)."""
from __future__ import annotations

import numpy as np
import torch

from ...ir import dims as D
from ...ir.dtypes import DType
from ...ir.errors import UnsupportedOpError
from ...ir.graph import Value
from ...ir.ops.shape import BIG, resolve_reshape
from .registry import handles, norm_axis

@handles("view.default", "_unsafe_view.default", "reshape.default", "unsqueeze.default", "squeeze.dims",
          "squeeze.dim", "squeeze.default", "flatten.using_ints", "view_copy.default")
def _view(imp, node, a):
    x = imp.v(a["self"])
    shape = imp.meta_shape(node)
    if D.UNKNOWN in shape:
        target = a.get("size") or a.get("shape")
        if target is None:
            raise UnsupportedOpError(f"a view to sizes {list(shape)} that are not products of dims")
        target = [imp.env[s] if isinstance(s, torch.fx.Node) else s for s in target]
        shape = resolve_reshape(x.shape, target, allow_zero=True)
    return imp.reshape(x, shape)


@handles("permute.default")
def _permute(imp, node, a):
    x = imp.v(a["self"])
    perm = tuple(norm_axis(d, x.type.rank) for d in a["dims"])
    return x if perm == tuple(range(x.type.rank)) else imp.add("transpose", x, perm=perm)


@handles("t.default", "transpose.int")
def _transpose(imp, node, a):
    x = imp.v(a["self"])
    perm = list(range(x.type.rank))
    i, j = (norm_axis(a.get("dim0", 0), x.type.rank), norm_axis(a.get("dim1", 1), x.type.rank))
    perm[i], perm[j] = perm[j], perm[i]
    return imp.add("transpose", x, perm=tuple(perm)) if x.type.rank > 1 else x


@handles("expand.default", "expand_copy.default")
def _expand(imp, node, a):
    x = imp.v(a["self"])
    shape = imp.meta_shape(node)
    if x.type.rank == len(shape) and all(D.same(p, q) for p, q in zip(x.shape, shape)):
        return x
    return imp.add("broadcast_to", x, shape=shape)


@handles("repeat.default")
def _repeat(imp, node, a):
    x = imp.v(a["self"])
    repeats = tuple(a["repeats"])
    x = imp.reshape(x, (1,) * (len(repeats) - x.type.rank) + x.shape)
    return imp.add("tile", x, repeats=repeats)


@handles("cat.default", "concat.default")
def _cat(imp, node, a):
    dtype = imp.meta_dtype(node)
    parts = [imp.cast(imp.v(t), dtype) for t in a["tensors"]]
    parts = [p for p in parts if not (p.type.rank == 1 and p.shape[0] == 0)] or parts[:1]  # legacy empty 1-D
    if len(parts) == 1:
        return parts[0]
    return imp.add("concat", *parts, axis=norm_axis(a["dim"], parts[0].type.rank))


@handles("split_with_sizes.default", "split.Tensor", "split.sizes", "unbind.int")
def _split(imp, node, a):
    x = imp.v(a["self"])
    axis = norm_axis(a.get("dim", 0), x.type.rank)
    size = x.shape[axis]
    if str(node.target) == "aten.unbind.int":
        if not isinstance(size, int):
            raise UnsupportedOpError("unbind along a symbolic dim")
        parts = imp.g.add_node("split", [x], {"axis": axis, "sizes": (1,) * size}).outputs
        return tuple(imp.reshape(p, x.shape[:axis] + x.shape[axis + 1:]) for p in parts)
    sizes = a.get("split_sizes") or a.get("split_size")
    if isinstance(sizes, int):
        if not isinstance(size, int):
            raise UnsupportedOpError("split along a symbolic dim")
        sizes = [sizes] * (size // sizes) + ([size % sizes] if size % sizes else [])
    if any(not isinstance(s, int) for s in sizes):
        raise UnsupportedOpError("split into symbolic sizes")
    return tuple(imp.g.add_node("split", [x], {"axis": axis, "sizes": tuple(sizes)},
                                names=[node.name] * len(sizes)).outputs)


@handles("slice.Tensor", "slice_copy.Tensor")
def _slice(imp, node, a):
    x = imp.v(a["self"])
    axis = norm_axis(a.get("dim", 0), x.type.rank)
    start, end, step = (imp.env[s] if isinstance(s, torch.fx.Node) else s
                        for s in (a.get("start"), a.get("end"), a.get("step")))
    start, step = start or 0, step or 1
    if end is None or (isinstance(end, str) and D.same(end, x.shape[axis])) or (isinstance(end, int) and end >= BIG):
        end = BIG
    if isinstance(start, int) and isinstance(end, int):
        if start == 0 and end == BIG and step == 1:
            return x
        return imp.add("slice", x, starts=(start,), ends=(end,), axes=(axis,), steps=(step,))
    length = imp.meta_shape(node)[axis]
    return imp.add("gather", x, imp.arange(start, end, step, DType.i64, length), axis=axis)


@handles("select.int", "select_copy.int")
def _select(imp, node, a):
    x = imp.v(a["self"])
    index = a["index"]
    if not isinstance(index, int):
        raise UnsupportedOpError("select at a symbolic index")
    return imp.add("gather", x, imp.scalar(index, DType.i64), axis=norm_axis(a["dim"], x.type.rank))


@handles("embedding.default")
def _embedding(imp, node, a):
    return imp.add("gather", imp.v(a["weight"]), imp.v(a["indices"]), axis=0)


@handles("index_select.default")
def _index_select(imp, node, a):
    x = imp.v(a["self"])
    return imp.add("gather", x, imp.v(a["index"]), axis=norm_axis(a["dim"], x.type.rank))


@handles("gather.default")
def _gather(imp, node, a):
    x, idx = imp.v(a["self"]), imp.v(a["index"])
    axis = norm_axis(a["dim"], x.type.rank)
    return imp.add("gather_elements", _crop_to(imp, x, idx.shape, axis), idx, axis=axis)


@handles("index.Tensor")
def _index(imp, node, a):
    """x[i0, i1, ...] with index tensors (None skips an axis): one gather on the flattened indexed axes."""
    x = imp.v(a["self"])
    indices = list(a["indices"])
    axes = [i for i, t in enumerate(indices) if t is not None]
    idx = [imp.v(indices[i]) for i in axes]
    if any(t.dtype is DType.bool for t in idx):
        raise UnsupportedOpError("indexing with a boolean mask (its result size depends on the data)")
    if len(axes) == 1:
        return imp.add("gather", x, imp.cast(idx[0], DType.i64), axis=axes[0])
    contiguous = axes == list(range(axes[0], axes[-1] + 1))
    first = axes[0] if contiguous else 0
    if not contiguous:  # torch puts the indexed dims first when they are not adjacent
        rest = [i for i in range(x.type.rank) if i not in axes]
        x = imp.add("transpose", x, perm=tuple(axes + rest))
        axes = list(range(len(axes)))
    flat = None
    for axis, t in zip(axes, idx):
        size = imp.size_tensor(x, axis)
        t = imp.add("mod", imp.cast(t, DType.i64), size)  # negative indices count from the end
        flat = t if flat is None else imp.add("add", imp.add("mul", flat, size), t)
    merged = D.product(x.shape[i] for i in axes)
    x = imp.reshape(x, x.shape[:first] + (merged,) + x.shape[axes[-1] + 1:])
    return imp.add("gather", x, flat, axis=first)


@handles("constant_pad_nd.default", "pad.default")
def _pad(imp, node, a):
    x = imp.v(a["self"])
    mode = a.get("mode") or "constant"
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise UnsupportedOpError(f"pad mode {mode!r}")
    rank = x.type.rank
    begins, ends = [0] * rank, [0] * rank
    pad = list(a["pad"])
    for i in range(len(pad) // 2):
        begins[rank - 1 - i], ends[rank - 1 - i] = pad[2 * i], pad[2 * i + 1]
    value = a.get("value") or 0.0
    return imp.add("pad", x, pads=tuple(begins + ends), value=float(value),
                   mode={"replicate": "edge", "circular": "wrap"}.get(mode, mode))


@handles("flip.default")
def _flip(imp, node, a):
    x = imp.v(a["self"])
    axes = tuple(sorted({norm_axis(d, x.type.rank) for d in a["dims"]}))
    if not axes:
        return x
    return imp.add("slice", x, starts=(-1,) * len(axes), ends=(-BIG,) * len(axes), axes=axes, steps=(-1,) * len(axes))


@handles("topk.default", "sort.default")
def _topk(imp, node, a):
    x = imp.v(a["self"])
    axis = norm_axis(a.get("dim", -1), x.type.rank)
    if str(node.target) == "aten.sort.default":
        k, largest = x.shape[axis], bool(a.get("descending"))
    else:
        k, largest = a["k"], bool(a.get("largest", True))
    if not isinstance(k, int):
        raise UnsupportedOpError(f"topk/sort of a symbolic number of elements ({k})")
    return tuple(imp.g.add_node("topk", [x], {"k": k, "axis": axis, "largest": largest},
                                names=[node.name, node.name + "_indices"]).outputs)


def _crop_to(imp, x: Value, shape, keep_axis: int) -> Value:
    """x cut down to `shape` in every axis but keep_axis (torch lets gather/scatter indices be smaller)."""
    if all(i == keep_axis or D.same(p, q) for i, (p, q) in enumerate(zip(x.shape, shape))):
        return x
    ends = tuple(BIG if i == keep_axis else d for i, d in enumerate(shape))
    if not all(isinstance(e, int) for e in ends):
        raise UnsupportedOpError("gather/scatter indices smaller than the data in a symbolic dim")
    rank = x.type.rank
    return imp.add("slice", x, starts=(0,) * rank, ends=ends, axes=tuple(range(rank)), steps=(1,) * rank)


@handles("scatter.value", "scatter.src")
def _scatter(imp, node, a):
    x, idx = imp.v(a["self"]), imp.v(a["index"])
    axis = norm_axis(a["dim"], x.type.rank)
    if "value" in a:
        updates = imp.add("broadcast_to", imp.scalar(a["value"], x.dtype), shape=idx.shape)
    else:
        updates = _crop_to(imp, imp.cast(imp.v(a["src"]), x.dtype), idx.shape, -1)
    return imp.add("scatter_elements", x, idx, updates, axis=axis)


def _positions(imp, start, step, length, axis: int, rank: int, size) -> Value:
    """start + step * i for i < length, as an i64 tensor shaped to run along `axis` of a rank-`rank` tensor."""
    if not isinstance(start, int) or not isinstance(step, int):
        raise UnsupportedOpError("a symbolic start or step in slice assignment")
    if start < 0:
        if not isinstance(size, int):
            raise UnsupportedOpError("a negative start along a symbolic dim in slice assignment")
        start += size
    end = start + length * step if isinstance(length, int) else None  # None: the length is symbolic
    positions = imp.arange(start, end, step, DType.i64, length)
    return imp.reshape(positions, tuple(length if i == axis else 1 for i in range(rank)))


def _scatter_along(imp, x: Value, updates: Value, axis: int, start, step) -> Value:
    """x with `updates` written at start, start+step, ... along axis."""
    index = _positions(imp, start, step, updates.shape[axis], axis, x.type.rank, x.shape[axis])
    index = imp.add("broadcast_to", index, shape=updates.shape)
    return imp.add("scatter_elements", x, index, imp.cast(updates, x.dtype), axis=axis)


@handles("slice_scatter.default")
def _slice_scatter(imp, node, a):
    x = imp.v(a["self"])
    start = a.get("start")
    start = imp.env[start] if isinstance(start, torch.fx.Node) else (start or 0)
    return _scatter_along(imp, x, imp.v(a["src"]), norm_axis(a.get("dim", 0), x.type.rank), start, a.get("step") or 1)


@handles("select_scatter.default")
def _select_scatter(imp, node, a):
    x = imp.v(a["self"])
    axis = norm_axis(a["dim"], x.type.rank)
    src = imp.v(a["src"])
    src = imp.reshape(src, src.shape[:axis] + (1,) + src.shape[axis:])
    return _scatter_along(imp, x, src, axis, a["index"], 1)


@handles("index_put.default")
def _index_put(imp, node, a):
    """x[index] = values for one index tensor (positions along an axis, or a boolean mask over leading axes)."""
    x = imp.v(a["self"])
    indices = list(a["indices"])
    axes = [i for i, t in enumerate(indices) if t is not None]
    if len(axes) != 1:
        raise UnsupportedOpError("index assignment with more than one index tensor")
    axis, index = axes[0], imp.v(indices[axes[0]])
    values = imp.cast(imp.v(a["values"]), x.dtype)
    if index.dtype is DType.bool:
        if axis != 0 or a.get("accumulate"):
            raise UnsupportedOpError("masked assignment other than x[mask] = values")
        mask = imp.reshape(index, index.shape + (1,) * (x.type.rank - index.type.rank))
        return imp.add("where", mask, values, x)
    if index.type.rank != 1:
        raise UnsupportedOpError("index assignment with a multi-dimensional index tensor")
    shape = x.shape[:axis] + index.shape + x.shape[axis + 1:]
    position = imp.reshape(imp.cast(index, DType.i64), tuple(index.shape[0] if i == axis else 1
                                                            for i in range(x.type.rank)))
    return imp.add("scatter_elements", x, imp.add("broadcast_to", position, shape=shape),
                   imp.add("broadcast_to", values, shape=shape), axis=axis,
                   reduction="add" if a.get("accumulate") else "none")


@handles("as_strided.default", "as_strided_copy.default")
def _as_strided(imp, node, a):
    """A strided view of a contiguous tensor: a reshape when the strides are row-major, else a gather."""
    x = imp.v(a["self"])
    val = a["self"].meta["val"]
    size, stride, offset = list(a["size"]), list(a["stride"]), a.get("storage_offset") or 0
    if not (x.type.is_static and all(isinstance(d, int) for d in size + stride) and val.is_contiguous()):
        raise UnsupportedOpError("as_strided on a symbolic or non-contiguous tensor")
    flat_index = offset + sum(np.arange(n).reshape([-1 if i == k else 1 for i in range(len(size))]) * st
                              for k, (n, st) in enumerate(zip(size, stride)))
    flat_index = np.broadcast_to(flat_index, size)
    numel = int(np.prod(x.shape))
    if flat_index.size == numel and np.array_equal(flat_index.reshape(-1), np.arange(numel)):
        return imp.reshape(x, tuple(size))
    flat = imp.reshape(x, (numel,))
    return imp.add("gather", flat, imp.g.add_constant(np.ascontiguousarray(flat_index, np.int64),
                                                      f"{node.name}_index"), axis=0)


@handles("cumsum.default")
def _cumsum(imp, node, a):
    x = imp.cast(imp.v(a["self"]), imp.meta_dtype(node))
    return imp.add("cumsum", x, axis=norm_axis(a["dim"], x.type.rank))


# -- creating tensors

@handles("full.default", "full_like.default", "zeros.default", "ones.default", "zeros_like.default",
          "ones_like.default", "empty.memory_format", "empty_like.default", "new_zeros.default",
          "new_ones.default", "new_full.default", "new_empty.default", "scalar_tensor.default")
def _full(imp, node, a):
    name = str(node.target)
    if "ones" in name:
        value = 1.0
    elif "full" in name:
        value = a["fill_value"]
    elif "scalar_tensor" in name:
        value = a["s"]
    else:
        value = 0.0  # zeros, and empty (whose contents are unspecified)
    ty = imp.meta_type(node)
    if isinstance(value, torch.fx.Node):
        raise UnsupportedOpError("a tensor filled with a symbolic size")
    if ty.is_static:
        return imp.g.add_constant(np.full(ty.shape, value, dtype=ty.dtype.numpy), node.name)
    return imp.add("full", shape=ty.shape, value=float(value), dtype=ty.dtype)


@handles("arange.start_step", "arange.start", "arange.default")
def _arange(imp, node, a):
    start = a.get("start") if "end" in a else 0
    end = a.get("end", a.get("start"))
    step = a.get("step", 1) or 1
    start, end, step = (imp.env[s] if isinstance(s, torch.fx.Node) else s for s in (start, end, step))
    return imp.arange(start or 0, end, step, imp.meta_dtype(node), imp.meta_shape(node)[0])
