"""torch.export a module and walk its FX graph, building the IR graph through the registered mappings."""
from __future__ import annotations

import inspect
import operator
import warnings

import numpy as np
import sympy
import torch
import torch.fx
from torch.fx.experimental.symbolic_shapes import free_unbacked_symbols

from ...ir import dims as D
from ...ir.dtypes import DType
from ...ir.errors import IRError, LeptoncError, UnsupportedOpError
from ...ir.graph import Graph, Value
from ...ir.types import TensorType
from ...ir.verifier import verify
from .registry import HANDLERS, supported_ops

_DTYPES = {
    torch.float32: DType.f32, torch.float16: DType.f16, torch.bfloat16: DType.bf16, torch.float64: DType.f64,
    torch.int64: DType.i64, torch.int32: DType.i32, torch.int16: DType.i16, torch.int8: DType.i8,
    torch.uint8: DType.u8, torch.bool: DType.bool,
    torch.float8_e4m3fn: DType.f8e4m3fn, torch.float8_e4m3fnuz: DType.f8e4m3fnuz, torch.float8_e5m2: DType.f8e5m2,
    torch.float8_e5m2fnuz: DType.f8e5m2fnuz,
}

# ATen ops that only check or constrain sizes at run time; they produce nothing the graph needs.
_CHECKS = {"aten._assert_tensor_metadata.default", "aten._assert_scalar.default",
           "aten.sym_constrain_range_for_size.default", "aten.sym_constrain_range.default",
           "aten._assert_async.msg"}


def import_torch(module: torch.nn.Module, example_inputs, dynamic_shapes=None) -> Graph:
    """Trace `module` on `example_inputs` with torch.export and return it as a verified Graph."""
    model = type(module).__name__
    example_inputs = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
    try:
        with warnings.catch_warnings():  # torch's own deprecation notices are not the user's to act on
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"(torch|copyreg)")
            ep = torch.export.export(module, example_inputs, dynamic_shapes=dynamic_shapes)
            if _needs_decompositions(ep):
                table = torch.export.default_decompositions()
                # attention stays whole and nn.py maps it: torch's own decomposition of it breaks the
                # re-trace of some models (GPT-2 at batch > 1: a view of non-contiguous strides)
                table.pop(torch.ops.aten.scaled_dot_product_attention.default, None)
                ep = ep.run_decompositions(table)
    except LeptoncError:
        raise
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise LeptoncError(f"torch.export could not trace {model}: {type(e).__name__}: {first}") from e
    names = _dim_names(module, example_inputs, dynamic_shapes, ep)
    graph = _Importer(ep, model, names).run()
    verify(graph)
    return graph


def _needs_decompositions(ep) -> bool:
    """Whether the exported graph holds an op with no mapping of its own. Only then do torch's decompositions
    run (they take most of an export's time: over half a second even for a few linear layers)."""
    return any(n.op == "call_function" and n.target is not operator.getitem
               and str(n.target) not in HANDLERS and str(n.target) not in _CHECKS for n in ep.graph.nodes)


def _dim_names(module, example_inputs, dynamic_shapes, ep) -> dict[str, str]:
    """Export symbol name (s0, s43, ...) -> the name of the torch.export.Dim the user gave for it."""
    if dynamic_shapes is None:
        return {}
    specs = dynamic_shapes
    if isinstance(specs, dict):
        bound = inspect.signature(module.forward).bind(*example_inputs)
        specs = [specs.get(name) for name in bound.arguments]
    placeholders = [n for n in ep.graph.nodes if n.op == "placeholder"]
    user = [p for p, s in zip(placeholders, ep.graph_signature.input_specs)
            if s.kind == torch.export.graph_signature.InputKind.USER_INPUT]
    names: dict[str, str] = {}
    for node, spec in zip(user, specs):
        val = node.meta.get("val")
        if spec is None or not isinstance(val, torch.Tensor):
            continue
        axes = spec.items() if isinstance(spec, dict) else enumerate(spec)
        for axis, dim in axes:
            name = getattr(dim, "__name__", None)
            size = val.shape[axis]
            if name and isinstance(size, torch.SymInt) and getattr(size.node.expr, "is_Symbol", False):
                names.setdefault(str(size.node.expr), name)
    return names


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu().contiguous()
    if t.dtype not in _DTYPES:
        raise LeptoncError(f"tensor dtype {t.dtype} has no leptonc dtype")
    dtype = _DTYPES[t.dtype]
    if dtype is DType.bf16 or dtype.is_float8:  # numpy has no such type: the bits, read as ml_dtypes'
        return t.view(torch.int16 if dtype is DType.bf16 else torch.uint8).numpy().view(dtype.numpy)
    return t.numpy()


