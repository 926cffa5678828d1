"""A whole model as one C source: the kernels, the memory they use, and one entry point.

    int lep_run(void* const* in, void* const* out, void* const* w, char* arena,
                const int64_t* off, const int64_t* sym, double* prof);
    void lep_last_error(int64_t* record);
    void lep_set_threads(int n);  int lep_threads(void);

`in`/`out` are the graph's inputs and outputs, `w` its weights (in the order
`meta["weights"]` lists), `sym` the sizes of the symbols (in `meta["symbols"]`
order), `off` the byte offset in `arena` of each buffer of `meta["buffers"]`,
and `prof`, when not NULL, receives seconds per kernel. Intermediates live in
buffers whose sizes are dim expressions and whose lifetimes are kernel
indices; the runtime places them in the arena once per set of sizes
(runtime/memory.py), so values whose lifetimes do not overlap share memory. A
loop kernel writes its result in place over an operand that dies with it.

`lep_run` returns 0, or 1 when a kernel met an index out of range (ir/indices.py): it stops after that
kernel, and `lep_last_error` then gives the calling thread's record of it, (kernel index, index, dim,
dim size); `meta["kernels"][i]["index_check"]` names the op. The record a run's kernels fill lives on
`lep_run`'s stack, so concurrent runs never share it.

Each kernel runs on one OpenMP thread per GRAIN_NS of its estimated work (`work_ns`, from its sizes), at most
the pool that `lep_set_threads` sets (0: OpenMP's own count), and on one thread for a while after the pool's
threads started late (the stall watch, THREADS_SOURCE); `lep_run` gives the caller's OpenMP thread count back
when it returns.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...ir import dims as D
from ...ir.size_checks import size_checks
from ...ir.graph import Graph, Node, Value
from ...ir.indices import site
from .. import Program, check_dtypes, graph_symbols
from ...passes.fusion import Kernel, memory_operands, plan_fusion, view_root
from .cexpr import C_TYPES, UnsupportedError, c_itemsize, cdim, cnumel, ctype, symbol_var
from .attention import ATTENTION_SOURCE, emit_attention
from .bitcast import BITCAST_EMITTERS
from .conv import CONV_EMITTERS, CONV_SOURCE, conv_weight_layout, emit_conv, reads_channels_first, uses_conv
from .conv_transpose import CONV_TRANSPOSE_EMITTERS
from .image import IMAGE_EMITTERS, IMAGE_SOURCE, uses_image
from .kernels import EMITTERS, KernelContext
from .linalg import LINALG_EMITTERS
from .loops import LoopEmitter, epilogue_args, epilogue_function
from .matmul import GEMM_SOURCE, PACKED, TRANSPOSED, emit_matmul, packed_weight, stored_transposed, uses_gemm
from .ml import ML_EMITTERS
from .pooling import POOLING_EMITTERS
from .quantized import QUANTIZED_EMITTERS, QUANTIZED_SOURCE, laid_out_operands, uses_quantized
from .signal import SIGNAL_EMITTERS
from .sparse import SPARSE_EMITTERS, SPARSE_SOURCE, uses_sparse
from .tensor_scatter import TENSOR_SCATTER_EMITTERS
from .text import TEXT_EMITTERS

PRELUDE = "".join(Path(__file__).with_name(f).read_text() for f in ("prelude.h", "narrow.h"))


@dataclass
class Buffer:
    nbytes: object          # a dim: int or expression of the symbols
    first: int              # kernel index that writes it first
    last: int               # kernel index that reads it last
    values: list[str] = field(default_factory=list)


@dataclass
class CpuProgram(Program):  # meta: see the module docstring
    drivers: tuple[str, ...] = ()  # hand-written drivers the source holds that build.py may link from objects


def generate(graph: Graph) -> CpuProgram:
    """The C source and runtime metadata for a graph that the `fuse` pass has prepared."""
    check_dtypes(graph, "cpu", C_TYPES, UnsupportedError)
    return _Generator(graph).run()


class _Generator:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.plan = plan_fusion(graph, reads_channels_first)
        self.kernel_index: dict[int, int] = {}
        for i, k in enumerate(self.plan.kernels):
            for n in k.nodes + k.absorbed:
                self.kernel_index[id(n)] = i
        self.storage: dict[int, str] = {}    # id(root value) -> C pointer expression source
        self.buffers: list[Buffer] = []
        self.buffer_of: dict[int, int] = {}  # id(root value) -> buffer index
        self.weights: list[str] = []
        self.output_copies: list[tuple[int, Value]] = []

    # -- which values need memory ------------------------------------------
    def _kernel_of(self, node: Node) -> int | None:
        return self.kernel_index.get(id(node))

    def _readers(self, v: Value) -> list[int]:
        out = []
        for u, _ in v.uses:
            if u.op == "reshape":
                out += self._readers(u.outputs[0])
            elif self._kernel_of(u) is not None:
                out.append(self._kernel_of(u))
        return out

    def _materialized(self, k: Kernel, node: Node, v: Value) -> bool:
        if k.kind not in ("loop", "attention") and node is k.nodes[0]:
            return bool(v.uses) or self._is_output(v) or node.op != "split"
        if self._is_output(v):
            return True
        mine = {id(n) for n in k.nodes}
        return any(id(u) not in mine for u, _ in v.uses)

    def _is_output(self, v: Value) -> bool:
        return any(o is v for o in self.graph.outputs)

    # -- memory ------------------------------------------------------------
    def _assign_storage(self) -> None:
        for i, v in enumerate(self.graph.inputs):
            self.storage[id(v)] = f"in[{i}]"
        claimed = set()
        for j, v in enumerate(self.graph.outputs):
            root = view_root(v)
            p = root.producer
            if p is None or p.op == "const" or id(root) in claimed:
                self.output_copies.append((j, v))
            else:
                claimed.add(id(root))
                self.storage[id(root)] = f"out[{j}]"
        for i, k in enumerate(self.plan.kernels):
            self._anchor_writes_result(i, k)
            for n in k.nodes:
                for v in n.outputs:
                    if id(v) in self.storage or not self._materialized(k, n, v):
                        continue
                    if self._in_place(i, k, v):
                        continue
                    readers = self._readers(v)
                    self._new_buffer(v, i, max(readers + [i]))

    def _anchor_writes_result(self, i: int, k: Kernel) -> None:
        """A matmul/conv whose output only its epilogue reads writes straight into the epilogue's result,
        which the epilogue then updates in place."""
        if k.kind in ("loop", "attention") or not k.loop_nodes:
            return
        v = k.nodes[0].outputs[0]
        mine = {id(n) for n in k.loop_nodes}
        if self._is_output(v) or not all(id(u) in mine for u, _ in v.uses):
            return
        for n in k.loop_nodes:
            o = n.outputs[0]
            if o.dtype is v.dtype and _same(o.shape, k.domain) and self._materialized(k, n, o):
                if id(o) not in self.storage:
                    self._new_buffer(o, i, max(self._readers(o) + [i]))
                self.storage[id(v)] = self.storage[id(o)]
                if id(o) in self.buffer_of:
                    self.buffer_of[id(v)] = self.buffer_of[id(o)]
                    self.buffers[self.buffer_of[id(o)]].values.insert(0, v.name)
                return

    def _new_buffer(self, v: Value, first: int, last: int) -> None:
        nbytes = D.mul(D.product(v.shape), c_itemsize(v.dtype))
        self.buffer_of[id(v)] = len(self.buffers)
        self.storage[id(v)] = f"arena + off[{len(self.buffers)}]"
        self.buffers.append(Buffer(nbytes, first, last, [v.name]))

    def _in_place(self, i: int, k: Kernel, v: Value) -> bool:
        """Write v over an operand buffer that dies in this kernel (elementwise loops only). Not over an operand of
        the kernel's matmul/conv: its epilogue runs on finished tiles while other tiles still read them."""
        if k.reduce_rank or k.kind == "attention" or v.producer not in k.loop_nodes \
                or not _same(v.shape, k.domain):
            return False
        taken = {self.buffer_of[id(o)] for n in k.loop_nodes for o in n.outputs if id(o) in self.buffer_of}
        anchor_reads = {id(view_root(x)) for n in k.absorbed + k.nodes[:1] for x in n.inputs} if k.anchor else set()
        for n in k.loop_nodes:
            for x in n.inputs:
                root = view_root(x)
                b = self.buffer_of.get(id(root))
                if b is None or b in taken or id(root) in anchor_reads or self.buffers[b].last != i \
                        or not _same(x.shape, k.domain) or x.dtype.itemsize != v.dtype.itemsize \
                        or D.product(root.shape) != D.product(v.shape):
                    continue
                buf = self.buffers[b]
                buf.last = max([i] + self._readers(v))
                buf.values.append(v.name)
                self.buffer_of[id(v)] = b
                self.storage[id(v)] = self.storage[id(root)]
                return True
        return False

    # -- code ----------------------------------------------------------------
    def run(self) -> CpuProgram:
        self._assign_storage()
        symbols = graph_symbols(self.graph)
        self.symbols = symbols
        funcs: list[_Function] = []
        by_code: dict[str, _Function] = {}  # kernel code with its own name taken out -> its function
        calls, kernels_meta = [], []
        for i, k in enumerate(self.plan.kernels):
            code, args, scratch, checks = self._kernel(k)
            if scratch is not None:
                args.append(f"(float*)(arena + off[{len(self.buffers)}])")
                self.buffers.append(Buffer(scratch, i, i, [f"{k.name}.scratch"]))
            shape = code.replace(k.name, "@")
            f = by_code.get(shape)
            if f is None:  # kernels that compile to the same code (repeated layers) share one function
                f = by_code[shape] = _Function(k, code)
                funcs.append(f)
            else:
                f.also.append(k.name)
            calls.append(f"  LEP_TIMED({i}, LEP_TEAM({work_ns(k)}, "
                         f"{f.kernel.name}(sym{''.join(', ' + a for a in args)})));")
            kernels_meta.append({"name": k.name, "kind": k.kind, "ops": k.describe_ops()})
            if checks:  # stop at the kernel that met an index out of range
                calls[-1] += f"\n  if (err.pos != INT64_MAX) return lep_index_failure({i}, &err);"
                kernels_meta[-1]["index_check"] = site(k.nodes[0])
        src = self._source([f.text() for f in funcs], calls, any("index_check" in m for m in kernels_meta))
        meta = {
            "symbols": symbols,
            "inputs": [{"name": v.name, "dtype": v.dtype.value, "shape": list(v.shape)} for v in self.graph.inputs],
            "outputs": [{"name": v.name, "dtype": v.dtype.value, "shape": list(v.shape)} for v in self.graph.outputs],
            "weights": self.weights,
            "buffers": [{"bytes": b.nbytes, "first": b.first, "last": b.last, "values": b.values}
                        for b in self.buffers],
            "intermediates": [{"name": name, "bytes": b.nbytes} for b in self.buffers for name in b.values],
            "kernels": kernels_meta,
            "signed_dims": [list(s) for s in size_checks(self.graph)],  # (JSON)
            "unfused": [{"producer": p.producer.label, "consumer": p.consumer.label, "reason": p.reason}
                        for p in self.plan.unfused],
        }
        return CpuProgram(src, meta, self.plan, ("gemm",) if self._uses_gemm() else ())

    def _pointer(self, v: Value) -> str:
        root = view_root(v)
        p = root.producer
        if id(root) not in self.storage and p is not None and p.op == "const":
            self.storage[id(root)] = f"w[{len(self.weights)}]"  # weights are numbered as kernels first read them
            self.weights.append(p.attrs["name"])
        return f"(({ctype(v.dtype, v.name)}*)({self.storage[id(root)]}))"

    def _weight_pointer(self, v: Value, suffix: str) -> str:
        """A weight stored in another layout, under its name plus `suffix` in meta["weights"]."""
        key = (suffix, id(v))
        if key not in self.storage:
            self.storage[key] = f"w[{len(self.weights)}]"
            self.weights.append(v.producer.attrs["name"] + suffix)
        return f"(({ctype(v.dtype, v.name)}*)({self.storage[key]}))"

    def _stored_weights(self, k: Kernel) -> list[tuple[Value, str]]:
        """(weight, suffix) for the anchor's weights stored in another layout: packed for our GEMM, or
        transposed for BLAS."""
        node = k.nodes[0]
        if k.kind == "conv":
            return conv_weight_layout(self.graph, node)
        packed = packed_weight(self.graph, node, k.absorbed)
        return [(v, PACKED if v is packed else TRANSPOSED) for v in node.inputs
                if v is packed or (packed is None and stored_transposed(self.graph, v))]

    def _kernel(self, k: Kernel) -> tuple[str, list[str], object]:
        where = k.nodes[0].label
        ext = memory_operands(k)
        outs = [v for n in k.nodes for v in n.outputs if id(view_root(v)) in self.storage and view_root(v) is v]
        names: dict = {}
        params, args = [], []
        if k.kind in ("matmul", "conv"):  # weights stored as the kernel reads them, in place of their layout
            for j, (v, suffix) in enumerate(self._stored_weights(k)):
                if (suffix, id(v)) not in names:
                    names[(suffix, id(v))] = f"xw{j}"
                    params.append(f"const {ctype(v.dtype, where)}* xw{j}")
                    args.append(self._weight_pointer(v, suffix))
            others = [x for n in k.loop_nodes for x in n.inputs]
            stored = {vid for _, vid in names}
            ext = [v for v in ext if id(v) not in stored or any(x is v for x in others)]
        laid_out = [(j, suffix) for j, suffix in laid_out_operands(k.nodes[0])
                    if self.graph.constant_of(k.nodes[0].inputs[j]) is not None]
        for j, suffix in laid_out:  # quantized weights in their kernel layouts, in place of their own
            v = k.nodes[0].inputs[j]
            names[(suffix, id(v))] = f"xl{j}"
            params.append(f"const void* xl{j}")
            args.append(self._weight_pointer(v, suffix))
        if laid_out:
            others = [x for n in k.loop_nodes for x in n.inputs]
            ext = [v for v in ext if all(v is not k.nodes[0].inputs[j] for j, _ in laid_out)
                   or any(x is v for x in others)]
        for i, v in enumerate(ext):
            names[id(v)] = f"x{i}"
            params.append(f"const {ctype(v.dtype, where)}* x{i}")
            args.append(self._pointer(v))
        for i, v in enumerate(outs):
            names[id(v)] = f"y{i}"
            params.append(f"{ctype(v.dtype, where)}* y{i}")
            args.append(self._pointer(v))
        tiled = k.kind not in ("loop", "attention") and k.loop_nodes
        ctx = KernelContext(self.graph, names, where, f"{k.name}_epilogue" if tiled else None,
                            k.loop_nodes if tiled else ())
        body: list[str] = []
        if k.kind == "matmul":
            body += emit_matmul(ctx, k.nodes[0], k.absorbed)
        elif k.kind == "conv":
            body += emit_conv(ctx, k.nodes[0])
        elif k.kind == "attention":  # its epilogues are part of it
            body += emit_attention(ctx, k)
        elif k.kind != "loop":  # a single op, or a quantized or sparse matmul with its epilogue
            op = k.nodes[0].op
            emitter = EMITTERS.get(op) or POOLING_EMITTERS.get(op) or CONV_EMITTERS.get(op) \
                or QUANTIZED_EMITTERS.get(op) or SPARSE_EMITTERS.get(op) or IMAGE_EMITTERS.get(op) \
                or CONV_TRANSPOSE_EMITTERS.get(op) or LINALG_EMITTERS.get(op) \
                or BITCAST_EMITTERS.get(op) or SIGNAL_EMITTERS.get(op) or TEXT_EMITTERS.get(op) \
                or ML_EMITTERS.get(op) or TENSOR_SCATTER_EMITTERS.get(op)
            if emitter is None:
                raise UnsupportedError(f"{where}: op '{k.nodes[0].op}' is not supported by the cpu target")
            body += emitter(ctx, k.nodes[0])
        if ctx.checks_indices:
            params.append("lep_index_error* err")
            args.append("&err")
        unpack = "".join(f"  const int64_t {symbol_var(s)} = sym[{i}]; (void){symbol_var(s)};\n"
                         for i, s in enumerate(self.symbols))
        epilogue = ""
        if k.loop_nodes and k.kind != "attention" and not ctx.fused_done:
            loop_outs = {id(v): names[id(v)] for n in k.loop_nodes for v in n.outputs if id(v) in names}
            emitter = LoopEmitter(self.graph, k.loop_nodes, k.domain, k.reduce_rank, names, loop_outs, where,
                                  tile=ctx.epilogue_used)
            if ctx.epilogue_used:  # the GEMM runs the fused ops on each finished block of its output
                epilogue = epilogue_function(ctx.epilogue, params, unpack, emitter.emit_tile())
                body.insert(0, epilogue_args(ctx.epilogue, params))
            else:
                body.append("{")
                body += ["  " + s for s in emitter.emit()]
                body.append("}")
        if ctx.scratch_bytes is not None:
            params.append("float* scratch")
        code = epilogue + (f"static void {k.name}(const int64_t* sym{''.join(', ' + p for p in params)}) {{\n"
                           f"  (void)sym;\n{unpack}"
                           + "".join(f"  {line}\n" for line in body) + "}\n")
        return code, args, ctx.scratch_bytes, ctx.checks_indices

    def _uses_gemm(self) -> bool:
        return uses_gemm(self.graph) or uses_conv(self.graph)

    def _source(self, funcs: list[str], calls: list[str], checks_indices: bool) -> str:
        copies = []
        for j, v in self.output_copies:
            root = view_root(v)
            nbytes = cnumel(v.shape, v.name)
            copies.append(f"  memcpy(out[{j}], {self._pointer(root)}, (size_t)({nbytes}) * {c_itemsize(v.dtype)});")
        unpack = "".join(f"  const int64_t {symbol_var(s)} = sym[{i}]; (void){symbol_var(s)};\n"
                         for i, s in enumerate(self.symbols))
        prelude = PRELUDE + (QUANTIZED_SOURCE if uses_quantized(self.graph) else "") \
            + (GEMM_SOURCE if self._uses_gemm() else "") \
            + (CONV_SOURCE if uses_conv(self.graph) else "") \
            + (ATTENTION_SOURCE if any(k.kind == "attention" for k in self.plan.kernels) else "") \
            + (SPARSE_SOURCE if uses_sparse(self.graph) else "") \
            + (IMAGE_SOURCE if uses_image(self.graph) else "")
        record = "  lep_index_error err = {INT64_MAX, 0, 0, 0};\n" if checks_indices else ""
        return (f"/* generated by leptonc for graph @{self.graph.name} */\n{prelude}\n"
                + "\n".join(funcs)
                + f"\nint lep_kernel_count(void) {{ return {len(calls)}; }}\n\n"
                + FAILURE_SOURCE + THREADS_SOURCE +
                "static int lep_kernels(void* const* in, void* const* out, void* const* w, char* arena,\n"
                "                       const int64_t* off, const int64_t* sym, double* prof, int pool) {\n"
                "  (void)in; (void)out; (void)w; (void)arena; (void)off; (void)pool;\n"
                "  int watched = 0;  /* whether this run has looked for stalled threads (LEP_TEAM) */\n"
                "  (void)watched;\n"
                + record + unpack + "\n".join(calls) + "\n" + "\n".join(copies) + "\n  return 0;\n}\n\n"
                + RUN_SOURCE)


