"""PyTorch frontend: torch.export a module, decompose it to the core ATen op set, map each ATen op to IR ops.

    g = import_torch(module, (x,), dynamic_shapes={"x": {0: torch.export.Dim("batch")}})

Parameters and buffers become named constants under their state-dict names
(`fc1.weight`). Dynamic sizes become dim symbols named after the user's
torch.export.Dim objects ("batch", "seq"); sizes derived from them become
expressions ("batch*seq"). Composite ATen ops (softmax, layer norm, gelu,
batch norm, attention...) are decomposed into the IR's primitive ops here.
An ATen op without a mapping raises UnsupportedOpError listing SUPPORTED_OPS.
"""
from __future__ import annotations

import inspect
import math
import operator
import warnings
from typing import Callable

import numpy as np
import sympy
import torch
import torch.fx
from torch.fx.experimental.symbolic_shapes import free_unbacked_symbols

from ..ir import dims as D
from ..ir.dtypes import DType
from ..ir.errors import IRError, LeptoncError, UnsupportedOpError
from ..ir.graph import Graph, Value
from ..ir.ops.shape import BIG, resolve_reshape
from ..ir.types import TensorType
from ..ir.verifier import verify

_DTYPES = {
    torch.float32: DType.f32, torch.float16: DType.f16, torch.bfloat16: DType.bf16, torch.float64: DType.f64,
    torch.int64: DType.i64, torch.int32: DType.i32, torch.int16: DType.i16, torch.int8: DType.i8,
    torch.uint8: DType.u8, torch.bool: DType.bool,
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
            table = torch.export.default_decompositions()
            table.pop(torch.ops.aten.scaled_dot_product_attention.default, None)  # mapped here, see _sdpa
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
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(DType.bf16.numpy)
    if t.dtype not in _DTYPES:
        raise LeptoncError(f"tensor dtype {t.dtype} has no leptonc dtype")
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
        handler = _HANDLERS.get(name)
        if handler is None:
            raise UnsupportedOpError(
                f"{self.model}: ATen op '{name}' (node '{node.name}'{self.location(node)}) is not supported by "
                f"the torch frontend. Supported ops (leptonc.frontends.torch.SUPPORTED_OPS): "
                f"{', '.join(SUPPORTED_OPS)}")
        try:
            result = handler(self, node, _bind(node))
        except LeptoncError as e:
            if str(e).startswith(self.model + ":"):
                raise
            raise type(e)(f"{self.model}: node '{node.name}' ({name}{self.location(node)}): {e}") from None
        self.env[node] = result
        self.check(node, result)

    def location(self, node: torch.fx.Node) -> str:
        """', at file.py:123' for the model source line that made this node, when torch recorded it."""
        trace = node.meta.get("stack_trace") or ""
        lines = [ln.strip() for ln in trace.splitlines() if ln.strip().startswith("File ")]
        if not lines:
            return ""
        parts = lines[-1].split(",")
        file = parts[0][len("File "):].strip().strip('"')
        return f", at {file}:{parts[1].strip().removeprefix('line ')}" if len(parts) > 1 else f", at {file}"

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
        return v if v.dtype is dtype else self.g.add("cast", v, dtype=dtype, name=v.name)

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


# --------------------------------------------------------------------------------------------------------
# Op mappings. Each handler takes (importer, fx node, arguments by name) and returns a Value or a tuple.

_HANDLERS: dict[str, Callable] = {}


def _handles(*names: str):
    def register(fn):
        for n in names:
            _HANDLERS[n if n.startswith("aten.") else "aten." + n] = fn
        return fn
    return register


def _axis(dim, rank: int) -> int:
    return dim % rank if rank else 0


def _axes(dims, rank: int) -> tuple:
    if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
        return tuple(range(rank))
    if isinstance(dims, int):
        dims = [dims]
    return tuple(sorted(_axis(d, rank) for d in dims))


# -- elementwise ------------------------------------------------------------------------------------------

# ATen unary ops whose IR op has the same name.
_UNARY = ("neg", "abs", "exp", "log", "sqrt", "rsqrt", "sin", "cos", "tan", "tanh", "sigmoid", "erf", "reciprocal",
          "floor", "ceil", "round", "sign", "relu", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh",
          "atanh", "isnan")


def _unary(op: str):
    def handle(imp, node, a):
        x = imp.v(a["self"])
        dtype = x.dtype if op == "isnan" else imp.meta_dtype(node)  # int inputs of float math are cast first
        return imp.add(op, imp.cast(x, dtype))
    return handle


for _op in _UNARY:
    _handles(f"{_op}.default")(_unary(_op))


def _binary(op: str, *, compare: bool = False):
    def handle(imp, node, a):
        x, y = a["self"], a["other"]
        dtype = imp.promoted(x, y) if compare else imp.meta_dtype(node)
        xv, yv = imp.operand(x, dtype), imp.operand(y, dtype)
        if a.get("alpha") not in (None, 1):
            yv = imp.add("mul", yv, imp.scalar(a["alpha"], dtype))
        return imp.add(op, xv, yv)
    return handle


for _name, _op in {"add": "add", "sub": "sub", "mul": "mul", "maximum": "max", "minimum": "min"}.items():
    _handles(f"{_name}.Tensor", f"{_name}.Scalar", f"{_name}.default")(_binary(_op))
for _name, _op in {"eq": "equal", "lt": "less", "le": "less_equal", "gt": "greater", "ge": "greater_equal"}.items():
    _handles(f"{_name}.Tensor", f"{_name}.Scalar")(_binary(_op, compare=True))


@_handles("ne.Tensor", "ne.Scalar")
def _ne(imp, node, a):
    return imp.add("not", _binary("equal", compare=True)(imp, node, a))


@_handles("rsub.Scalar", "rsub.Tensor")
def _rsub(imp, node, a):
    return _binary("sub")(imp, node, {"self": a["other"], "other": a["self"], "alpha": a.get("alpha")})


@_handles("div.Tensor", "div.Scalar", "div.Tensor_mode", "div.Scalar_mode")
def _divide(imp, node, a):
    mode = a.get("rounding_mode")
    dtype = imp.meta_dtype(node)
    x, y = imp.operand(a["self"], dtype), imp.operand(a["other"], dtype)
    if mode == "floor":
        return _floor_divide(imp, x, y)
    q = imp.add("div", x, y)  # integer division already truncates
    return _trunc(imp, q) if mode == "trunc" and dtype.is_float else q


def _trunc(imp, q: Value) -> Value:
    """Round toward zero: floor for positives, ceil for negatives."""
    positive = imp.add("greater_equal", q, imp.scalar(0, q.dtype))
    return imp.add("where", positive, imp.add("floor", q), imp.add("ceil", q))


def _floor_divide(imp, x: Value, y: Value) -> Value:
    if x.dtype.is_float:
        return imp.add("floor", imp.add("div", x, y))
    return imp.add("div", imp.add("sub", x, imp.add("mod", x, y)), y)  # exact: x - x mod y divides by y


@_handles("floor_divide.default", "floor_divide.Scalar")
def _floor_div(imp, node, a):
    dtype = imp.meta_dtype(node)
    return _floor_divide(imp, imp.operand(a["self"], dtype), imp.operand(a["other"], dtype))


@_handles("remainder.Tensor", "remainder.Scalar", "fmod.Tensor", "fmod.Scalar")
def _remainder(imp, node, a):
    dtype = imp.meta_dtype(node)
    return imp.add("mod", imp.operand(a["self"], dtype), imp.operand(a["other"], dtype),
                   fmod=str(node.target).startswith("aten.fmod"))


@_handles("pow.Tensor_Scalar", "pow.Tensor_Tensor", "pow.Scalar")
def _pow(imp, node, a):
    dtype = imp.meta_dtype(node)
    base, exponent = a["self"], a["exponent"]
    if exponent in (2, 3):  # small integer powers as products: exact enough and much cheaper than pow
        x = imp.operand(base, dtype)
        square = imp.add("mul", x, x)
        return square if exponent == 2 else imp.add("mul", square, x)
    return imp.add("pow", imp.operand(base, dtype), imp.operand(exponent, dtype))


@_handles("where.self", "where.ScalarSelf", "where.ScalarOther", "where.Scalar")
def _where(imp, node, a):
    dtype = imp.meta_dtype(node)
    cond = imp.cast(imp.v(a["condition"]), DType.bool)
    return imp.add("where", cond, imp.operand(a["self"], dtype), imp.operand(a["other"], dtype))


@_handles("clamp.default", "clamp.Tensor", "clamp_min.default", "clamp_max.default", "hardtanh.default")
def _clamp(imp, node, a):
    dtype = imp.meta_dtype(node)
    x = imp.operand(a["self"], dtype)
    low = a.get("min", a.get("min_val"))
    high = a.get("max", a.get("max_val"))
    if low is not None:
        x = imp.add("max", x, imp.operand(low, dtype))
    if high is not None:
        x = imp.add("min", x, imp.operand(high, dtype))
    return x


def _logical(bool_op: str, int_op: str):
    def handle(imp, node, a):
        dtype = imp.meta_dtype(node)
        x, y = imp.operand(a["self"], dtype), imp.operand(a["other"], dtype)
        return imp.add(bool_op if dtype is DType.bool else int_op, x, y)
    return handle


_handles("bitwise_and.Tensor", "bitwise_and.Scalar")(_logical("and", "bitwise_and"))
_handles("bitwise_or.Tensor", "bitwise_or.Scalar")(_logical("or", "bitwise_or"))
_handles("bitwise_xor.Tensor", "bitwise_xor.Scalar")(_logical("xor", "bitwise_xor"))


@_handles("bitwise_not.default")
def _bitwise_not(imp, node, a):
    x = imp.v(a["self"])
    return imp.add("not" if x.dtype is DType.bool else "bitwise_not", x)


@_handles("logical_not.default")
def _logical_not(imp, node, a):
    return imp.add("not", imp.cast(imp.v(a["self"]), DType.bool))


@_handles("logical_and.default", "logical_or.default", "logical_xor.default")
def _logical_binary(imp, node, a):
    op = str(node.target).split(".")[1].removeprefix("logical_")
    return imp.add(op, imp.cast(imp.v(a["self"]), DType.bool), imp.cast(imp.v(a["other"]), DType.bool))


@_handles("_to_copy.default", "clone.default", "alias.default", "lift_fresh_copy.default", "detach.default",
          "contiguous.default")
def _copy(imp, node, a):
    return imp.cast(imp.v(a["self"]), imp.meta_dtype(node))


@_handles("copy.default")
def _copy_into(imp, node, a):
    """copy(self, src): src's values in self's dtype and shape."""
    src = imp.cast(imp.v(a["src"]), imp.meta_dtype(node))
    shape = imp.meta_shape(node)
    same = src.type.rank == len(shape) and all(D.same(p, q) for p, q in zip(src.shape, shape))
    return src if same else imp.add("broadcast_to", src, shape=shape)


@_handles("gelu.default")
def _gelu(imp, node, a):
    x = imp.v(a["self"])
    c = lambda value: imp.scalar(value, x.dtype)  # noqa: E731
    if a.get("approximate", "none") == "tanh":
        cube = imp.add("mul", imp.add("mul", x, x), x)
        inner = imp.add("mul", imp.add("add", x, imp.add("mul", cube, c(0.044715))), c(math.sqrt(2 / math.pi)))
        gate = imp.add("add", imp.add("tanh", inner), c(1.0))
    else:
        gate = imp.add("add", imp.add("erf", imp.add("mul", x, c(math.sqrt(0.5)))), c(1.0))
    return imp.add("mul", imp.add("mul", x, c(0.5)), gate)


@_handles("silu.default")
def _silu(imp, node, a):
    x = imp.v(a["self"])
    return imp.add("mul", x, imp.add("sigmoid", x))


def _hardsigmoid_of(imp, x: Value) -> Value:
    shifted = imp.add("add", x, imp.scalar(3.0, x.dtype))
    clipped = imp.add("min", imp.add("relu", shifted), imp.scalar(6.0, x.dtype))
    return imp.add("div", clipped, imp.scalar(6.0, x.dtype))


@_handles("hardsigmoid.default")
def _hardsigmoid(imp, node, a):
    return _hardsigmoid_of(imp, imp.v(a["self"]))


@_handles("hardswish.default")
def _hardswish(imp, node, a):
    x = imp.v(a["self"])
    return imp.add("mul", x, _hardsigmoid_of(imp, x))


@_handles("leaky_relu.default")
def _leaky_relu(imp, node, a):
    x = imp.v(a["self"])
    slope = a.get("negative_slope", 0.01)
    return imp.add("where", imp.add("greater", x, imp.scalar(0, x.dtype)), x,
                   imp.add("mul", x, imp.scalar(slope, x.dtype)))


@_handles("elu.default")
def _elu(imp, node, a):
    x = imp.v(a["self"])
    c = lambda value: imp.scalar(value, x.dtype)  # noqa: E731
    alpha, scale, input_scale = a.get("alpha", 1), a.get("scale", 1), a.get("input_scale", 1)
    negative = imp.add("mul", imp.add("sub", imp.add("exp", imp.add("mul", x, c(input_scale))), c(1.0)),
                       c(alpha * scale))
    return imp.add("where", imp.add("greater", x, c(0)), imp.add("mul", x, c(scale)), negative)


@_handles("log1p.default")
def _log1p(imp, node, a):
    x = imp.v(a["self"])
    return imp.add("log", imp.add("add", x, imp.scalar(1.0, x.dtype)))


@_handles("expm1.default")
def _expm1(imp, node, a):
    x = imp.v(a["self"])
    return imp.add("sub", imp.add("exp", x), imp.scalar(1.0, x.dtype))


# -- reductions and normalizations ------------------------------------------------------------------------

def _reduction(op: str):
    def handle(imp, node, a):
        dtype = imp.meta_dtype(node)
        x = imp.v(a["self"])
        if op in ("reduce_sum", "reduce_mean", "reduce_prod") or dtype is DType.bool:
            x = imp.cast(x, dtype)
        axes = _axes(a.get("dim"), x.type.rank)
        return imp.cast(imp.add(op, x, axes=axes, keepdims=bool(a.get("keepdim"))), dtype)
    return handle


_handles("sum.dim_IntList", "sum.default")(_reduction("reduce_sum"))
_handles("mean.dim", "mean.default")(_reduction("reduce_mean"))
_handles("prod.dim_int", "prod.default")(_reduction("reduce_prod"))
_handles("amax.default", "any.dim", "any.dims", "any.default")(_reduction("reduce_max"))
_handles("amin.default", "all.dim", "all.dims", "all.default")(_reduction("reduce_min"))


def _argreduce(op: str):
    def handle(imp, node, a):
        x = imp.v(a["self"])
        if a.get("dim") is None:
            x = imp.reshape(x, (x.type.numel,))
        return imp.add(op, x, axis=_axis(a.get("dim") or 0, x.type.rank), keepdims=bool(a.get("keepdim")))
    return handle


_handles("argmax.default")(_argreduce("argmax"))
_handles("argmin.default")(_argreduce("argmin"))


@_handles("max.dim", "min.dim")
def _max_dim(imp, node, a):
    x = imp.v(a["self"])
    axis, keep = _axis(a["dim"], x.type.rank), bool(a.get("keepdim"))
    kind = "max" if str(node.target).startswith("aten.max") else "min"
    return (imp.add(f"reduce_{kind}", x, axes=(axis,), keepdims=keep),
            imp.add(f"arg{kind}", x, axis=axis, keepdims=keep))


@_handles("var.correction", "var.dim")
def _var(imp, node, a):
    x = imp.v(a["self"])
    axes = _axes(a.get("dim"), x.type.rank)
    count = D.product(x.shape[i] for i in axes)
    if not isinstance(count, int):
        raise UnsupportedOpError("var over symbolic dims is not supported")
    correction = a.get("correction")
    correction = (1 if a.get("unbiased", True) else 0) if correction is None else correction
    centered = imp.add("sub", x, imp.add("reduce_mean", x, axes=axes, keepdims=True))
    total = imp.add("reduce_sum", imp.add("mul", centered, centered), axes=axes, keepdims=bool(a.get("keepdim")))
    return imp.add("div", total, imp.scalar(max(count - correction, 0), x.dtype))


def _softmax_parts(imp, x: Value, axis: int):
    shifted = imp.add("sub", x, imp.add("reduce_max", x, axes=(axis,), keepdims=True))
    exp = imp.add("exp", shifted)
    return shifted, exp, imp.add("reduce_sum", exp, axes=(axis,), keepdims=True)


@_handles("_softmax.default", "softmax.int")
def _softmax(imp, node, a):
    x = imp.cast(imp.v(a["self"]), imp.meta_dtype(node))
    _, exp, total = _softmax_parts(imp, x, _axis(a["dim"], x.type.rank))
    return imp.add("div", exp, total)


@_handles("_log_softmax.default", "log_softmax.int")
def _log_softmax(imp, node, a):
    x = imp.cast(imp.v(a["self"]), imp.meta_dtype(node))
    shifted, _, total = _softmax_parts(imp, x, _axis(a["dim"], x.type.rank))
    return imp.add("sub", shifted, imp.add("log", total))


@_handles("native_layer_norm.default")
def _layer_norm(imp, node, a):
    x = imp.v(a["input"])
    axes = tuple(range(x.type.rank - len(a["normalized_shape"]), x.type.rank))
    mean = imp.add("reduce_mean", x, axes=axes, keepdims=True)
    centered = imp.add("sub", x, mean)
    var = imp.add("reduce_mean", imp.add("mul", centered, centered), axes=axes, keepdims=True)
    rstd = imp.add("rsqrt", imp.add("add", var, imp.scalar(a["eps"], x.dtype)))
    y = imp.add("mul", centered, rstd)
    if a.get("weight") is not None:
        y = imp.add("mul", y, imp.v(a["weight"]))
    if a.get("bias") is not None:
        y = imp.add("add", y, imp.v(a["bias"]))
    return y, mean, rstd


def _affine(imp, y: Value, a: dict, per_channel: tuple) -> Value:
    """y * weight + bias with per-channel weight and bias (either may be absent)."""
    if a.get("weight") is not None:
        y = imp.add("mul", y, imp.reshape(imp.v(a["weight"]), per_channel))
    if a.get("bias") is not None:
        y = imp.add("add", y, imp.reshape(imp.v(a["bias"]), per_channel))
    return y


@_handles("_native_batch_norm_legit_no_training.default", "native_batch_norm.default",
          "_native_batch_norm_legit.default", "_native_batch_norm_legit.no_stats")
def _batch_norm(imp, node, a):
    x = imp.v(a["input"])
    per_channel = (x.shape[1],) + (1,) * (x.type.rank - 2)
    eps = imp.scalar(a["eps"], x.dtype)
    if a.get("training"):
        if a.get("running_mean") is not None:
            raise UnsupportedOpError("batch norm in training mode (call module.eval() before importing)")
        # no running statistics (instance norm, or batch norm without tracking): normalize by batch statistics
        axes = (0,) + tuple(range(2, x.type.rank))
        mean = imp.add("reduce_mean", x, axes=axes, keepdims=True)
        centered = imp.add("sub", x, mean)
        var = imp.add("reduce_mean", imp.add("mul", centered, centered), axes=axes, keepdims=True)
        rstd = imp.add("rsqrt", imp.add("add", var, eps))
        y = _affine(imp, imp.add("mul", centered, rstd), a, per_channel)
        return y, imp.reshape(mean, (x.shape[1],)), imp.reshape(rstd, (x.shape[1],))
    mean = imp.reshape(imp.v(a["running_mean"]), per_channel)
    var = imp.reshape(imp.v(a["running_var"]), per_channel)
    scale = imp.add("rsqrt", imp.add("add", var, eps))
    if a.get("weight") is not None:
        scale = imp.add("mul", scale, imp.reshape(imp.v(a["weight"]), per_channel))
    y = imp.add("mul", imp.add("sub", x, mean), scale)
    if a.get("bias") is not None:
        y = imp.add("add", y, imp.reshape(imp.v(a["bias"]), per_channel))
    return y, _Missing("the saved mean of batch norm"), _Missing("the saved variance of batch norm")


@_handles("native_group_norm.default")
def _group_norm(imp, node, a):
    x = imp.v(a["input"])
    n, groups = x.shape[0], a["group"]
    grouped = imp.reshape(x, (n, groups, D.divide_exact(D.product(x.shape[1:]), groups)))
    mean = imp.add("reduce_mean", grouped, axes=(2,), keepdims=True)
    centered = imp.add("sub", grouped, mean)
    var = imp.add("reduce_mean", imp.add("mul", centered, centered), axes=(2,), keepdims=True)
    rstd = imp.add("rsqrt", imp.add("add", var, imp.scalar(a["eps"], x.dtype)))
    y = imp.reshape(imp.add("mul", centered, rstd), x.shape)
    y = _affine(imp, y, a, (x.shape[1],) + (1,) * (x.type.rank - 2))
    return y, imp.reshape(mean, (n, groups)), imp.reshape(rstd, (n, groups))


@_handles("linalg_vector_norm.default")
def _vector_norm(imp, node, a):
    x = imp.cast(imp.v(a["self"]), imp.meta_dtype(node))
    axes, keep, order = _axes(a.get("dim"), x.type.rank), bool(a.get("keepdim")), a.get("ord", 2)
    magnitude = imp.add("abs", x)
    if order in (math.inf, -math.inf):
        return imp.add("reduce_max" if order > 0 else "reduce_min", magnitude, axes=axes, keepdims=keep)
    if order == 0:
        nonzero = imp.cast(imp.add("not", imp.add("equal", x, imp.scalar(0, x.dtype))), x.dtype)
        return imp.add("reduce_sum", nonzero, axes=axes, keepdims=keep)
    if order == 1:
        return imp.add("reduce_sum", magnitude, axes=axes, keepdims=keep)
    if order == 2:
        return imp.add("sqrt", imp.add("reduce_sum", imp.add("mul", x, x), axes=axes, keepdims=keep))
    powered = imp.add("pow", magnitude, imp.scalar(order, x.dtype))
    return imp.add("pow", imp.add("reduce_sum", powered, axes=axes, keepdims=keep), imp.scalar(1 / order, x.dtype))


# -- linear algebra, convolution, pooling, attention ------------------------------------------------------

@_handles("mm.default", "bmm.default", "matmul.default")
def _mm(imp, node, a):
    return imp.add("matmul", imp.v(a["self"]), imp.v(a["mat2"] if "mat2" in a else a["other"]))


@_handles("addmm.default", "baddbmm.default")
def _addmm(imp, node, a):
    product = imp.add("matmul", imp.v(a["mat1"] if "mat1" in a else a["batch1"]),
                      imp.v(a["mat2"] if "mat2" in a else a["batch2"]))
    bias = imp.v(a["self"])
    if a.get("alpha", 1) != 1:
        product = imp.add("mul", product, imp.scalar(a["alpha"], product.dtype))
    if a.get("beta", 1) != 1:
        bias = imp.add("mul", bias, imp.scalar(a["beta"], bias.dtype))
    return imp.add("add", bias, product)


def _per_dim(values, n: int) -> tuple:
    values = tuple(values) if isinstance(values, (list, tuple)) else (values,)
    return values * n if len(values) == 1 else values


@_handles("convolution.default", "conv2d.default", "conv1d.default")
def _conv(imp, node, a):
    if a.get("transposed"):
        raise UnsupportedOpError("transposed convolution is not supported")
    x, w = imp.v(a["input"]), imp.v(a["weight"])
    nsp = x.type.rank - 2
    pads = _per_dim(a["padding"], nsp)
    inputs = [x, w] + ([imp.v(a["bias"])] if a.get("bias") is not None else [])
    return imp.add("conv", *inputs, strides=_per_dim(a["stride"], nsp), pads=pads + pads,
                   dilations=_per_dim(a["dilation"], nsp), group=a["groups"])


@_handles("max_pool2d_with_indices.default", "max_pool2d.default", "max_pool1d.default")
def _max_pool(imp, node, a):
    x = imp.v(a["self"])
    nsp = x.type.rank - 2
    kernel = _per_dim(a["kernel_size"], nsp)
    pads = _per_dim(a["padding"], nsp)
    y = imp.add("max_pool", x, kernel=kernel, strides=_per_dim(a["stride"] or kernel, nsp), pads=pads + pads,
                dilations=_per_dim(a["dilation"], nsp), ceil_mode=bool(a["ceil_mode"]))
    return (y, _Missing("the indices of max_pool2d_with_indices")) if "with_indices" in str(node.target) else y


@_handles("avg_pool2d.default", "avg_pool1d.default")
def _avg_pool(imp, node, a):
    if a.get("divisor_override") is not None:
        raise UnsupportedOpError("avg_pool with divisor_override is not supported")
    x = imp.v(a["self"])
    nsp = x.type.rank - 2
    kernel = _per_dim(a["kernel_size"], nsp)
    pads = _per_dim(a["padding"], nsp)
    return imp.add("avg_pool", x, kernel=kernel, strides=_per_dim(a["stride"] or kernel, nsp), pads=pads + pads,
                   ceil_mode=bool(a["ceil_mode"]), count_include_pad=bool(a["count_include_pad"]))


@_handles("_adaptive_avg_pool2d.default", "adaptive_avg_pool2d.default", "_adaptive_avg_pool1d.default")
def _adaptive_avg_pool(imp, node, a):
    x = imp.v(a["self"])
    nsp = x.type.rank - 2
    out = _per_dim(a["output_size"], nsp)
    spatial = x.shape[2:]
    if all(o == 1 for o in out):
        return imp.add("reduce_mean", x, axes=tuple(range(2, 2 + nsp)), keepdims=True)
    if not all(isinstance(s, int) and s % o == 0 for s, o in zip(spatial, out)):
        raise UnsupportedOpError(f"adaptive average pooling from {list(spatial)} to {list(out)} "
                                 f"(sizes must divide evenly)")
    kernel = tuple(s // o for s, o in zip(spatial, out))
    return imp.add("avg_pool", x, kernel=kernel, strides=kernel)


@_handles("scaled_dot_product_attention.default")
def _sdpa(imp, node, a):
    """softmax(q @ k^T * scale + mask) @ v, with boolean or additive masks, causal masking and grouped heads."""
    if a.get("dropout_p"):
        raise UnsupportedOpError("attention dropout (import the module in eval mode)")
    q, k, v = imp.v(a["query"]), imp.v(a["key"]), imp.v(a["value"])
    rank = q.type.rank
    if a.get("enable_gqa") and not D.same(q.shape[-3], k.shape[-3]):
        k, v = _repeat_heads(imp, k, q.shape[-3]), _repeat_heads(imp, v, q.shape[-3])
    scale = a.get("scale")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    perm = tuple(range(rank - 2)) + (rank - 1, rank - 2)
    scores = imp.add("mul", imp.add("matmul", q, imp.add("transpose", k, perm=perm)), imp.scalar(scale, q.dtype))
    mask = a.get("attn_mask")
    if a.get("is_causal"):
        rows = imp.reshape(imp.arange(0, q.shape[-2], 1, DType.i64, q.shape[-2]), (q.shape[-2], 1))
        cols = imp.reshape(imp.arange(0, k.shape[-2], 1, DType.i64, k.shape[-2]), (1, k.shape[-2]))
        scores = imp.add("where", imp.add("greater_equal", rows, cols), scores, imp.scalar(-np.inf, q.dtype))
    if mask is not None:
        m = imp.v(mask)
        if m.dtype is DType.bool:
            scores = imp.add("where", m, scores, imp.scalar(-np.inf, q.dtype))
        else:
            scores = imp.add("add", scores, imp.cast(m, q.dtype))
    _, exp, total = _softmax_parts(imp, scores, rank - 1)
    return imp.add("matmul", imp.add("div", exp, total), v)


def _repeat_heads(imp, x: Value, heads) -> Value:
    """[..., Hk, S, E] -> [..., heads, S, E], each key/value head repeated heads/Hk times in place."""
    *batch, hk, s, e = x.shape
    groups = D.divide_exact(heads, hk)
    expanded = imp.add("broadcast_to", imp.reshape(x, (*batch, hk, 1, s, e)), shape=(*batch, hk, groups, s, e))
    return imp.reshape(expanded, (*batch, heads, s, e))


# -- shapes and data movement -----------------------------------------------------------------------------

@_handles("view.default", "_unsafe_view.default", "reshape.default", "unsqueeze.default", "squeeze.dims",
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


@_handles("permute.default")
def _permute(imp, node, a):
    x = imp.v(a["self"])
    perm = tuple(_axis(d, x.type.rank) for d in a["dims"])
    return x if perm == tuple(range(x.type.rank)) else imp.add("transpose", x, perm=perm)


@_handles("t.default", "transpose.int")
def _transpose(imp, node, a):
    x = imp.v(a["self"])
    perm = list(range(x.type.rank))
    i, j = (_axis(a.get("dim0", 0), x.type.rank), _axis(a.get("dim1", 1), x.type.rank))
    perm[i], perm[j] = perm[j], perm[i]
    return imp.add("transpose", x, perm=tuple(perm)) if x.type.rank > 1 else x


@_handles("expand.default", "expand_copy.default")
def _expand(imp, node, a):
    x = imp.v(a["self"])
    shape = imp.meta_shape(node)
    if x.type.rank == len(shape) and all(D.same(p, q) for p, q in zip(x.shape, shape)):
        return x
    return imp.add("broadcast_to", x, shape=shape)


@_handles("repeat.default")
def _repeat(imp, node, a):
    x = imp.v(a["self"])
    repeats = tuple(a["repeats"])
    x = imp.reshape(x, (1,) * (len(repeats) - x.type.rank) + x.shape)
    return imp.add("tile", x, repeats=repeats)


@_handles("cat.default", "concat.default")
def _cat(imp, node, a):
    dtype = imp.meta_dtype(node)
    parts = [imp.cast(imp.v(t), dtype) for t in a["tensors"]]
    parts = [p for p in parts if not (p.type.rank == 1 and p.shape[0] == 0)] or parts[:1]  # legacy empty 1-D
    if len(parts) == 1:
        return parts[0]
    return imp.add("concat", *parts, axis=_axis(a["dim"], parts[0].type.rank))


@_handles("split_with_sizes.default", "split.Tensor", "split.sizes", "unbind.int")
def _split(imp, node, a):
    x = imp.v(a["self"])
    axis = _axis(a.get("dim", 0), x.type.rank)
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


@_handles("slice.Tensor", "slice_copy.Tensor")
def _slice(imp, node, a):
    x = imp.v(a["self"])
    axis = _axis(a.get("dim", 0), x.type.rank)
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


@_handles("select.int", "select_copy.int")
def _select(imp, node, a):
    x = imp.v(a["self"])
    index = a["index"]
    if not isinstance(index, int):
        raise UnsupportedOpError("select at a symbolic index")
    return imp.add("gather", x, imp.scalar(index, DType.i64), axis=_axis(a["dim"], x.type.rank))


@_handles("embedding.default")
def _embedding(imp, node, a):
    return imp.add("gather", imp.v(a["weight"]), imp.v(a["indices"]), axis=0)


@_handles("index_select.default")
def _index_select(imp, node, a):
    x = imp.v(a["self"])
    return imp.add("gather", x, imp.v(a["index"]), axis=_axis(a["dim"], x.type.rank))


@_handles("gather.default")
def _gather(imp, node, a):
    x, idx = imp.v(a["self"]), imp.v(a["index"])
    axis = _axis(a["dim"], x.type.rank)
    return imp.add("gather_elements", _crop_to(imp, x, idx.shape, axis), idx, axis=axis)


@_handles("index.Tensor")
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


@_handles("constant_pad_nd.default", "pad.default")
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


@_handles("flip.default")
def _flip(imp, node, a):
    x = imp.v(a["self"])
    axes = tuple(sorted({_axis(d, x.type.rank) for d in a["dims"]}))
    if not axes:
        return x
    return imp.add("slice", x, starts=(-1,) * len(axes), ends=(-BIG,) * len(axes), axes=axes, steps=(-1,) * len(axes))


@_handles("topk.default", "sort.default")
def _topk(imp, node, a):
    x = imp.v(a["self"])
    axis = _axis(a.get("dim", -1), x.type.rank)
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


@_handles("scatter.value", "scatter.src")
def _scatter(imp, node, a):
    x, idx = imp.v(a["self"]), imp.v(a["index"])
    axis = _axis(a["dim"], x.type.rank)
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


@_handles("slice_scatter.default")
def _slice_scatter(imp, node, a):
    x = imp.v(a["self"])
    start = a.get("start")
    start = imp.env[start] if isinstance(start, torch.fx.Node) else (start or 0)
    return _scatter_along(imp, x, imp.v(a["src"]), _axis(a.get("dim", 0), x.type.rank), start, a.get("step") or 1)


@_handles("select_scatter.default")
def _select_scatter(imp, node, a):
    x = imp.v(a["self"])
    axis = _axis(a["dim"], x.type.rank)
    src = imp.v(a["src"])
    src = imp.reshape(src, src.shape[:axis] + (1,) + src.shape[axis:])
    return _scatter_along(imp, x, src, axis, a["index"], 1)


@_handles("index_put.default")
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


@_handles("as_strided.default", "as_strided_copy.default")
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


def _resize_axis(size: int, out: int, scale_factor, align_corners: bool, mode: str):
    """Source positions for each output index along one axis, as torch's upsample kernels compute them."""
    scale = np.float32(1 / scale_factor) if scale_factor else np.float32(size / out)
    dst = np.arange(out, dtype=np.float32)
    if mode == "nearest":
        return np.minimum(np.floor(dst * scale).astype(np.int64), size - 1)
    if align_corners:
        src = dst * np.float32((size - 1) / (out - 1) if out > 1 else 0)
    else:
        src = np.maximum((dst + np.float32(0.5)) * scale - np.float32(0.5), 0)
    low = np.minimum(np.floor(src).astype(np.int64), size - 1)
    return low, np.minimum(low + 1, size - 1), (src - low).astype(np.float32)


@_handles("upsample_nearest2d.vec", "upsample_bilinear2d.vec", "upsample_nearest1d.vec", "upsample_linear1d.vec")
def _upsample(imp, node, a):
    x = imp.v(a["input"])
    out_shape = imp.meta_shape(node)
    nsp = x.type.rank - 2
    if not all(isinstance(d, int) for d in x.shape[2:] + out_shape[2:]):
        raise UnsupportedOpError("resizing with symbolic spatial sizes")
    scales = a.get("scale_factors") or (None,) * nsp
    mode = "nearest" if "nearest" in str(node.target) else "linear"
    for i in range(nsp):
        axis, size, out = 2 + i, x.shape[2 + i], out_shape[2 + i]
        if size == out:
            continue
        positions = _resize_axis(size, out, scales[i], bool(a.get("align_corners")), mode)
        if mode == "nearest":
            x = imp.add("gather", x, imp.g.add_constant(positions, f"{node.name}_index"), axis=axis)
            continue
        low, high, frac = positions
        frac = imp.g.add_constant(frac.astype(x.dtype.numpy).reshape((out,) + (1,) * (nsp - 1 - i)),
                                  f"{node.name}_weight")
        below = imp.add("gather", x, imp.g.add_constant(low, f"{node.name}_low"), axis=axis)
        above = imp.add("gather", x, imp.g.add_constant(high, f"{node.name}_high"), axis=axis)
        x = imp.add("add", below, imp.add("mul", imp.add("sub", above, below), frac))
    return x


@_handles("cumsum.default")
def _cumsum(imp, node, a):
    x = imp.cast(imp.v(a["self"]), imp.meta_dtype(node))
    return imp.add("cumsum", x, axis=_axis(a["dim"], x.type.rank))


# -- creating tensors -------------------------------------------------------------------------------------

@_handles("full.default", "full_like.default", "zeros.default", "ones.default", "zeros_like.default",
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


@_handles("arange.start_step", "arange.start", "arange.default")
def _arange(imp, node, a):
    start = a.get("start") if "end" in a else 0
    end = a.get("end", a.get("start"))
    step = a.get("step", 1) or 1
    start, end, step = (imp.env[s] if isinstance(s, torch.fx.Node) else s for s in (start, end, step))
    return imp.arange(start or 0, end, step, imp.meta_dtype(node), imp.meta_shape(node)[0])


class _Missing:
    """A result of a multi-result ATen op that the mapping does not produce; using it is an error."""

    def __init__(self, what: str):
        self.what = what

    def __repr__(self) -> str:
        return f"<{self.what}, which the torch frontend does not compute>"


SUPPORTED_OPS: tuple = tuple(sorted(_HANDLERS))
