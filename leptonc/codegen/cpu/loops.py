"""C for the loop part of a kernel: fused elementwise ops and trailing-axis reductions.

The domain splits into rows (the outer dims) and a row of N elements (the
inner dims). Rows run in parallel (OpenMP, in chunks of rows that the threads
take as they go: prelude.h's lep_grain); inside a row, ops run in stages:
a loop over the row's N elements (`#pragma omp simd`, reductions as simd
reductions) or scalar code between loops (what follows a reduction). So a
softmax reads its row once per stage while the row sits in cache, and a
layer norm is one kernel. Elementwise-only kernels have one stage and cut
rows into chunks so that a flat domain still runs in parallel.

Operands broadcast: each is read either whole along the row (`x[j]`) or as one
value per row, at an offset computed from the row index.

A full-row value that a later stage reads is recomputed there when that is a
few arithmetic ops on what the stage can read (layer norm's x - mean), else
kept in a per-thread row buffer (softmax's exp).

The fused ops of a matmul (or conv) can also run as a tile epilogue (`emit_tile`,
`epilogue_function`): gemm.c calls it on each finished block of the output,
rows [i0, i1) (the output's leading dims flattened) by columns [j0, j1) (its
last dim), while the block is still in cache.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...ir import dims as D
from ...ir.dtypes import DType
from ...ir.graph import Graph, Node, Value
from ...passes.fusion import REDUCTIONS
from ..kernel_body import constant_exponent, reduction_identity
from .cexpr import UnsupportedError, cnumel, ctype, elementwise_expr, literal

CHUNK = 4096          # elements per parallel work item of an elementwise kernel
CHEAP = {"add", "sub", "mul", "neg", "abs"}  # recomputed in a later stage rather than kept in memory
PARALLEL_MIN = 32768  # below this many elements a kernel runs on one thread


@dataclass
class Operand:
    """How the loop reads one external value: pointer name, shape aligned to the domain."""

    param: str
    value: Value
    aligned: tuple
    whole_row: bool      # read x[j]; else one value per row


def _pad_left(shape, rank):
    return (1,) * (rank - len(shape)) + tuple(shape)


class LoopEmitter:
    """Emits the C statements of one kernel's loop part."""

    def __init__(self, graph: Graph, nodes: list[Node], domain: tuple, reduce_rank: int,
                 params: dict[int, str], outputs: dict[int, str], where: str, tile: bool = False):
        self.graph, self.nodes, self.domain, self.k = graph, nodes, tuple(domain), reduce_rank
        self.params, self.outputs, self.where = params, outputs, where
        self.rank = len(self.domain)
        self.mine = {id(v) for n in nodes for v in n.outputs}
        self.var_names = {id(v): f"v{i}" for i, v in enumerate(v for n in nodes for v in n.outputs)}
        if tile and (reduce_rank or not self.rank):
            raise ValueError("a tile epilogue is elementwise over a domain of rank >= 1")
        self.inner = 1 if tile else self._choose_inner()
        self.outer_dims = self.domain[:self.rank - self.inner]
        self.inner_dims = self.domain[self.rank - self.inner:]
        self.operands: dict[tuple, Operand] = {}
        self.remat: set[int] = set()  # full-row values recomputed in the later stages that read them
        self.lines: list[str] = []

    # -- the split ------------------------------------------------------
    def _external_shapes(self):
        for n in self.nodes:
            for v in n.inputs:
                if id(v) not in self.mine and self._literal(v) is None:
                    yield self._aligned(n, v)

    def _aligned(self, node: Node, v: Value) -> tuple:
        """v's shape right-aligned to the domain (a row op's operands align to its row shape)."""
        shape = tuple(v.shape)
        if self.k and self._is_row_value(node.outputs[0]) and len(node.outputs[0].shape) == self.rank - self.k:
            shape = _pad_left(shape, self.rank - self.k) + (1,) * self.k
        return _pad_left(shape, self.rank)

    def _choose_inner(self) -> int:
        if self.k:
            return self.k
        shapes = list(self._external_shapes())
        inner = 0
        for n in range(1, self.rank + 1):
            if all(all(d == 1 for d in s[self.rank - n:]) or
                   all(D.same(a, b) for a, b in zip(s[self.rank - n:], self.domain[self.rank - n:]))
                   for s in shapes):
                inner = n
            else:
                break
        return inner

    # -- values -----------------------------------------------------------
    def _is_row_value(self, v: Value) -> bool:
        if not self.k:
            return False
        if v.producer is not None and v.producer.op in REDUCTIONS and id(v) in self.mine:
            return True  # even when the reduced extent is 1 and its shape equals the domain
        return not (len(v.shape) == self.rank and all(D.same(a, b) for a, b in zip(v.shape, self.domain)))

    def _literal(self, v: Value) -> str | None:
        arr = self.graph.constant_of(v)
        if arr is None or arr.size != 1:
            return None
        return literal(arr.reshape(()).item(), v.dtype)

    def _operand(self, node: Node, v: Value) -> Operand:
        aligned = self._aligned(node, v)
        key = (id(v), aligned)
        if key not in self.operands:
            inner = aligned[self.rank - self.inner:]
            whole = not all(d == 1 for d in inner)
            self.operands[key] = Operand(self.params[id(v)], v, aligned, whole)
        return self.operands[key]

    # -- emission ---------------------------------------------------------
    def emit(self) -> list[str]:
        stages = self._stages()
        spilled = self._spilled(stages)
        ops_reads = [(n, v) for n in self.nodes for v in n.inputs if id(v) not in self.mine
                     and self._literal(v) is None]
        for n, v in ops_reads:
            self._operand(n, v)
        w = self.where
        R, N = cnumel(self.outer_dims, w), cnumel(self.inner_dims, w)
        out = self.lines
        out.append(f"const int64_t R = {R}, N = {N};")
        if self.k:
            out.append("const int64_t CH = N, NCH = 1;")
        else:
            out.append(f"const int64_t CH = N < {CHUNK} ? (N > 0 ? N : 1) : {CHUNK}, NCH = (N + CH - 1) / CH;")
        out.append("const int GRAIN = lep_grain(R * NCH, CH);")
        out.append(f"#pragma omp parallel if (R * N > {PARALLEL_MIN})")
        out.append("{")
        for vid, (t, name) in spilled.items():
            out.append(f"  {t}* {name} = ({t}*)lep_scratch((size_t)N * sizeof({t}));")
        out.append("  #pragma omp for schedule(dynamic, GRAIN)")
        out.append("  for (int64_t it = 0; it < R * NCH; ++it) {")
        out.append("    const int64_t r = it / NCH, j0 = (it % NCH) * CH, j1 = j0 + CH < N ? j0 + CH : N;")
        out.append("    (void)j0; (void)j1;")
        body = []
        self._row_pointers(body)
        for kind, group in stages:
            if kind == "loop":
                self._emit_loop(group, spilled, body)
            else:
                for n in group:
                    body.append(self._assign(n, spilled, in_loop=False))
                    self._store_row_outputs(n, body)
        out.extend("    " + line for line in body)
        out.append("  }")
        for vid, (t, name) in spilled.items():
            out.append(f"  free({name});")
        out.append("}")
        return out

    def emit_tile(self) -> list[str]:
        """The ops over the block rows [i0, i1) x columns [j0, j1) of the domain (C variables of those names;
        rows are the domain's leading dims flattened, columns its last dim): elementwise only."""
        for n in self.nodes:
            for v in n.inputs:
                if id(v) not in self.mine and self._literal(v) is None:
                    self._operand(n, v)
        body: list[str] = []
        self._row_pointers(body)
        self._emit_loop(self.nodes, {}, body)
        return ([f"const int64_t N = {self._cd(self.domain[-1])};",
                 "for (int64_t r = i0; r < i1; ++r) {"]
                + ["  " + line for line in body] + ["}"])

    def _stages(self) -> list[tuple[str, list[Node]]]:
        stages: list[tuple[str, list[Node]]] = []
        loop_reductions: set[int] = set()
        for n in self.nodes:
            full = n.op.startswith(("reduce_", "arg")) or not self._is_row_value(n.outputs[0])
            if full:
                needs_new = not stages or stages[-1][0] != "loop" or \
                    any(id(v) in loop_reductions for v in n.inputs)
                if needs_new:
                    stages.append(("loop", []))
                    loop_reductions = set()
                stages[-1][1].append(n)
                if n.op.startswith(("reduce_", "arg")):
                    loop_reductions.add(id(n.outputs[0]))
            else:
                if not stages or stages[-1][0] != "scalar":
                    stages.append(("scalar", []))
                stages[-1][1].append(n)
        return stages

    def _spilled(self, stages) -> dict[int, tuple[str, str]]:
        """Full-row values used in a later stage than their own, and not outputs: per-thread row buffers, but
        for the cheap ones, recomputed where they are read (`remat`)."""
        where_defined = {}
        for i, (kind, group) in enumerate(stages):
            for n in group:
                for v in n.outputs:
                    where_defined[id(v)] = i
        spilled = {}
        for i, (kind, group) in enumerate(stages):
            for n in group:
                for v in n.inputs:
                    j = where_defined.get(id(v))
                    if j is not None and j != i and not self._is_row_value(v) and id(v) not in self.outputs \
                            and not v.producer.op.startswith(("reduce_", "arg")):
                        if self._cheap(v):
                            self._recompute(v)
                        else:
                            spilled[id(v)] = (ctype(v.dtype, self.where), f"t{len(spilled)}")
        return spilled

    def _cheap(self, v: Value) -> bool:
        """v is a few arithmetic ops on operands, literals and row values."""
        p = v.producer
        return p.op in CHEAP and all(id(x) not in self.mine or self._is_row_value(x) or self._cheap(x)
                                     for x in p.inputs)

    def _recompute(self, v: Value) -> None:
        """Recompute cheap v, and the full-row values it is computed from, where they are read."""
        self.remat.add(id(v))
        for x in v.producer.inputs:
            if id(x) in self.mine and not self._is_row_value(x):
                self._recompute(x)

    def _row_pointers(self, body: list[str]) -> None:
        need_index = False
        offsets = {}
        for key, op in self.operands.items():
            offsets[key] = self._row_offset(op)
            need_index |= "i_" in offsets[key]
        if need_index:
            body.append("int64_t rem = r;")
            for a in reversed(range(len(self.outer_dims))):
                d = self._cd(self.outer_dims[a])
                body.append(f"const int64_t i_{a} = rem % {d}; rem /= {d};")
        for n, (key, op) in enumerate(self.operands.items()):
            t = ctype(op.value.dtype, self.where)
            off = offsets[key]
            if op.whole_row:
                body.append(f"const {t}* e{n} = {op.param} + {off};")
            else:
                body.append(f"const {t} e{n}s = {op.param}[{off}];")
            op.name = f"e{n}" if op.whole_row else f"e{n}s"  # type: ignore[attr-defined]
        for vid, param in self.outputs.items():
            v = self._value(vid)
            t = ctype(v.dtype, self.where)
            if self._is_row_value(v):
                continue
            body.append(f"{t}* o_{param} = {param} + r * N;")

    def _value(self, vid: int) -> Value:
        for n in self.nodes:
            for v in n.outputs:
                if id(v) == vid:
                    return v
        raise KeyError(vid)

    def _cd(self, d) -> str:
        from .cexpr import cdim
        return cdim(d, self.where)

    def _row_offset(self, op: Operand) -> str:
        outer = op.aligned[:len(self.outer_dims)]
        inner_n = "N" if op.whole_row else "1"
        if all(D.same(a, b) for a, b in zip(outer, self.outer_dims)):
            return f"r * {inner_n}"
        if all(d == 1 for d in outer):
            return "0"
        terms = []
        for a, d in enumerate(outer):
            if d == 1:
                continue
            stride = D.product(op.aligned[a + 1:])
            terms.append(f"i_{a} * {self._cd(stride)}")
        return " + ".join(terms) or "0"

    def _ref(self, node: Node, v: Value, spilled, in_loop: bool, local: set) -> str:
        lit = self._literal(v)
        if lit is not None and id(v) not in self.mine:
            return lit
        if id(v) in self.mine:
            if id(v) in local or self._is_row_value(v) or v.producer.op.startswith(("reduce_", "arg")):
                return self._var(v)
            if id(v) in self.remat:
                return self._expr(v.producer, spilled, in_loop, local)
            if id(v) in spilled:
                return f"{spilled[id(v)][1]}[j]"
            return f"o_{self.outputs[id(v)]}[j]"
        op = self.operands[(id(v), self._aligned(node, v))]
        return f"{op.name}[j]" if op.whole_row else op.name  # type: ignore[attr-defined]

    def _var(self, v: Value) -> str:
        return self.var_names[id(v)]

    def _expr(self, n: Node, spilled, in_loop: bool, local: set) -> str:
        args = [self._ref(n, v, spilled, in_loop, local) for v in n.inputs]
        return elementwise_expr(n.op, n.attrs, args, [v.dtype for v in n.inputs], n.outputs[0].dtype,
                                constant_exponent(self.graph, n))

    def _assign(self, n: Node, spilled, in_loop: bool, local: set | None = None) -> str:
        v = n.outputs[0]
        t = ctype(v.dtype, self.where)
        return f"const {t} {self._var(v)} = {self._expr(n, spilled, in_loop, local or set())};"

    def _store_row_outputs(self, n: Node, body: list[str]) -> None:
        for v in n.outputs:
            if id(v) in self.outputs and self._is_row_value(v):
                body.append(f"{self.outputs[id(v)]}[r] = {self._var(v)};")

    def _emit_loop(self, group: list[Node], spilled, body: list[str]) -> None:
        reds = [n for n in group if n.op.startswith(("reduce_", "arg"))]
        clauses, inits, finals = [], [], []
        simd = not any(n.op.startswith("arg") for n in reds)
        for n in reds:
            v = n.outputs[0]
            x = n.inputs[0]
            t = ctype(x.dtype, self.where)
            acc = "a_" + self._var(v)
            if x.dtype is DType.bool:
                raise UnsupportedError(f"{self.where}: {n.op} over bool values is not supported by the cpu target")
            if n.op in ("reduce_sum", "reduce_mean"):
                inits.append(f"{t} {acc} = 0;")
                clauses.append(f"reduction(+:{acc})")
                fin = f"({t})({acc} / ({t})N)" if n.op == "reduce_mean" else acc
            elif n.op == "reduce_prod":
                inits.append(f"{t} {acc} = 1;")
                clauses.append(f"reduction(*:{acc})")
                fin = acc
            elif n.op in ("reduce_max", "reduce_min"):
                inits.append(f"{t} {acc} = {literal(reduction_identity(n.op, x.dtype), x.dtype)};")
                clauses.append(f"reduction({'max' if n.op == 'reduce_max' else 'min'}:{acc})")
                if x.dtype.is_float:
                    inits.append(f"int nan_{acc} = 0;")
                    clauses.append(f"reduction(|:nan_{acc})")
                    fin = f"(nan_{acc} ? {literal(float('nan'), x.dtype)} : {acc})"
                else:
                    fin = acc
            else:  # argmax / argmin
                inits.append(f"{t} {acc} = 0; int64_t idx_{acc} = -1;")
                fin = f"(idx_{acc} < 0 ? 0 : idx_{acc})"
            finals.append((n, fin))
        body.extend(inits)
        if simd:
            body.append("#pragma omp simd " + " ".join(clauses))
        body.append("for (int64_t j = j0; j < j1; ++j) {")
        local: set[int] = set()
        stores: list[str] = []  # after every read of the iteration, so that in-place results are safe
        for n in group:
            v = n.outputs[0]
            if n.op.startswith(("reduce_", "arg")):
                xref = self._ref(n, n.inputs[0], spilled, True, local)
                acc = "a_" + self._var(v)
                if n.op in ("reduce_sum", "reduce_mean"):
                    body.append(f"  {acc} += {xref};")
                elif n.op == "reduce_prod":
                    body.append(f"  {acc} *= {xref};")
                elif n.op in ("reduce_max", "reduce_min"):
                    cmp = ">" if n.op == "reduce_max" else "<"
                    body.append(f"  {{ const {ctype(n.inputs[0].dtype)} x_ = {xref}; "
                                f"{acc} = x_ {cmp} {acc} ? x_ : {acc};"
                                + (" nan_" + acc + " |= (x_ != x_); }" if n.inputs[0].dtype.is_float else " }"))
                else:
                    cmp = (">" if n.op == "argmax" else "<") + ("=" if n.attrs["select_last_index"] else "")
                    if not n.inputs[0].dtype.is_float:
                        isnan = "0"
                    elif n.attrs["select_last_index"]:
                        isnan = "x_ != x_"  # the last NaN wins
                    else:
                        isnan = f"(x_ != x_ && {acc} == {acc})"  # the first NaN wins
                    body.append(f"  {{ const {ctype(n.inputs[0].dtype)} x_ = {xref}; "
                                f"if (idx_{acc} < 0 || x_ {cmp} {acc} || {isnan}) "
                                f"{{ {acc} = x_; idx_{acc} = j; }} }}")
                continue
            body.append("  " + self._assign(n, spilled, True, local))
            local.add(id(v))
            if id(v) in spilled:
                stores.append(f"  {spilled[id(v)][1]}[j] = {self._var(v)};")
            if id(v) in self.outputs:
                stores.append(f"  o_{self.outputs[id(v)]}[j] = {self._var(v)};")
        body.extend(stores)
        body.append("}")
        for n, fin in finals:
            v = n.outputs[0]
            body.append(f"const {ctype(v.dtype)} {self._var(v)} = {fin};")
            self._store_row_outputs(n, body)


