"""Tiles: where a Triton program's elements sit in a kernel's domain, and the fused ops computed on them.

A `Space` gives, for each dim of a kernel's iteration domain, the index
expression of the program's tile along it: a vector (`f // 128 % 4` in a flat
elementwise kernel, `rm[:, None]` in a matmul epilogue, the row-local `j` in a
row kernel) or a scalar (the row index of a row kernel, the batch index of a
batched matmul). An operand of the kernel, broadcast to the domain, is read at
the sum of the indices of its non-broadcast dims times its strides; an
operand that uses only scalar indices is one scalar load per program.

`TileEmitter` emits the fused elementwise ops and trailing-axis reductions of
a kernel (a loop kernel's body, or a matmul/conv epilogue) over a Space: loads
of external operands, one assignment per IR op, reductions over the row, and
the stores of the values the kernel materializes.
"""
from __future__ import annotations

import numpy as np

from ...ir import dims as D
from ...ir.dtypes import DType
from ...ir.graph import Graph, Node, Value
from ...passes.fusion import REDUCTIONS
from ...ir.dims import contiguous_strides
from ..kernel_body import constant_exponent, elementwise, reduction_identity
from .texpr import TRITON, UnsupportedError, literal, tdim, tltype



def _same(a, b) -> bool:
    return len(a) == len(b) and all(D.same(x, y) for x, y in zip(a, b))


def pad_left(shape, rank) -> tuple:
    return (1,) * (rank - len(shape)) + tuple(shape)



class Space:
    """The index of a program's tile along each domain dim; index variables are defined on first use."""

    def __init__(self, domain, lines: list[str], where: str, prefix: str = "i"):
        self.domain = tuple(domain)
        self.prefix = prefix               # of the index variables (two spaces in one kernel use two)
        self.rank = len(self.domain)
        self.lines, self.where = lines, where
        self.flat: str | None = None      # the row-major element index over the whole domain, if the tile has one
        self.mask: str | None = None      # which tile elements lie inside the domain
        self._index: dict[int, tuple[str, bool]] = {}   # dim -> (expression, is a vector)
        self._rules: dict[int, tuple[str, bool]] = {}   # dim -> (definition, is a vector), defined lazily
        self._axes: set[int] = set()      # dims indexed along an axis of a 2-D tile (`rm[:, None]`)

    def define(self, dim: int, expr: str, vector: bool, axis: bool = False) -> None:
        """Index of `dim` is `expr` (assigned to a variable when first used); `axis`: expr runs along one
        axis of a 2-D tile, which every store's pointer must span even where the dim has extent 1."""
        self._rules[dim] = (expr, vector)
        if axis:
            self._axes.add(dim)

    def unravel(self, dims: range, linear: str, vector: bool) -> None:
        """The dims in `dims` are the row-major unravelling of the index `linear` over them."""
        for d in dims:
            inner = D.product(self.domain[d + 1:dims.stop])
            expr = linear if D.same(inner, 1) else f"({linear} // {tdim(inner, self.where)})"
            if d != dims.start:
                expr = f"({expr} % {tdim(self.domain[d], self.where)})"
            self.define(d, expr, vector)

    def index(self, dim: int) -> tuple[str, bool]:
        if dim not in self._index:
            expr, vector = self._rules[dim]
            name = f"{self.prefix}{dim}"
            self.lines.append(f"{name} = {expr}")
            self._index[dim] = (name, vector)
        return self._index[dim]

    def offset(self, shape, strides=None, span_axes: bool = False) -> tuple[str, bool]:
        """(element offset, is a vector) of an operand of `shape` broadcast to the domain, with given strides.
        A dim of extent 1 adds nothing, except (times 0) a tile axis where `span_axes`: Triton broadcasts a
        load's pointer to its mask but not a store's to its value, so a store's offset must have the tile's
        shape (attention over one query, written through the transpose that merges its heads)."""
        aligned = pad_left(shape, self.rank)
        if strides is None:
            if self.flat is not None and _same(aligned, self.domain):
                return self.flat, True
            strides = contiguous_strides(aligned)
        strides = pad_left(strides, self.rank) if len(strides) < self.rank else strides
        terms, vector = [], False
        for d in range(self.rank):
            if D.same(aligned[d], 1) and not (span_axes and d in self._axes):
                continue
            name, vec = self.index(d)
            vector |= vec
            s = 0 if D.same(aligned[d], 1) else strides[d]
            terms.append(name if D.same(s, 1) else f"{name} * {tdim(s, self.where)}")
        return (" + ".join(terms) or "0"), vector

    def load(self, ptr: str, shape, strides=None, other: str = "0") -> str:
        off, vector = self.offset(shape, strides)
        if vector and self.mask is not None:
            return f"tl.load({ptr} + {off}, mask={self.mask}, other={other})"
        return f"tl.load({ptr} + {off})"

    def store(self, ptr: str, shape, value: str, strides=None) -> str:
        off, vector = self.offset(shape, strides, span_axes=True)
        if vector and self.mask is not None:
            return f"tl.store({ptr} + {off}, {value}, mask={self.mask})"
        return f"tl.store({ptr} + {off}, {value})"