# Threads per kernel: the runtime sets the pool (lep_set_threads; 0 = OpenMP's own count), and each kernel runs on
# one thread per GRAIN_NS of its estimated work, at most the pool; the kernels share their work out in chunks that
# the threads, the calling one too, take as they go (prelude.h's lep_grain, gemm.c's tiles). The stall watch: at
# the first kernel of a run that takes several threads, an empty parallel region shows how late the pool's threads
# start (a run whose kernels all take one thread never wakes the pool); one
# that starts LATE_S after the caller was not run by the OS (other work holds the cores), and every kernel of the
# run would wait for it at its end: the library then runs every kernel on one thread for SOLO_S before it looks
# again. (An idle machine wakes a sleeping thread in tens of microseconds.) LEPTONC_STALL_WATCH=0 turns it off.
# lep_run gives the caller's OpenMP thread count back when it returns (a caller's own parallel code, torch's say,
# keeps its setting).
MAC_NS = 0.025     # estimated single-thread ns per multiply-add of a matmul or convolution
ELEMENT_NS = 0.5   # per element of a loop's domain or of an op's output
GRAIN_NS = 25000   # a kernel takes one thread per this much estimated work
LATE_S, SOLO_S = 0.001, 0.25

THREADS_SOURCE = f"""#include <stdlib.h>
static int lep_pool;
void lep_set_threads(int n) {{ __atomic_store_n(&lep_pool, n, __ATOMIC_RELAXED); }}
int lep_threads(void) {{
  const int n = __atomic_load_n(&lep_pool, __ATOMIC_RELAXED);
  return n > 0 ? n : omp_get_max_threads();
}}
static inline int lep_team(double work_ns, int pool) {{
  const double n = work_ns / {GRAIN_NS:.1f};
  return n < 2 ? 1 : n >= pool ? pool : (int)n;
}}
static double lep_solo_until;  /* omp_get_wtime() before which kernels run on one thread */
static inline int lep_solo(void) {{
  double until;
  __atomic_load(&lep_solo_until, &until, __ATOMIC_RELAXED);
  return until > 0 && omp_get_wtime() < until;
}}
/* whether the stall watch is on (LEPTONC_STALL_WATCH=0 turns it off) */
static inline int lep_watching(void) {{
  static int on = -1;
  int v = __atomic_load_n(&on, __ATOMIC_RELAXED);
  if (v < 0) {{
    const char* e = getenv("LEPTONC_STALL_WATCH");
    v = e == NULL || e[0] != '0';
    __atomic_store_n(&on, v, __ATOMIC_RELAXED);
  }}
  return v;
}}
/* a thread of the pool started `late` seconds after the caller: past {LATE_S * 1e3:g} ms, one thread for a while */
static inline void lep_late(double late) {{
  if (late > {LATE_S}) {{
    const double until = omp_get_wtime() + {SOLO_S};
    __atomic_store(&lep_solo_until, &until, __ATOMIC_RELAXED);
  }}
}}
/* before a run on `pool` threads: how late its threads start, unless kernels run on one thread already */
static void lep_watch(int pool) {{
  if (pool < 2 || !lep_watching() || lep_solo()) return;
  const double start = omp_get_wtime();
  double last = start;
  #pragma omp parallel num_threads(pool) reduction(max:last)
  last = omp_get_wtime();
  lep_late(last - start);
}}
"""
# a kernel's call in lep_kernels: on its team
THREADS_SOURCE += r"""#define LEP_TEAM(work, call)                                       \
    do {                                                           \
        int team_ = lep_solo() ? 1 : lep_team((work), pool);       \
        if (team_ > 1 && !watched) {                               \
            watched = 1;                                           \
            lep_watch(pool);                                       \
            if (lep_solo()) team_ = 1;                             \
        }                                                          \
        omp_set_num_threads(team_);                                \
        call;                                                      \
    } while (0)

"""
RUN_SOURCE = """int lep_run(void* const* in, void* const* out, void* const* w, char* arena, const int64_t* off,
            const int64_t* sym, double* prof) {
  const int callers = omp_get_max_threads(), pool = lep_threads();
  const int rc = lep_kernels(in, out, w, arena, off, sym, prof, pool);
  omp_set_num_threads(callers);
  return rc;
}
"""