def epilogue_function(name: str, params: list[str], prologue: str, body: list[str]) -> str:
    """C of the tile epilogue `name` (gemm.c's lep_epilogue), with `struct name_args` holding `params` (C
    declarations "type* name", in the kernel's order) and `sym`: the kernel fills one (`epilogue_args`) and
    hands it to the GEMM. `prologue` unpacks the symbols from sym."""
    names = [p.rsplit("*", 1)[1].strip() for p in params]
    members = "".join(f"  {p};\n" for p in params)
    unpack = "".join(f"  {p} = args->{n}; (void){n};\n" for p, n in zip(params, names))
    return (f"struct {name}_args {{\n  const int64_t* sym;\n{members}}};\n"
            f"static void {name}(const void* ctx, float* c, int64_t ldc, int64_t i0, int64_t i1, int64_t j0, "
            "int64_t j1) {\n"
            f"  const struct {name}_args* args = (const struct {name}_args*)ctx;\n"
            "  const int64_t* sym = args->sym; (void)sym; (void)c; (void)ldc;\n"
            f"{unpack}{prologue}" + "".join(f"  {line}\n" for line in body) + "}\n")


def epilogue_args(name: str, params: list[str]) -> str:
    """The kernel's statement that fills the context of its tile epilogue `name` (see epilogue_function)."""
    names = [p.rsplit("*", 1)[1].strip() for p in params]
    return f"struct {name}_args epilogue_args = {{sym{''.join(', ' + n for n in names)}}};"
