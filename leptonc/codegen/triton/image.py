"""Triton bodies of the image ops resize, affine_grid and grid_sample: each result element computed in double,
as the reference interpreter (leptonc/ir/ops/image.py) does, and rounded to the result's type at the end.

Resize: the reference (leptonc/ir/ops/image.py) resizes one axis after the other, in double: along each resized
axis, a position's source coordinate (the coordinate transform), its taps (neighbour indices, clipped to
the axis) and their weights (nearest, linear or cubic, optionally antialiased, optionally excluding the
taps outside), then the weighted sum, replaced by the extrapolation value where a tf_crop_and_resize
coordinate falls outside. Here one element is the same nested sum (the first resized axis innermost), with
every per-axis constant computed at compile time, so the sums run in the reference's order. A resized axis
needs known sizes; an axis the reference leaves alone (scale 1, same size, whole roi) is read through.
"""
from __future__ import annotations

import math

import numpy as np

from ...ir import dims as D
from ...ir.dtypes import DType
from ...ir.graph import Node
from ..kernel_body import elementwise
from .texpr import TRITON, UnsupportedError, tltype


def _f(value: float) -> str:
    return repr(float(value))


class _Axis:
    """The lines computing one resized axis's tap indices i{a}_{t} and weights w{a}_{t} (f64) from the
    result index `o`, and its extrapolation condition (or None)."""

    def __init__(self, a: int, o: str, in_n: int, out_n: int, scale: float, roi, at: dict, lines: list[str]):
        self.a, self.lines = a, lines
        ctm, mode = at["coordinate_transformation_mode"], at["mode"]
        y, x = self.let("y", f"{o}.to(tl.float64)"), None
        out_w = scale * in_n
        self.extrapolated = None
        if ctm == "align_corners":
            x = f"0.0 * {y}" if out_w == 1 else f"{y} * {_f(in_n - 1)} / {_f(out_w - 1)}"
        elif ctm == "asymmetric":
            x = f"{y} / {_f(scale)}"
        elif ctm == "tf_crop_and_resize":
            lo, hi = roi
            base = f"0.0 * {y} + {_f((hi - lo) * (in_n - 1) / 2)}" if out_w == 1 else \
                f"{y} * {_f(hi - lo)} * {_f(in_n - 1)} / {_f(out_w - 1)}"
            x = f"({base}) + {_f(lo * (in_n - 1))}"
        elif ctm == "pytorch_half_pixel":
            x = f"0.0 * {y} - 0.5" if out_w == 1 else f"({y} + 0.5) / {_f(scale)} - 0.5"
        elif ctm == "half_pixel":
            x = f"({y} + 0.5) / {_f(scale)} - 0.5"
        else:  # half_pixel_symmetric
            x = f"{_f(in_n / 2 * (1 - out_n / out_w))} + ({y} + 0.5) / {_f(scale)} - 0.5"
        x = self.let("x", x)
        if ctm == "tf_crop_and_resize":
            self.extrapolated = self.let("ex", f"({x} < 0.0) | ({x} > {_f(in_n - 1)})")
        xi = self.let("xi", f"tl.floor({x})")
        r = self.let("r", f"tl.where({x} == {xi}, 1.0, {x} - {xi})")
        weights = self.weights(r, scale, mode, at["nearest_mode"], float(at["cubic_coeff_a"]), at["antialias"])
        n = len(weights)
        pad = math.ceil(n / 2)
        xp = self.let("xp", f"{x} + {_f(pad)}")
        p = self.let("p", f"tl.floor({xp})")
        frac = f"({xp} - {p})"
        if n % 2 == 0:
            start = f"{p} + tl.where({frac} == 0.0, {_f(-(n // 2))}, {_f(-(n // 2) + 1)})"
        else:
            start = f"{p} + tl.where({frac} <= 0.5, {_f(-((n - 1) // 2))}, {_f(-((n - 1) // 2) + 1)})"
        start = self.let("st", f"({start}).to(tl.int64)")
        idx = [self.let(f"j_{t}", f"{start} + {t - pad}") for t in range(n)]
        if at["exclude_outside"]:
            weights = [self.let(f"w_{t}", f"tl.where(({j} < 0) | ({j} >= {in_n}), 0.0, {w})")
                       for t, (j, w) in enumerate(zip(idx, weights))]
            total = self.let("tot", " + ".join(weights))
            weights = [self.let(f"w_{t}", f"{w} / tl.where({total} == 0.0, 1.0, {total})")
                       for t, w in enumerate(weights)]
        self.weights_ = [self.let(f"w{t}", w) for t, w in enumerate(weights)]
        self.indices = [self.let(f"i{t}", f"tl.minimum(tl.maximum({j}, 0), {in_n - 1})") for t, j in enumerate(idx)]

    def let(self, name: str, expr: str) -> str:
        var = f"{name}_a{self.a}"
        self.lines.append(f"{var} = {expr}")
        return var

    def weights(self, r: str, scale: float, mode: str, nearest: str, a: float, antialias: bool) -> list[str]:
        if mode == "nearest":
            if nearest == "ceil":
                return [f"(0.0 * {r})", f"(0.0 * {r} + 1.0)"]
            left = f"({r} {'<=' if nearest == 'round_prefer_floor' else '<'} 0.5) & " \
                if nearest.startswith("round") else ""
            left = self.let("left", f"{left}({r} != 1.0)")
            return [f"tl.where({left}, 1.0, 0.0)", f"tl.where({left}, 0.0, 1.0)"]
        if not antialias:
            if mode == "linear":
                return [f"(1.0 - {r})", r]
            rr, q = self.let("rr", f"{r} + 1.0"), self.let("q", f"1.0 - {r}")
            q1 = self.let("q1", f"{q} + 1.0")
            return [f"((({_f(a)} * {rr} - {_f(5 * a)}) * {rr} + {_f(8 * a)}) * {rr} - {_f(4 * a)})",
                    f"((({_f(a + 2)} * {r} - {_f(a + 3)}) * {r}) * {r} + 1.0)",
                    f"((({_f(a + 2)} * {q} - {_f(a + 3)}) * {q}) * {q} + 1.0)",
                    f"((({_f(a)} * {q1} - {_f(5 * a)}) * {q1} + {_f(8 * a)}) * {q1} - {_f(4 * a)})"]
        s = min(scale, 1.0)
        reach = 1 if mode == "linear" else 2
        start = int(np.floor(-reach / s) + 1)
        raw = []
        for t, k in enumerate(range(start, 2 - start)):
            u = self.let(f"u{t}", f"({_f(k)} - {r}) * {_f(s)}")
            if mode == "linear":
                raw.append(self.let(f"c{t}", f"tl.minimum(tl.maximum(1.0 - tl.abs({u}), 0.0), 1.0)"))
            else:
                z = self.let(f"z{t}", f"tl.abs({u})")
                near = f"{_f(a + 2)} * ({z} * {z} * {z}) - {_f(a + 3)} * ({z} * {z}) + 1.0"
                far = f"{_f(a)} * ({z} * {z} * {z}) - {_f(5 * a)} * ({z} * {z}) + {_f(8 * a)} * {z} - {_f(4 * a)}"
                raw.append(self.let(f"c{t}", f"tl.where({z} <= 1.0, {near}, tl.where({z} < 2.0, {far}, 0.0))"))
        total = self.let("sum", " + ".join(raw))
        return [f"({c} / {total})" for c in raw]