class _Importer:
    """Walks the exported FX graph in order and builds the IR graph node by node."""

    def __init__(self, ep, model: str, dim_names: dict[str, str]):
        self.ep = ep
        self.model = model
        self.dim_names = dim_names
        self.g = Graph(model)
        self.env: dict[torch.fx.Node, object] = {}
        self.lazy_constants: dict[torch.fx.Node, tuple[str, torch.Tensor]] = {}
        self.scalars: dict[tuple, Value] = {}

    # -- the walk ----------------------------------------------------------
    def run(self) -> Graph:
        kinds = torch.export.graph_signature.InputKind
        placeholders = [n for n in self.ep.graph.nodes if n.op == "placeholder"]
        tensors = {**self.ep.state_dict, **self.ep.constants}
        for node, spec in zip(placeholders, self.ep.graph_signature.input_specs):
            if spec.kind == kinds.USER_INPUT:
                val = node.meta.get("val")
                if not isinstance(val, torch.Tensor):
                    raise LeptoncError(f"{self.model}: input '{node.name}' is a {type(val).__name__}; "
                                       f"only tensor inputs are supported")
                self.env[node] = self.g.add_input(node.name, self.meta_type(node))
            elif spec.target in tensors:
                self.lazy_constants[node] = (spec.target, tensors[spec.target])
            else:
                raise LeptoncError(f"{self.model}: input '{node.name}' ({spec.kind.name}) is not supported")
        for node in self.ep.graph.nodes:
            if node.op == "call_function":
                self.call(node)
            elif node.op == "output":
                user = torch.export.graph_signature.OutputKind.USER_OUTPUT
                outs = [o for o, spec in zip(node.args[0], self.ep.graph_signature.output_specs)
                        if spec.kind == user and isinstance(o, torch.fx.Node)]
                self.g.set_outputs([self.v(o) for o in outs])
        return self.g

    def call(self, node: torch.fx.Node) -> None:
        name = str(node.target)
        val = node.meta.get("val")
        if name in _CHECKS:
            return
        if node.target is operator.getitem:
            self.env[node] = self.env[node.args[0]][node.args[1]]
            return
        if isinstance(val, (torch.SymInt, int)) and not isinstance(val, bool):
            if free_unbacked_symbols(val):
                raise UnsupportedOpError(
                    f"{self.model}: node '{node.name}' ({name}{self.location(node)}) reads a tensor's value as a "
                    f"size (.item(), nonzero, ...); sizes that depend on data are not supported")
            self.env[node] = self.dim(val)  # size arithmetic: torch already worked out the value
            return
        handler = HANDLERS.get(name)
        if handler is None:
            raise UnsupportedOpError(
                f"{self.model}: ATen op '{name}' (node '{node.name}'{self.location(node)}) is not supported by "
                f"the torch frontend. Supported ops (leptonc.frontends.torch.SUPPORTED_OPS): "
                f"{', '.join(supported_ops())}")
        start = len(self.g.nodes)
        try:
            result = handler(self, node, _bind(node))
        except LeptoncError as e:
            if str(e).startswith(self.model + ":"):
                raise
            raise type(e)(f"{self.model}: node '{node.name}' ({name}{self.location(node)}): {e}") from None
        source = module_path(node)
        for n in self.g.nodes[start:]:
            if n.op != "const":
                n.loc = source
        self.env[node] = result
        self.check(node, result)

    def location(self, node: torch.fx.Node) -> str:
        """', in encoder.layer.0.attention, at file.py:123' for the module and the model source line that made
        this node, as far as torch recorded them."""
        module = module_path(node)
        where = f", in {module}" if module else ""
        trace = node.meta.get("stack_trace") or ""
        lines = [ln.strip() for ln in trace.splitlines() if ln.strip().startswith("File ")]
        if not lines:
            return where
        parts = lines[-1].split(",")
        file = parts[0][len("File "):].strip().strip('"')
        return where + (f", at {file}:{parts[1].strip().removeprefix('line ')}" if len(parts) > 1 else f", at {file}")

    def check(self, node: torch.fx.Node, result) -> None:
        """Compare the IR result with what torch says; fill in sizes inference left unknown."""
        val = node.meta.get("val")
        if not isinstance(result, Value) or not isinstance(val, torch.Tensor):
            return
        want = self.meta_type(node)
        got = result.type
        if got.dtype != want.dtype or got.rank != want.rank or any(
                isinstance(a, int) and isinstance(b, int) and a != b for a, b in zip(got.shape, want.shape)):
            raise IRError(f"{self.model}: node '{node.name}' ({node.target}) was mapped to {got}, "
                          f"but torch says {want} (a bug in the torch frontend)")
        if D.UNKNOWN in got.shape and not result.uses:
            result.type = got.with_shape(b if a == D.UNKNOWN else a for a, b in zip(got.shape, want.shape))

    # -- values --------------------------------------------------------------
    def v(self, arg) -> Value:
        """The IR value of an FX node argument (parameters become constants on first use)."""
        if arg in self.lazy_constants:
            target, tensor = self.lazy_constants.pop(arg)
            self.env[arg] = self.g.add_constant(_to_numpy(tensor), target)
        value = self.env[arg]
        if not isinstance(value, Value):
            raise LeptoncError(f"expected a tensor, got {value!r}")
        return value

    def is_tensor(self, arg) -> bool:
        return isinstance(arg, torch.fx.Node) and isinstance(arg.meta.get("val"), torch.Tensor)

    def scalar(self, value, dtype: DType) -> Value:
        """A 0-d constant (shared between uses of the same value and dtype)."""
        key = (repr(value), dtype)
        if key not in self.scalars:
            self.scalars[key] = self.g.add_constant(np.array(value, dtype=dtype.numpy), "c")
        return self.scalars[key]

    def operand(self, arg, dtype: DType) -> Value:
        """A tensor argument cast to dtype, or a Python number as a constant of dtype."""
        if self.is_tensor(arg):
            return self.cast(self.v(arg), dtype)
        if isinstance(arg, torch.fx.Node):
            arg = self.env[arg]
        if isinstance(arg, str):
            raise UnsupportedOpError(f"a symbolic size ({arg}) used as a tensor value is not supported")
        return self.scalar(arg, dtype)

    def cast(self, v: Value, dtype: DType) -> Value:
        """v converted as torch converts: into float8_e4m3fn saturating (inf included), into the other 8-bit
        floats not (out of range is inf or NaN)."""
        if v.dtype is dtype:
            return v
        saturate = {"saturate": True} if dtype is DType.f8e4m3fn else {}
        return self.g.add("cast", v, dtype=dtype, name=v.name, **saturate)

    def add(self, op: str, *inputs: Value, **attrs) -> Value:
        return self.g.add(op, *inputs, **attrs)

    def reshape(self, v: Value, shape) -> Value:
        shape = tuple(shape)
        if v.type.rank == len(shape) and all(D.same(a, b) for a, b in zip(v.shape, shape)):
            return v
        return self.add("reshape", v, shape=shape)

    # -- sizes and types -----------------------------------------------------
    def dim(self, size) -> object:
        """An int, a SymInt or a sympy expression as an IR dim (an int, a symbol or an expression)."""
        if isinstance(size, int):
            return size
        expr = size.node.expr if isinstance(size, torch.SymInt) else size
        if getattr(expr, "is_Integer", False):
            return int(expr)
        try:
            symbols = sorted(expr.free_symbols, key=str)
            poly = sympy.Poly(expr, *symbols)
        except Exception:
            return D.UNKNOWN
        terms = []
        for powers, coeff in poly.terms():
            if not coeff.is_Integer:
                return D.UNKNOWN
            factors = [self.dim_names.get(str(s), str(s)) for s, p in zip(symbols, powers) for _ in range(p)]
            terms.append("*".join([str(int(coeff))] + factors))
        return D.canonical(" + ".join(terms) or "0")

    def meta_shape(self, node: torch.fx.Node) -> tuple:
        return tuple(self.dim(s) for s in node.meta["val"].shape)

    def meta_type(self, node: torch.fx.Node) -> TensorType:
        val = node.meta["val"]
        if val.dtype not in _DTYPES:
            raise LeptoncError(f"{self.model}: node '{node.name}' has dtype {val.dtype}, which leptonc lacks")
        return TensorType(_DTYPES[val.dtype], self.meta_shape(node))

    def meta_dtype(self, node: torch.fx.Node) -> DType:
        return self.meta_type(node).dtype

    def promoted(self, a, b) -> DType:
        """torch's result dtype for two arguments, each a tensor or a Python number."""
        def proxy(arg):
            if self.is_tensor(arg):
                val = arg.meta["val"]
                return torch.empty((0,) * val.dim(), dtype=val.dtype)  # same dtype and dimension category
            return arg
        pa, pb = proxy(a), proxy(b)
        if not isinstance(pa, torch.Tensor) and not isinstance(pb, torch.Tensor):
            pa = torch.tensor(pa)
        return _DTYPES[torch.result_type(pa, pb)]

    def arange(self, start, end, step, dtype: DType, length) -> Value:
        """start, start+step, ... below end; the length may be symbolic."""
        if all(isinstance(x, (int, float)) for x in (start, end, step)):
            return self.add("range", start=start, limit=end, delta=step, dtype=dtype)
        if not (isinstance(start, int) and isinstance(step, int)):
            raise UnsupportedOpError("arange with a symbolic start or step is not supported")
        counts = self.add("cumsum", self.add("full", shape=(length,), value=1.0, dtype=DType.i64),
                          axis=0, exclusive=True)
        if step != 1:
            counts = self.add("mul", counts, self.scalar(step, DType.i64))
        if start != 0:
            counts = self.add("add", counts, self.scalar(start, DType.i64))
        return self.cast(counts, dtype)

    def size_tensor(self, v: Value, axis: int) -> Value:
        """Dim `axis` of v as a 0-d i64 tensor (a constant when the size is fixed)."""
        if isinstance(v.shape[axis], int):
            return self.scalar(v.shape[axis], DType.i64)
        return self.reshape(self.add("shape_of", v, start=axis, end=axis + 1), ())


def module_path(node: torch.fx.Node) -> str | None:
    """The path of the innermost module whose forward made this node (encoder.layer.0.attention.query), from
    torch.export's nn_module_stack; None for the top module's own code."""
    stack = node.meta.get("nn_module_stack") or {}
    path = next(reversed(stack.values()))[0] if stack else ""
    return path or None


def _bind(node: torch.fx.Node) -> dict:
    """The node's arguments by schema name, defaults filled in."""
    schema = node.target._schema
    out = {}
    for i, arg in enumerate(schema.arguments):
        if i < len(node.args) and not arg.kwarg_only:
            out[arg.name] = node.args[i]
        elif arg.name in node.kwargs:
            out[arg.name] = node.kwargs[arg.name]
        else:
            out[arg.name] = arg.default_value if arg.has_default_value() else None
    return out