class TileEmitter:
    """Emits fused elementwise ops and row reductions over a Space.

    `names` maps values to the kernel's pointer parameters (external operands
    and materialized results); `values` maps values already computed in the
    kernel (a matmul's accumulator) to their variables. A row kernel
    (reduce_rank k > 0) holds one row of the domain's last k dims per program:
    row values (reduction results and what is computed from them) are scalars.
    """

    def __init__(self, graph: Graph, space: Space, names: dict[int, str], values: dict[int, str],
                 reduce_rank: int = 0, row_size: str = "", row_mask: str | None = None):
        self.graph, self.space, self.names = graph, space, names
        self.values = dict(values)
        self.k, self.row_size, self.row_mask = reduce_rank, row_size, row_mask
        self.lines = space.lines
        self.where = space.where
        self.counter = 0

    # -- operands ---------------------------------------------------------------
    def _literal(self, v: Value) -> str | None:
        arr = self.graph.constant_of(v)
        if arr is None or arr.size != 1:
            return None
        return literal(np.asarray(arr).reshape(()).item(), v.dtype)

    def is_row(self, v: Value) -> bool:
        return self.k > 0 and not _same(v.shape, self.space.domain)

    def _aligned(self, node: Node, v: Value) -> tuple:
        """v's shape aligned to the domain (a row op's operands align to the row part of the domain)."""
        rank = self.space.rank
        if self.k and node.op not in REDUCTIONS and self.is_row(node.outputs[0]) \
                and len(node.outputs[0].shape) == rank - self.k:
            return pad_left(v.shape, rank - self.k) + (1,) * self.k
        return pad_left(v.shape, rank)

    def ref(self, node: Node, v: Value) -> str:
        if id(v) in self.values:
            return self.values[id(v)]
        lit = self._literal(v)
        if lit is not None:
            return lit
        name = self._fresh("ld")
        other = "0.0" if v.dtype.is_float else "0"
        self.lines.append(f"{name} = {self.space.load(self.names[id(v)], self._aligned(node, v), other=other)}")
        self.values[id(v)] = name
        return name

    def _fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{'' if self.space.prefix == 'i' else '_' + self.space.prefix}{self.counter}"

    # -- ops --------------------------------------------------------------------
    def emit(self, nodes: list[Node]) -> None:
        for n in nodes:
            v = n.outputs[0]
            var = f"v_{_ident(v.name)}"
            if n.op in REDUCTIONS:
                self.lines.append(f"{var} = {self._reduction(n)}")
            else:
                self.lines.append(f"{var} = {self._expr(n)}")
            self.values[id(v)] = var
            if id(v) in self.names:
                self._store(v, var)

    def _expr(self, n: Node) -> str:
        # Triton's math takes tensors: a literal operand becomes a 0-d tensor of its dtype
        args = [f"tl.full([], {a}, {tltype(v.dtype)})" if self._literal(v) == a else a
                for a, v in zip((self.ref(n, v) for v in n.inputs), n.inputs)]
        try:
            return elementwise(TRITON, n.op, n.attrs, args, [v.dtype for v in n.inputs], n.outputs[0].dtype,
                               constant_exponent(self.graph, n), self._bind)
        except UnsupportedError as e:
            raise UnsupportedError(f"{n.label}: {e}") from None

    def _bind(self, expr: str, dtype: DType) -> str:
        """A fresh variable holding expr (a subexpression a composite reads more than once)."""
        name = self._fresh("t")
        self.lines.append(f"{name} = {expr}")
        return name

    def _reduction(self, n: Node) -> str:
        x = n.inputs[0]
        xs = self.ref(n, x)
        dt = x.dtype
        mask = self.row_mask
        if dt is DType.bool:
            if n.op not in ("reduce_max", "reduce_min"):
                raise UnsupportedError(f"{n.label}: {n.op} over bool values is not supported by the triton target")
            # any / all: the extreme of the row as 0/1 bytes
            start = int(n.op == "reduce_min")
            combine = "lep_max" if n.op == "reduce_max" else "lep_min"
            return f"(tl.reduce(tl.where({mask}, ({xs}).to(tl.int8), {start}), 0, {combine}) != 0)"
        # f16 and bf16 rows are reduced in f32: exact for max, min and their positions, and the interpreter
        # holds bf16 as raw bits, whose comparisons order negative values wrongly
        acc = "tl.float32" if dt in (DType.f16, DType.bf16) else None
        wide = f"({xs}).to({acc})" if acc else xs
        masked = f"tl.where({mask}, {wide}, {literal(reduction_identity(n.op, dt), dt)})"
        narrow = (lambda e: f"({e}).to({tltype(n.outputs[0].dtype)})") if acc else (lambda e: e)
        if n.op in ("reduce_sum", "reduce_mean"):
            total = f"tl.reduce({masked}, 0, lep_add)"
            if n.op == "reduce_mean":
                total = f"({total} / {self.row_size})"
            return narrow(total) if acc or not dt.is_float else total
        if n.op == "reduce_prod":
            return narrow(f"tl.reduce({masked}, 0, lep_mul)")
        combine = "lep_max" if n.op in ("reduce_max", "argmax") else "lep_min"
        nan = self._nan_position(masked, n.attrs.get("select_last_index", False)) if dt.is_float else None
        if n.op.startswith("reduce_"):
            extreme = f"tl.reduce({masked}, 0, {combine})"
            return narrow(f"tl.where({nan} >= 0, float(\"nan\"), {extreme})" if nan else extreme)
        return self._arg(n, masked, combine, nan)

    def _nan_position(self, masked: str, last: bool) -> str:
        """A scalar: the row position of the first NaN (the last, if `last`), -1 when the row holds none (the
        combine functions ignore NaN; the reference's max and min are NaN, its argmax and argmin that position)."""
        pos = self._fresh("nan")
        where = f"tl.where(({masked}) != ({masked}), j, {'-1' if last else self.row_size})"
        self.lines.append(f"{pos} = tl.reduce({where}, 0, {'lep_max' if last else 'lep_min'})")
        if not last:
            self.lines.append(f"{pos} = tl.where({pos} == {self.row_size}, -1, {pos})")
        return pos

    def _arg(self, n: Node, masked: str, combine: str, nan: str | None) -> str:
        """The first position of the row's extreme (the last, with select_last_index), or of its NaN."""
        last = n.attrs.get("select_last_index", False)
        m = self._fresh("ext")
        self.lines.append(f"{m} = tl.reduce({masked}, 0, {combine})")
        hits = f"tl.where(({self.row_mask}) & (({masked}) == {m}), j, {'-1' if last else self.row_size})"
        pos = f"tl.reduce({hits}, 0, {'lep_max' if last else 'lep_min'})"
        if nan:
            pos = f"tl.where({nan} >= 0, {nan}, {pos})"
        return f"({pos}).to(tl.int64)"

    def _store(self, v: Value, var: str) -> None:
        ptr = self.names[id(v)]
        if self.is_row(v):
            row_shape = tuple(self.space.domain[:self.space.rank - self.k]) + (1,) * self.k
            self.lines.append(self.space.store(ptr, row_shape, var))
        else:
            self.lines.append(self.space.store(ptr, v.shape, var))


def _ident(name: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)