def _known(dim, ctx, what: str) -> int:
    if not isinstance(dim, int):
        raise UnsupportedError(f"{ctx.where}: resize along an axis of run-time size {dim} ({what}) is not "
                               "supported by the triton target (the cpu target runs it)")
    return dim


def resize_body(ctx, node: Node, space, body: list[str], offset) -> None:
    """Lines storing resize's result element at each position of `space`; offset(index_of) is the flat
    offset into x of the element whose index along axis a is index_of(a)."""
    x, y = node.inputs[0], node.outputs[0]
    at = node.attrs
    rank = x.type.rank
    roi = list(at["roi"]) or None
    axes: dict[int, _Axis] = {}
    for a in range(rank):
        s = float(at["scales"][a])  # 0: the result's size over the input's
        if not s:
            s = 1.0 if D.same(x.shape[a], y.shape[a]) else \
                _known(y.shape[a], ctx, "result") / _known(x.shape[a], ctx, "input")
        axis_roi = None if roi is None else (roi[a], roi[a + rank])
        whole = axis_roi is None or (math.isclose(axis_roi[0], 0.0) and math.isclose(axis_roi[1], 1.0))
        if math.isclose(s, 1.0) and D.same(x.shape[a], y.shape[a]) and whole:
            continue
        in_n, out_n = _known(x.shape[a], ctx, "input"), _known(y.shape[a], ctx, "result")
        if in_n == 0 and out_n > 0:
            raise UnsupportedError(f"{ctx.where}: resize reads axis {a} of size 0 (no element to interpolate)")
        axes[a] = _Axis(a, space.index(a)[0], in_n, out_n, s, axis_roi, at, body)
    order = sorted(axes)
    counter = iter(range(1 << 30))

    def nested(k: int, chosen: dict) -> str:
        """The value after resizing the first k resized axes, at the taps `chosen` of the others."""
        if k == 0:
            off = offset(lambda a: chosen.get(a, space.index(a)[0]))
            var = f"e{next(counter)}"
            body.append(f"{var} = tl.load({ctx.ptr(x)} + {off}, mask=mask, other=0).to(tl.float64)")
            return var
        ax = axes[order[k - 1]]
        terms = [f"{nested(k - 1, {**chosen, ax.a: i})} * {w}" for i, w in zip(ax.indices, ax.weights_)]
        var = f"s{next(counter)}"
        body.append(f"{var} = {terms[0]}")
        body.extend(f"{var} = {var} + {t}" for t in terms[1:])
        if ax.extrapolated:
            body.append(f"{var} = tl.where({ax.extrapolated}, {_f(at['extrapolation_value'])}, {var})")
        return var

    value = nested(len(order), {})
    body.append(space.store(ctx.ptr(y), y.shape, _from_double(value, y.dtype, body, ctx.where)))


