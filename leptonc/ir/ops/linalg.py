"""matmul (numpy semantics: batch dims broadcast, 1-D operands promoted and squeezed)."""
from __future__ import annotations

import numpy as np

from .. import dims as D
from ..registry import PURE, define_op
from ..samples import op_samples
from ..types import TensorType
from .infer import broadcast_shapes, require, require_same, same_dtype


def _matmul_infer(a: TensorType, b: TensorType) -> TensorType:
    dtype = same_dtype(a, b)
    require(a.rank >= 1 and b.rank >= 1, "matmul operands must have rank >= 1")
    sa = a.shape if a.rank > 1 else (1,) + a.shape
    sb = b.shape if b.rank > 1 else b.shape + (1,)
    require_same(sa[-1], sb[-2], f"matmul contraction dims differ: {list(a.shape)} @ {list(b.shape)}")
    batch = broadcast_shapes(sa[:-2], sb[:-2])
    out = batch + ((sa[-2],) if a.rank > 1 else ()) + ((sb[-1],) if b.rank > 1 else ())
    return TensorType(dtype, out)


@define_op("matmul", arity=2, infer=_matmul_infer, traits=PURE | {"structured"}, fusion="anchor", precision="low")
def matmul(a, b):
    """a @ b; integer operands accumulate in their own type (as numpy does)."""
    if a.dtype.kind == "f" and a.dtype.itemsize < 4 or a.dtype.name == "bfloat16":
        return np.matmul(a.astype(np.float32), b.astype(np.float32)).astype(a.dtype)
    return np.matmul(a, b)


def _einsum_parse(equation: str, ranks):
    eq = equation.replace(" ", "")
    lhs, _, rhs = eq.partition("->")
    terms = lhs.split(",")
    require(len(terms) == len(ranks), f"einsum {equation!r} names {len(terms)} operands, got {len(ranks)}")
    for term, r in zip(terms, ranks):
        if "..." in term:
            require(r >= len(term) - 3, f"einsum term {term!r} does not fit rank {r}")
        else:
            require(len(term) == r, f"einsum term {term!r} does not fit rank {r}")
    return terms, rhs if "->" in eq else None


def einsum_terms(equation: str, ranks) -> tuple[list[str], str]:
    """The operand terms and the result term, with each "..." spelled as digits (one per dim)."""
    lhs, arrow, rhs = equation.replace(" ", "").partition("->")
    terms = lhs.split(",")
    ell_ranks = [r - (len(t) - 3) for t, r in zip(terms, ranks) if "..." in t]
    ell = "0123456789"[:max(ell_ranks, default=0)]
    spelled = [t.replace("...", ell[len(ell) - (r - (len(t) - 3)):]) if "..." in t else t
               for t, r in zip(terms, ranks)]
    if arrow:
        return spelled, rhs.replace("...", ell)
    counts = {c: sum(t.count(c) for t in spelled) for t in spelled for c in t}
    return spelled, ell + "".join(sorted(c for c, k in counts.items() if k == 1 and not c.isdigit()))


def _einsum_infer(*ts: TensorType, equation) -> TensorType:
    dtype = same_dtype(*ts)
    terms, rhs = _einsum_parse(equation, [t.rank for t in ts])
    sizes: dict = {}
    ell: list = []
    for term, t in zip(terms, ts):
        dims = list(t.shape)
        if "..." in term:
            pre, post = term.split("...")
            n = t.rank - len(pre) - len(post)
            e = dims[len(pre):len(pre) + n]
            ell = list(broadcast_shapes(tuple(ell), tuple(e)))
            term = pre + post
            dims = dims[:len(pre)] + dims[len(pre) + n:]
        for ch, d in zip(term, dims):
            if ch not in sizes or sizes[ch] == 1:
                sizes[ch] = d
    if rhs is None:
        counts = {}
        for term in terms:
            for ch in term.replace("...", ""):
                counts[ch] = counts.get(ch, 0) + 1
        rhs = ("..." if any("..." in t for t in terms) else "") + "".join(sorted(c for c, k in counts.items() if k == 1))
    pre, _, post = rhs.partition("...")
    out = [sizes[c] for c in pre] + (list(ell) if "..." in rhs else []) + [sizes[c] for c in post]
    return TensorType(dtype, tuple(out))


@define_op("einsum", arity=(1, None), infer=_einsum_infer, attrs={"equation": "str"}, traits=PURE | {"structured"},
           precision="low")
def einsum(*xs, equation):
    """numpy.einsum (low-precision floats accumulate in f32)."""
    dt = xs[0].dtype
    if dt.kind == "f" and dt.itemsize < 4 or dt.name == "bfloat16":
        return np.asarray(np.einsum(equation, *[x.astype(np.float32) for x in xs])).astype(dt)
    return np.asarray(np.einsum(equation, *xs)).astype(dt)


def _det_infer(t: TensorType) -> TensorType:
    require(t.rank >= 2 and D.compatible(t.shape[-1], t.shape[-2]), f"det needs square matrices, got {t}")
    require(t.dtype.is_float, "det needs a float type")
    return t.with_shape(t.shape[:-2])


@define_op("det", infer=_det_infer)
def det(x):
    """Determinant of the last two dims."""
    return np.asarray(np.linalg.det(x.astype(np.float64))).astype(x.dtype)


@op_samples
def _samples(s):
    return {
        "matmul": [
            s(s.f32(3, 4), s.f32(4, 5)),
            s(s.f32(2, 3, 4), s.f32(4, 5)),
            s(s.f32(2, 3, 4), s.f32(2, 4, 5)),
            s(s.f32(3, 4), s.f32(2, 4, 5)),
            s(s.f32(2, 1, 3, 4), s.f32(5, 4, 2)),
            s(s.f32(4), s.f32(4, 5)),
            s(s.f32(2, 3, 4), s.f32(4)),
            s(s.f32(4), s.f32(4)),
            s(s.ints(3, 4, dtype=np.int32), s.ints(4, 2, dtype=np.int32)),
        ],
        "einsum": [
            s(s.f32(2, 3, 4), s.f32(2, 4, 5), equation="bij,bjk->bik"),
            s(s.f32(3, 4), s.f32(4, 5), equation="ij,jk"),
            s(s.f32(4, 4), equation="ii->"),
            s(s.f32(3, 4, 4), equation="bii->bi"),
            s(s.f32(3, 4), equation="ij->ji"),
            s(s.f32(2, 3), s.f32(3), s.f32(3, 4), equation="ij,j,jk->ik"),
            s(s.f32(2, 1, 3, 4), s.f32(5, 4, 6), equation="...ij,...jk->...ik"),
            s(s.f32(3), s.f32(4), equation="i,j->ij"),
            s(s.f32(3, 5), s.f32(5), equation="ij,j"),
        ],
        "det": [
            s(s.f32(3, 3)),
            s(s.f32(2, 4, 4)),
            s(np.array([[1, 2], [2, 4]], np.float32)),
            s(np.array([[0, 1, 2], [1, 0, 3], [4, -3, 8]], np.float32)),
        ],
    }
