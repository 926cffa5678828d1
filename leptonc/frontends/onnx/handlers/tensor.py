"""Shape, layout and indexing ONNX ops. Shape-like operands known while importing become static
attributes; genuine run-time ones select the *_dynamic ops."""
from __future__ import annotations

import numpy as np

from ....ir import dims as D
from ....ir.dtypes import DType
from ....ir.errors import LeptoncError
from ..importer import dtype_of
from ..registry import onnx_op
from .common import norm_axis, unsupported

Q = D.UNKNOWN


def _i64(b, values):
    return b.const(np.asarray(values, dtype=np.int64).reshape(-1))


def _as_i64(b, v):
    return b.cast(v, DType.i64)


@onnx_op("Constant")
def constant(cx):
    b = cx.b
    a = cx.attrs
    if "value" in a:
        t = next(x.t for x in cx.node.attribute if x.name == "value")
        return b.const(a["value"].astype(dtype_of(t.data_type, "Constant ").numpy, copy=False), cx.node.output[0])
    if "sparse_value" in a:
        return b.const(a["sparse_value"], cx.node.output[0])
    for key, dt in (("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64),
                    ("value_ints", np.int64)):
        if key in a:
            return b.const(np.array(a[key], dtype=dt), cx.node.output[0])
    unsupported(cx, f"attribute {next(iter(a), 'none')!r} (string constants have no IR dtype)")


@onnx_op("ConstantOfShape")
def constant_of_shape(cx):
    b, s = cx.b, cx.x(0)
    value = cx.a("value")
    if value is None:
        value = np.zeros((1,), np.float32)
    t = next((a.t for a in cx.node.attribute if a.name == "value"), None)
    dtype = dtype_of(t.data_type, "ConstantOfShape ") if t is not None else DType.f32
    scalar = np.asarray(value).reshape(-1)[0].item()
    dims = b.dims(s)
    if dims is not None and Q not in dims:
        if all(isinstance(d, int) for d in dims) and int(np.prod(dims)) <= 64:
            return b.const(np.full(dims, scalar, dtype=dtype.numpy))
        if isinstance(scalar, int) and abs(scalar) > 2 ** 53:
            unsupported(cx, "an integer fill value beyond 2**53")
        return b.op("full", shape=dims, value=float(scalar), dtype=dtype)
    return b.op_refined("full_dynamic", _as_i64(b, s), shape=dims, value=scalar, dtype=dtype)


@onnx_op("Shape")
def shape(cx):
    x = cx.x(0)
    start, end = cx.a("start", 0), cx.a("end")
    return cx.b.op("shape_of", x, start=start, end=end)


@onnx_op("Size")
def size(cx):
    b, x = cx.b, cx.x(0)
    n = D.product(x.shape)
    if isinstance(n, int):
        return b.const(np.array(n, dtype=np.int64))
    return b.op("reduce_prod", b.op("shape_of", x), axes=(0,), keepdims=False)


def reshape_to(b, x, target, allowzero=False, runtime=None):
    """x reshaped to an ONNX-style target (dims, may hold 0 and -1); runtime: the target as a Value."""
    if target is not None:
        out = [x.shape[i] if d == 0 and not allowzero and i < x.type.rank else d for i, d in enumerate(target)]
        if -1 in out:
            rest = D.product(d for d in out if d != -1)
            total = D.product(x.shape)
            out[out.index(-1)] = D.divide_exact(total, rest) if rest != 0 else 0
        if Q not in out and all(not isinstance(d, int) or d >= 0 for d in out):
            return b.reshape(x, out)
    if runtime is None:
        runtime = _i64(b, target)
    known = None
    if target is not None:
        known = [x.shape[i] if d == 0 and not allowzero and i < x.type.rank else
                 Q if d == -1 or (isinstance(d, int) and d < 0) else d for i, d in enumerate(target)]
    return b.op_refined("reshape_dynamic", x, _as_i64(b, runtime), shape=known, allowzero=bool(allowzero))


@onnx_op("Reshape")
def reshape(cx):
    b, x, s = cx.b, cx.x(0), cx.x(1)
    return reshape_to(b, x, b.dims(s), bool(cx.a("allowzero", 0)), runtime=s)


@onnx_op("Flatten")
def flatten(cx):
    b, x = cx.b, cx.x(0)
    axis = cx.a("axis", 1)
    axis = axis + x.type.rank if axis < 0 else axis
    outer, inner = D.product(x.shape[:axis]), D.product(x.shape[axis:])
    if Q not in (outer, inner):
        return b.reshape(x, (outer, inner))
    if inner != Q:
        return reshape_to(b, x, (-1, inner))
    if outer != Q:
        return reshape_to(b, x, (outer, -1))
    shp = b.op("shape_of", x)
    lead = b.op("reduce_prod", b.op("slice", shp, starts=(0,), ends=(axis,), axes=(0,), steps=(1,)), axes=(0,))
    return b.op("reshape_dynamic", x, b.op("concat", lead, _i64(b, [-1]), axis=0))


def _axes_operand(cx, index, attr="axes"):
    """(axes as ints or None, the run-time Value or None) from an input (opset >= 13) or attribute."""
    v = cx.x(index)
    if v is not None:
        return cx.b.ints(v), v
    a = cx.a(attr)
    return (tuple(a) if a is not None else None), None


@onnx_op("Squeeze")
def squeeze(cx):
    b, x = cx.b, cx.x(0)
    axes, rt = _axes_operand(cx, 1)
    if axes is None and rt is not None:
        return b.op("squeeze_dynamic", x, _as_i64(b, rt))
    if axes is None:
        axes = tuple(i for i, d in enumerate(x.shape) if d == 1)
    axes = tuple(sorted(norm_axis(a, x.type.rank) for a in axes))
    out = [d for i, d in enumerate(x.shape) if i not in axes]
    return b.reshape(x, out) if Q not in out else b.op("squeeze", x, axes=axes)


@onnx_op("Unsqueeze")
def unsqueeze(cx):
    b, x = cx.b, cx.x(0)
    axes, rt = _axes_operand(cx, 1)
    if axes is None:
        return b.op("unsqueeze_dynamic", x, _as_i64(b, rt))
    rank = x.type.rank + len(axes)
    axes = tuple(sorted(norm_axis(a, rank) for a in axes))
    rest = iter(x.shape)
    out = [1 if i in axes else next(rest) for i in range(rank)]
    return b.reshape(x, out) if Q not in out else b.op("unsqueeze", x, axes=axes)


@onnx_op("Transpose")
def transpose(cx):
    x = cx.x(0)
    perm = cx.a("perm")
    perm = tuple(reversed(range(x.type.rank))) if perm is None else tuple(norm_axis(p, x.type.rank) for p in perm)
    return x if perm == tuple(range(x.type.rank)) else cx.b.op("transpose", x, perm=perm)


@onnx_op("Concat")
def concat(cx):
    xs = [x for x in cx.inputs if x is not None]
    if len(xs) == 1:
        return xs[0]
    axis = norm_axis(cx.a("axis"), xs[0].type.rank)
    return cx.b.op("concat", *xs, axis=axis)


@onnx_op("Split")
def split(cx):
    b, x = cx.b, cx.x(0)
    axis = norm_axis(cx.a("axis", 0), x.type.rank)
    n = cx.n_out
    sizes, rt = _axes_operand(cx, 1, "split")
    if sizes is None and rt is not None:
        return b.ops("split_dynamic", [x, _as_i64(b, rt)], axis=axis, num=n)
    if sizes is None:
        dim = x.shape[axis]
        if not isinstance(dim, int):
            unsupported(cx, f"an even split of dim {dim}, which is not known before run time")
        parts = cx.a("num_outputs", n)
        chunk = -(-dim // parts)
        sizes = [chunk] * (dim // chunk) + ([dim % chunk] if dim % chunk else [])
    return b.ops("split", [x], axis=axis, sizes=tuple(sizes))


@onnx_op("Slice")
def slice_(cx):
    b, x = cx.b, cx.x(0)
    rank = x.type.rank
    if cx.version < 10:
        starts, ends = cx.a("starts"), cx.a("ends")
        axes = cx.a("axes", tuple(range(len(starts))))
        steps = (1,) * len(starts)
        vals = (starts, ends, axes, steps)
    else:
        vals = [b.ints(cx.x(i)) for i in range(1, 5)]
        if cx.x(3) is None:
            vals[2] = tuple(range(len(vals[0]))) if vals[0] is not None else None
        if cx.x(4) is None:
            vals[3] = (1,) * len(vals[0]) if vals[0] is not None else None
    if all(v is not None for v in vals):
        starts, ends, axes, steps = vals
        axes = tuple(norm_axis(a, rank) for a in axes)
        if not axes:
            return x
        return b.op("slice", x, starts=tuple(starts), ends=tuple(ends), axes=axes, steps=tuple(steps))
    starts = _as_i64(b, cx.x(1))
    n = starts.shape[0]
    ends = _as_i64(b, cx.x(2))
    axes = _as_i64(b, cx.x(3)) if cx.x(3) is not None else _i64(b, list(range(n)))
    steps = _as_i64(b, cx.x(4)) if cx.x(4) is not None else _i64(b, [1] * n)
    return b.op_refined("slice_dynamic", x, starts, ends, axes, steps,
                        shape=_sliced_dims(x, b.dims(starts), b.dims(ends), vals[2], vals[3]))


def _sliced_dims(x, starts, ends, axes, steps):
    """The result dims of a slice whose bounds are known as dims (symbols included), or None.

    A symbolic bound is taken to lie inside the dim, as exporters' shape guards ensure."""
    if starts is None or ends is None or axes is None or steps is None:
        return None
    out = list(x.shape)
    touched = set()
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = norm_axis(a, x.type.rank)
        touched.add(a)
        d = x.shape[a]
        if all(isinstance(v, int) for v in (s, e, d)):
            out[a] = len(range(*slice(s, e, st).indices(d)))
        elif st == 1 and isinstance(s, int) and 0 <= s and (not isinstance(e, int) or e >= 0) and Q not in (e,):
            out[a] = D.sub(d, s) if isinstance(e, int) and e >= 2 ** 62 else D.sub(e, s)
        else:
            out[a] = Q
    return out


@onnx_op("Gather")
def gather(cx):
    b, x, idx = cx.b, cx.x(0), cx.x(1)
    return b.op("gather", x, idx, axis=norm_axis(cx.a("axis", 0), x.type.rank))


@onnx_op("GatherElements")
def gather_elements(cx):
    x = cx.x(0)
    return cx.b.op("gather_elements", x, cx.x(1), axis=norm_axis(cx.a("axis", 0), x.type.rank))


@onnx_op("GatherND")
def gather_nd(cx):
    return cx.b.op("gather_nd", cx.x(0), cx.x(1), batch_dims=cx.a("batch_dims", 0))


@onnx_op("ScatterElements", "Scatter")
def scatter_elements(cx):
    x = cx.x(0)
    return cx.b.op("scatter_elements", x, cx.x(1), cx.x(2), axis=norm_axis(cx.a("axis", 0), x.type.rank),
                   reduction=cx.a("reduction", "none"))


@onnx_op("ScatterND")
def scatter_nd(cx):
    return cx.b.op("scatter_nd", cx.x(0), cx.x(1), cx.x(2), reduction=cx.a("reduction", "none"))


def expand_to(b, x, target, runtime=None):
    """Broadcast x against an ONNX Expand target (dims); static when the result is known."""
    if target is not None:
        rank = max(x.type.rank, len(target))
        xs = (1,) * (rank - x.type.rank) + tuple(x.shape)
        ts = (1,) * (rank - len(target)) + tuple(target)
        out = []
        for a, t in zip(xs, ts):
            if a == 1:
                out.append(t)
            elif t == 1 or D.same(a, t):
                out.append(a)
            elif isinstance(a, int) and isinstance(t, int):
                raise LeptoncError(f"Expand: shape {list(x.shape)} does not broadcast to {list(target)}")
            else:
                out.append(t if isinstance(t, int) else a if isinstance(a, int) else Q)
        if Q not in out:
            return x if tuple(out) == tuple(x.shape) else b.op("broadcast_to", x, shape=tuple(out))
    if runtime is None:
        runtime = _i64(b, target)
    return b.op_refined("expand_dynamic", x, _as_i64(b, runtime), shape=None if target is None else out)


@onnx_op("Expand")
def expand(cx):
    b, s = cx.b, cx.x(1)
    return expand_to(b, cx.x(0), b.dims(s), runtime=s)


@onnx_op("Tile")
def tile(cx):
    b, x, r = cx.b, cx.x(0), cx.x(1)
    reps = b.ints(r)
    if reps is not None:
        return x if all(v == 1 for v in reps) else b.op("tile", x, repeats=reps)
    return b.op("tile_dynamic", x, _as_i64(b, r))


@onnx_op("Pad")
def pad(cx):
    b, x = cx.b, cx.x(0)
    rank = x.type.rank
    mode = cx.a("mode", "constant")
    if cx.version < 11:
        pads, value, axes = tuple(cx.a("pads")), cx.a("value", 0.0), tuple(range(rank))
        pads_v = value_v = axes_v = None
    else:
        pads_v, value_v, axes_v = cx.x(1), cx.x(2), cx.x(3)
        pads = b.ints(pads_v)
        kv = b.known(value_v) if value_v is not None else np.zeros((), x.dtype.numpy)
        value = None if kv is None else (kv.reshape(-1)[0].item() if kv.size else 0)
        axes = b.ints(axes_v) if axes_v is not None else tuple(range(rank))
    if pads is not None and value is not None and axes is not None:
        axes = [norm_axis(a, rank) for a in axes]
        if len(pads) != 2 * len(axes):
            raise LeptoncError(f"{len(pads)} pads for {len(axes)} axes (a begin and an end for each)")
        full = [0] * (2 * rank)
        for i, a in enumerate(axes):
            full[a], full[a + rank] = pads[i], pads[i + len(axes)]
        if not any(full):
            return x
        if isinstance(value, int) and abs(value) > 2 ** 53:
            unsupported(cx, "an integer pad value beyond 2**53")
        return b.op("pad", x, pads=tuple(full), mode=mode, value=float(value))
    if value_v is None:
        value_v = b.scalar(value or 0, x.dtype)
    if axes_v is None:
        axes_v = _i64(b, list(axes))
    pads_v = pads_v if pads_v is not None else _i64(b, pads)
    return b.op("pad_dynamic", x, _as_i64(b, pads_v), value_v, _as_i64(b, axes_v), mode=mode)


@onnx_op("Range")
def range_(cx):
    b = cx.b
    start, limit, delta = cx.x(0), cx.x(1), cx.x(2)
    vals = [b.known(v) for v in (start, limit, delta)]
    if any(v is None for v in vals):
        shape = None
        s0, lim, d0 = (b.dims(v) if v.dtype.is_int else None for v in (start, limit, delta))
        if s0 and lim and d0 and len(lim) == 1 and d0 == (1,) and isinstance(s0[0], int):
            shape = (D.sub(lim[0], s0[0]),)  # a size-valued limit is >= start
        return b.op_refined("range_dynamic", start, limit, delta, shape=shape)
    s, l, d = (v.reshape(()) for v in vals)
    n = max(int(np.ceil((float(l) - float(s)) / float(d))), 0)
    if n <= 4096:  # as the ONNX reference computes it: start + i * delta in the operands' dtype
        return b.const((s + d * np.arange(n).astype(s.dtype)).astype(start.dtype.numpy))
    return b.op("range", start=float(s), limit=float(l), delta=float(d), dtype=start.dtype)


@onnx_op("OneHot")
def one_hot(cx):
    b = cx.b
    idx, depth, values = cx.x(0), cx.x(1), cx.x(2)
    rank = idx.type.rank + 1
    axis = norm_axis(cx.a("axis", -1), rank)
    dk = b.known(depth)
    idx = b.cast(idx, DType.i64) if not idx.dtype.is_int or idx.dtype is not DType.i64 else idx
    if idx.dtype is not DType.i64:
        idx = b.cast(idx, DType.i64)
    if dk is not None:
        d = int(dk.reshape(-1)[0])
        classes = b.const(np.arange(d, dtype=np.int64))
        dv = b.const(np.array(d, np.int64))
    else:
        dv = b.cast(b.reshape(depth, ()) if depth.type.rank else depth, DType.i64)
        if depth.dtype.is_float:
            dv = b.cast(b.op("floor", b.reshape(depth, ()) if depth.type.rank else depth), DType.i64)
        classes = b.op("range_dynamic", b.const(np.array(0, np.int64)), dv, b.const(np.array(1, np.int64)))
    idx = b.op("where", b.op("less", idx, b.const(np.array(0, np.int64))), b.op("add", idx, dv), idx)
    idx = b.op("unsqueeze", idx, axes=(axis,))
    classes = b.op("unsqueeze", classes, axes=tuple(range(1, rank - axis))) if rank - axis > 1 else classes
    eq = b.op("equal", idx, classes)
    off = b.op("gather", values, b.const(np.array(0, np.int64)), axis=0)
    on = b.op("gather", values, b.const(np.array(1, np.int64)), axis=0)
    return b.op("where", eq, on, off)


@onnx_op("NonZero")
def nonzero(cx):
    return cx.b.op("nonzero", cx.x(0))


@onnx_op("Unique")
def unique(cx):
    axis = cx.a("axis")
    x = cx.x(0)
    return cx.b.ops("unique", [x], axis=None if axis is None else norm_axis(axis, x.type.rank),
                    sorted=bool(cx.a("sorted", 1)))


@onnx_op("Compress")
def compress(cx):
    b, x, cond = cx.b, cx.x(0), cx.x(1)
    axis = cx.a("axis")
    if axis is None:
        x = b.reshape(x, (D.product(x.shape),)) if D.product(x.shape) != Q else \
            b.op("reshape_dynamic", x, _i64(b, [-1]))
        axis = 0
    idx = b.op("squeeze", b.op("nonzero", cond), axes=(0,))
    return b.op("gather", x, idx, axis=norm_axis(axis, x.type.rank))


@onnx_op("CumSum", "CumProd")
def cumulative(cx):
    b, x = cx.b, cx.x(0)
    axis = b.ints(cx.x(1))
    flags = dict(exclusive=bool(cx.a("exclusive", 0)), reverse=bool(cx.a("reverse", 0)))
    if axis is None:
        return b.op("cumulative_dynamic", x, _as_i64(b, cx.x(1)), kind="sum" if cx.op_type == "CumSum" else "prod",
                    **flags)
    return b.op("cumsum" if cx.op_type == "CumSum" else "cumprod", x, axis=norm_axis(axis[0], x.type.rank), **flags)


@onnx_op("TopK")
def topk(cx):
    b, x = cx.b, cx.x(0)
    axis = norm_axis(cx.a("axis", -1), x.type.rank)
    largest, sorted_ = bool(cx.a("largest", 1)), bool(cx.a("sorted", 1))
    k = b.ints(cx.x(1)) if cx.version >= 10 else (cx.a("k"),)
    if k is not None:
        return b.ops("topk", [x], k=k[0], axis=axis, largest=largest, sorted=sorted_)
    return b.ops("topk_dynamic", [x, _as_i64(b, cx.x(1))], axis=axis, largest=largest, sorted=sorted_)


@onnx_op("ReverseSequence")
def reverse_sequence(cx):
    x = cx.x(0)
    return cx.b.op("reverse_sequence", x, cx.x(1), batch_axis=norm_axis(cx.a("batch_axis", 1), x.type.rank),
                   time_axis=norm_axis(cx.a("time_axis", 0), x.type.rank))


@onnx_op("Trilu")
def trilu(cx):
    b, x, k = cx.b, cx.x(0), cx.x(1)
    upper = bool(cx.a("upper", 1))
    if k is None:
        return b.op("trilu", x, upper=upper)
    kv = b.ints(k)
    if kv is not None:
        return b.op("trilu", x, upper=upper, diagonal=kv[0])
    return b.op("trilu", x, b.cast(k, DType.i64), upper=upper)


@onnx_op("DepthToSpace")
def depth_to_space(cx):
    b, x = cx.b, cx.x(0)
    bs = cx.a("blocksize")
    n, c, h, w = x.shape
    c2 = D.floordiv(c, bs * bs)
    if cx.a("mode", "DCR") == "DCR":
        t = b.reshape(x, (n, bs, bs, c2, h, w))
        t = b.op("transpose", t, perm=(0, 3, 4, 1, 5, 2))
    else:
        t = b.reshape(x, (n, c2, bs, bs, h, w))
        t = b.op("transpose", t, perm=(0, 1, 4, 2, 5, 3))
    return b.reshape(t, (n, c2, D.mul(h, bs), D.mul(w, bs)))


@onnx_op("SpaceToDepth")
def space_to_depth(cx):
    b, x = cx.b, cx.x(0)
    bs = cx.a("blocksize")
    n, c, h, w = x.shape
    t = b.reshape(x, (n, c, D.floordiv(h, bs), bs, D.floordiv(w, bs), bs))
    perm = (0, 1, 3, 5, 2, 4) if cx.a("mode", "DCR") == "CRD" else (0, 3, 5, 1, 2, 4)
    t = b.op("transpose", t, perm=perm)
    return b.reshape(t, (n, D.mul(c, bs * bs), D.floordiv(h, bs), D.floordiv(w, bs)))


@onnx_op("EyeLike")
def eye_like(cx):
    b, x = cx.b, cx.x(0)
    if not x.type.is_static:
        unsupported(cx, "the input's shape must be known")
    dt = dtype_of(cx.a("dtype"), "EyeLike ") if cx.a("dtype") is not None else x.dtype
    return b.const(np.eye(x.shape[0], x.shape[1], k=cx.a("k", 0), dtype=dt.numpy))


@onnx_op("Dropout")
def dropout(cx):
    b, x = cx.b, cx.x(0)
    training, ratio = cx.x(2), cx.x(1)
    if training is not None:
        t = b.known(training)
        r = b.known(ratio) if ratio is not None else np.array(0.5)
        zero = r is not None and float(r.reshape(-1)[0]) == 0.0
        if not zero and (t is None or bool(t.reshape(-1)[0])):
            ratio = ratio if ratio is not None else b.scalar(0.5, DType.f32)
            ratio = ratio if ratio.dtype.is_float else b.cast(ratio, DType.f32)
            return b.ops("dropout", [x, ratio, b.cast(training, DType.bool)], seed=cx.a("seed"))
    outs = [x]
    if cx.wants(1):
        outs.append(b.op("full", shape=x.shape, value=1.0, dtype=DType.bool) if Q not in x.shape else
                     b.op("full_dynamic", b.op("shape_of", x), value=True, dtype=DType.bool))
    return outs



@onnx_op("BitCast")
def bitcast(cx):
    return cx.b.op("bitcast", cx.x(0), dtype=dtype_of(cx.a("to"), "BitCast to "))


@onnx_op("TensorScatter")
def tensor_scatter(cx):
    b, cache, update, idx = cx.b, cx.x(0), cx.x(1), cx.x(2)
    axis = norm_axis(cx.a("axis", -2), cache.type.rank)
    if idx is None:
        idx = b.const(np.zeros(cache.shape[0] if isinstance(cache.shape[0], int) else 1, np.int64))
    return b.op("tensor_scatter", cache, update, b.cast(idx, DType.i64), axis=axis, mode=cx.a("mode", "linear"))


@onnx_op("TfIdfVectorizer")
def tfidf_vectorizer(cx):
    if cx.a("pool_strings"):
        unsupported(cx, "string pools (the IR has no string dtype)")
    return cx.b.op("tfidf_vectorizer", cx.x(0), min_gram_length=cx.a("min_gram_length"),
                   max_gram_length=cx.a("max_gram_length"), max_skip_count=cx.a("max_skip_count"), mode=cx.a("mode"),
                   ngram_counts=tuple(cx.a("ngram_counts")), ngram_indexes=tuple(cx.a("ngram_indexes")),
                   pool=tuple(cx.a("pool_int64s") or ()), weights=tuple(cx.a("weights") or ()))


# Optional values of tensors: a present one is the tensor itself (optional types as graph inputs or
# outputs, and empty optionals flowing between nodes, are not supported).
@onnx_op("OptionalHasElement")
def optional_has_element(cx):
    return cx.b.const(np.array(cx.x(0) is not None))


@onnx_op("OptionalGetElement", "Optional")
def optional_get_element(cx):
    if cx.x(0) is None:
        unsupported(cx, "an empty optional")
    return cx.x(0)