def _from_double(value: str, dtype: DType, body: list[str], where: str) -> str:
    """A double as dtype, the way the reference's astype does; integers rounded half to even and clipped."""
    if dtype.is_float:
        return f"{value}.to({tltype(dtype, where)})"
    if dtype is DType.bool:
        return f"({value} != 0.0)"
    info = np.iinfo(dtype.numpy)

    def bind(expr: str, _dtype: DType) -> str:
        body.append(f"rd{len(body)} = {expr}")
        return f"rd{len(body) - 1}"
    rounded = elementwise(TRITON, "round", {}, [value], [DType.f64], DType.f64, bind=bind)
    return f"tl.minimum(tl.maximum({rounded}, {_f(info.min)}), {_f(info.max)}).to({tltype(dtype, where)})"


def affine_grid_body(ctx, node: Node, space, body: list[str]) -> None:
    """Lines storing affine_grid's element (n, spatial..., j) at each position of `space`: the affine map j
    of theta[n] applied, in double, to the normalized coordinates of the spatial position (x the innermost
    axis), as the reference's einsum over (x, y, [z], 1) does."""
    theta, y = node.inputs[0], node.outputs[0]
    size = node.attrs["size"]
    nsp = len(size) - 2
    n, j = space.index(0)[0], space.index(nsp + 1)[0]
    terms = []
    for k in range(nsp):  # component k runs along spatial axis nsp - 1 - k
        s, i = int(size[2 + nsp - 1 - k]), space.index(1 + nsp - 1 - k)[0]
        if not node.attrs["align_corners"]:
            c = f"(({i}.to(tl.float64) * 2.0 + 1.0) / {_f(s)} - 1.0)"
        elif s == 1:
            c = f"(0.0 * {i} - 1.0)"
        else:  # numpy.linspace(-1, 1, s): i * step - 1, the last exactly 1
            c = f"tl.where({i} == {s - 1}, 1.0, {i}.to(tl.float64) * {_f(2 / (s - 1))} + -1.0)"
        terms.append(c)
    terms.append("1.0")
    body.append(f"row = {ctx.ptr(theta)} + ({n} * {nsp} + {j}) * {nsp + 1}")
    loads = [f"{c} * tl.load(row + {k}, mask=mask, other=0).to(tl.float64)" for k, c in enumerate(terms)]
    body.append(f"g = {loads[0]}")
    body.extend(f"g = g + {t}" for t in loads[1:])
    body.append(space.store(ctx.ptr(y), y.shape, f"g.to({tltype(y.dtype, ctx.where)})"))