def work_ns(k: Kernel) -> str:
    """A C expression of the kernel's estimated single-thread time in ns, from its sizes: multiply-adds of its
    matmuls or convolution, elements its loops visit and its op writes."""
    anchors = [p.nodes[0] for p in (k.parts[0], k.parts[-1])] if k.kind == "attention" else \
        [k.nodes[0]] if k.kind not in ("loop", "op") else []
    macs = []
    for a in anchors:
        x, w = a.inputs[0], a.inputs[1]
        reduced = D.product(w.shape[1:]) if a.op == "conv" else x.shape[-1] if x.shape else 1
        macs.append(D.mul(D.product(a.outputs[0].shape), reduced))
    elements = [D.product(k.domain)] if k.domain else []
    if k.kind == "op":
        elements += [D.product(v.shape) for v in k.nodes[0].outputs]
    try:
        terms = [f"{MAC_NS} * (double)({cdim(m)})" for m in macs] + \
            [f"{ELEMENT_NS} * (double)({cdim(e)})" for e in elements]
    except UnsupportedError:  # a data-dependent size: the whole pool, as every kernel had before
        return "INFINITY"
    return " + ".join(terms) or "0.0"


FAILURE_SOURCE = """/* the last failed run of each calling thread: kernel index, index, dim, dim size */
static _Thread_local int64_t lep_failure[4];
static inline int lep_index_failure(int kernel, const lep_index_error* e) {
  lep_failure[0] = kernel; lep_failure[1] = e->index; lep_failure[2] = e->dim; lep_failure[3] = e->size;
  return 1;
}
void lep_last_error(int64_t* record) { memcpy(record, lep_failure, sizeof lep_failure); }

"""


@dataclass
class _Function:
    """The C function of a kernel, which kernels of the same code (`also`) call too."""

    kernel: Kernel
    code: str
    also: list[str] = field(default_factory=list)

    def text(self) -> str:
        k = self.kernel
        header = "\n".join(f" *   {op}" for op in k.describe_ops())
        sources = list(dict.fromkeys(n.loc for n in k.absorbed + k.nodes if n.loc))  # (a loc has no "*")
        source = f"\n * from {', '.join(sources)}" if sources else ""
        shared = f"\n * also runs kernels {', '.join(self.also)} (the same code)" if self.also else ""
        return f"/* {k.name}: {k.kind} kernel; fused IR ops:\n{header}{source}{shared}\n */\n{self.code}"


def _same(a, b) -> bool:
    return len(a) == len(b) and all(D.same(x, y) for x, y in zip(a, b))