def grid_sample_body(ctx, node: Node, space, body: list[str]) -> None:
    """Lines storing grid_sample's element (n, c, out...) at each position of `space`, in double as the
    reference: the grid's coordinates unnormalized and padded, then the nearest, linear (2 per axis) or cubic
    (4 per axis) taps summed corner by corner in the reference's order; a tap outside x reads 0."""
    x, grid, y = node.inputs[0], node.inputs[1], node.outputs[0]
    at = node.attrs
    nsp = x.type.rank - 2
    sizes = [_known(d, ctx, "input") for d in x.shape[2:]][::-1]  # the grid's order: innermost first
    n, c = space.index(0)[0], space.index(1)[0]
    points = 1
    for d in y.shape[2:]:
        points = points * _known(d, ctx, "result")
    body.append(f"gp = ({n} * {points} + f % {points}) * {nsp}")
    coords = []
    for i, size in enumerate(sizes):
        g = f"tl.load({ctx.ptr(grid)} + gp + {i}, mask=mask, other=0).to(tl.float64)"
        body.append(f"c{i} = ({g} + 1.0) / 2.0 * {_f(size - 1)}" if at["align_corners"] else
                    f"c{i} = (({g} + 1.0) * {_f(size)} - 1.0) / 2.0")
        if at["padding_mode"] == "border":
            body.append(f"c{i} = tl.minimum(tl.maximum(c{i}, 0.0), {_f(size - 1)})")
        elif at["padding_mode"] == "reflection":
            if at["align_corners"]:
                body.append(f"c{i} = {_reflect(f'c{i}', 0.0, size - 1.0)}")
            else:
                body.append(f"c{i} = tl.minimum(tl.maximum({_reflect(f'c{i}', -0.5, size - 0.5)}, 0.0), "
                            f"{_f(size - 1)})")
        coords.append(f"c{i}")
    counter = iter(range(1 << 30))

    def fetch(idx: list[str]) -> str:
        valid = " & ".join(f"({j} >= 0) & ({j} < {s})" for j, s in zip(idx, sizes))
        clipped = [f"tl.minimum(tl.maximum({j}, 0), {s - 1})" for j, s in zip(idx, sizes)]
        off = f"({n} * {ctx.d(x.shape[1])} + {c})"
        for d, j in zip(x.shape[2:], clipped[::-1]):  # x's dim order: outermost spatial dim first
            off = f"({off} * {d} + {j})"
        var = f"t{next(counter)}"
        body.append(f"{var} = tl.load({ctx.ptr(x)} + {off}, mask=mask & {valid}, other=0).to(tl.float64)")
        return var

    def bind(expr: str, _dtype: DType) -> str:
        body.append(f"rn{len(body)} = {expr}")
        return f"rn{len(body) - 1}"

    mode = at["mode"]
    if mode == "nearest":
        idx = []
        for i, ci in enumerate(coords):
            body.append(f"j{i} = ({elementwise(TRITON, 'round', {}, [ci], [DType.f64], DType.f64, bind=bind)})"
                        ".to(tl.int64)")
            idx.append(f"j{i}")
        value = fetch(idx)
    else:
        taps = 2 if mode == "linear" else 4
        weights = []
        for i, ci in enumerate(coords):
            body.append(f"b{i} = tl.floor({ci})")
            body.append(f"fr{i} = {ci} - b{i}")
            if mode == "linear":
                weights.append([f"(1.0 - fr{i})", f"fr{i}"])
            else:
                a = -0.75
                body += [f"p{i} = fr{i} + 1.0", f"q{i} = 1.0 - fr{i}", f"r{i} = q{i} + 1.0"]
                weights.append([f"((({_f(a)} * p{i} - {_f(5 * a)}) * p{i} + {_f(8 * a)}) * p{i} - {_f(4 * a)})",
                                f"((({_f(a + 2)} * fr{i} - {_f(a + 3)}) * fr{i}) * fr{i} + 1.0)",
                                f"((({_f(a + 2)} * q{i} - {_f(a + 3)}) * q{i}) * q{i} + 1.0)",
                                f"((({_f(a)} * r{i} - {_f(5 * a)}) * r{i} + {_f(8 * a)}) * r{i} - {_f(4 * a)})"])
        body.append("acc = 0.0 * c0")
        for corner in np.ndindex(*(taps,) * nsp):
            w, idx = "1.0", []
            for i, k in enumerate(corner):
                w = f"({w} * {weights[i][k]})"
                j = f"b{i}.to(tl.int64) + {k - (0 if mode == 'linear' else 1)}"
                if mode == "cubic" and at["padding_mode"] == "border":
                    j = f"tl.minimum(tl.maximum({j}, 0), {sizes[i] - 1})"
                elif mode == "cubic" and at["padding_mode"] == "reflection":
                    lo, hi = (0.0, sizes[i] - 1.0) if at["align_corners"] else (-0.5, sizes[i] - 0.5)
                    body.append(f"rf = {_reflect(f'({j}).to(tl.float64)', lo, hi)}")
                    rounded = elementwise(TRITON, "round", {}, ["rf"], [DType.f64], DType.f64, bind=bind)
                    j = f"tl.minimum(tl.maximum(({rounded}).to(tl.int64), 0), {sizes[i] - 1})"
                var = f"ix{next(counter)}"
                body.append(f"{var} = {j}")
                idx.append(var)
            body.append(f"acc = acc + {fetch(idx)} * {w}")
        value = "acc"
    body.append(space.store(ctx.ptr(y), y.shape, f"{value}.to({tltype(y.dtype, ctx.where)})"))


def _reflect(c: str, lo: float, hi: float) -> str:
    """The reference's reflection of coordinate c into [lo, hi] (an expression; lo where the span is empty)."""
    span = hi - lo
    if span <= 0:
        return f"(0.0 * {c} + {_f(lo)})"
    d = f"tl.abs({c} - {_f(lo)})"
    flips = f"tl.floor({d} / {_f(span)})"
    rest = f"({d} - {flips} * {_f(span)})"
    even = f"({flips} - 2.0 * tl.floor({flips} / 2.0) == 0.0)"
    return f"tl.where({even}, {_f(lo)} + {rest}, {_f(hi)} - {rest})"
