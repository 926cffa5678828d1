"""ONNX ModelProto -> Graph.

Loading: a path, bytes or an onnx.ModelProto; anything that does not parse as a model is one
LeptoncError, and so is malformed content: a node whose inputs, outputs or attributes do not fit its
op's ONNX schema (`check_schema`), tensor data that does not fill its dims, sparse indices out of range,
or anything else a mapping cannot read, each naming the node or initializer. Models older than opset 13 are converted to 13 with onnx.version_converter first.

Import walks the nodes in order and hands each to the mapping registered for its op type
(`registry.onnx_op`); an op with no mapping whose ONNX schema defines a function body is expanded
into that body, and anything else is an UnsupportedOpError. Initializers become named constants.

Shape arithmetic is folded while importing: `Importer.dims(v)` follows shape_of / gather / concat /
slice / arithmetic on small integer tensors and gives their value as dims (ints, symbols from the
graph inputs' dim_params, or "?"), and `Importer.known(v)` gives any small tensor computable from
constants. Mappings use them to emit static attributes, and fall back to the *_dynamic ops when a
shape-like operand is a genuine run-time value. At the end, small all-constant results are stored as
constants and dead nodes (the shape arithmetic that got folded) are removed.
"""
from __future__ import annotations

import ast
import collections
import math
import os
import re

import numpy as np

from ...ir import dims as D
from ...ir.dtypes import DType
from ...ir.errors import LeptoncError, UnsupportedOpError
from ...ir.graph import Graph, Value
from ...ir.registry import get_op
from ...ir.types import TensorType
from ...ir.verifier import verify
from ...passes.rewrite import Pattern, PatternSet
from .registry import HANDLERS, NodeContext

TARGET_OPSET = 13
KNOWN_LIMIT = 1 << 16   # elements: bigger tensors are never evaluated while importing
FOLD_LIMIT = 4096       # elements: all-constant results up to this size become constants
MAX_UNROLL = 4096       # iterations: Scan/Loop are unrolled up to this many steps
_NOT_FOLDABLE = {"const"}


def _elem_types():
    from onnx import TensorProto as T

    return {T.FLOAT: DType.f32, T.FLOAT16: DType.f16, T.BFLOAT16: DType.bf16, T.DOUBLE: DType.f64,
            T.INT64: DType.i64, T.INT32: DType.i32, T.INT16: DType.i16, T.INT8: DType.i8, T.UINT8: DType.u8,
            T.UINT16: DType.u16, T.UINT32: DType.u32, T.UINT64: DType.u64, T.INT4: DType.i4, T.UINT4: DType.u4,
            T.INT2: DType.i2, T.UINT2: DType.u2, T.BOOL: DType.bool,
            T.FLOAT8E4M3FN: DType.f8e4m3fn, T.FLOAT8E4M3FNUZ: DType.f8e4m3fnuz, T.FLOAT8E5M2: DType.f8e5m2,
            T.FLOAT8E5M2FNUZ: DType.f8e5m2fnuz, T.FLOAT8E8M0: DType.f8e8m0fnu, T.FLOAT4E2M1: DType.f4e2m1fn}


_ELEM = None


def dtype_of(elem_type: int, where: str = "") -> DType:
    """The IR dtype of an ONNX TensorProto element type."""
    global _ELEM
    if _ELEM is None:
        _ELEM = _elem_types()
    try:
        return _ELEM[elem_type]
    except KeyError:
        from onnx import helper

        try:
            name = helper.tensor_dtype_to_string(elem_type)
        except Exception:
            name = f"element type {elem_type}"
        raise UnsupportedOpError(f"{where}ONNX tensor type {name} has no leptonc dtype (supported: "
                                 f"{', '.join(d.value for d in DType)})") from None


def elem_type_of(dtype: DType) -> int:
    global _ELEM
    if _ELEM is None:
        _ELEM = _elem_types()
    return next(k for k, v in _ELEM.items() if v is dtype)


def _symbol(param: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_]", "_", param.strip())
    if not s or s[0].isdigit():
        s = "s_" + s
    return s


# -- loading -----------------------------------------------------------------------------------
def load_model(model):
    """(ModelProto, where) from a path, bytes or ModelProto; one LeptoncError for anything else."""
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model, "<onnx.ModelProto>"
    if isinstance(model, (bytes, bytearray, memoryview)):
        return _parse(bytes(model), "<bytes>"), "<bytes>"
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.exists(path):
            raise LeptoncError(f"ONNX model file {path!r} does not exist")
        if not os.path.isfile(path):
            raise LeptoncError(f"ONNX model path {path!r} is not a file")
        with open(path, "rb") as f:
            proto = _parse(f.read(), path)
        if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
            try:
                from onnx.external_data_helper import load_external_data_for_model

                load_external_data_for_model(proto, os.path.dirname(os.path.abspath(path)))
            except Exception as e:
                raise LeptoncError(f"{path}: cannot load the model's external data ({e})") from None
        return proto, path
    raise LeptoncError(f"import_onnx takes a path, bytes or an onnx.ModelProto, not {type(model).__name__}")


def _parse(data: bytes, where: str):
    import onnx

    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise LeptoncError(f"{where} is not a valid ONNX model: the protobuf does not parse ({reason})") from None
    if not data or proto.ir_version <= 0 or not proto.HasField("graph") or not proto.opset_import \
            or not proto.graph.output:
        raise LeptoncError(f"{where} is not a valid ONNX model (no IR version, opset or graph outputs; "
                           f"truncated or not an .onnx file?)")
    return proto


def _main_opset(proto) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), TARGET_OPSET)


def convert_old_opset(proto, where: str):
    """A model below opset 13 converted to 13 (onnx.version_converter); newer models unchanged."""
    if _main_opset(proto) >= TARGET_OPSET:
        return proto
    from onnx import version_converter

    try:
        return version_converter.convert_version(proto, TARGET_OPSET)
    except Exception as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LeptoncError(f"{where}: opset {_main_opset(proto)} model could not be converted to opset "
                           f"{TARGET_OPSET} ({reason})") from None


def attr_value(a, where: str = ""):
    """An AttributeProto as Python data (tensors as numpy arrays, strings as str, graphs as GraphProto)."""
    from onnx import AttributeProto as A

    t = a.type
    where = f"{where}attribute {a.name!r}: "
    if t == A.FLOAT:
        return float(a.f)
    if t == A.INT:
        return int(a.i)
    if t == A.STRING:
        return a.s.decode("utf-8", "replace")
    if t == A.TENSOR:
        return to_array(a.t, where)
    if t == A.GRAPH:
        return a.g
    if t == A.FLOATS:
        return tuple(float(x) for x in a.floats)
    if t == A.INTS:
        return tuple(int(x) for x in a.ints)
    if t == A.STRINGS:
        return tuple(x.decode("utf-8", "replace") for x in a.strings)
    if t == A.SPARSE_TENSOR:
        return sparse_to_array(a.sparse_tensor, where)
    if t == A.TENSORS:
        return tuple(to_array(x, where) for x in a.tensors)
    if t == A.GRAPHS:
        return tuple(a.graphs)
    if t == A.TYPE_PROTO:
        return a.tp
    return None


def sparse_to_array(sp, where: str = "") -> np.ndarray:
    """A SparseTensorProto as a dense array; indices are checked against its dims (linear indices of
    shape [NNZ], or coordinates of shape [NNZ, rank])."""
    values = to_array(sp.values, where)
    idx = to_array(sp.indices, f"{where}indices: ")
    shape = tuple(int(d) for d in sp.dims)
    dtype = DType.from_numpy(values.dtype)
    _check_size(dtype, shape, where)
    nnz = values.size
    if values.ndim != 1 or idx.dtype.kind not in "iu" or idx.shape not in ((nnz,), (nnz, len(shape))):
        raise LeptoncError(f"{where}a sparse tensor needs 1-D values and integer indices of shape [{nnz}] or "
                           f"[{nnz}, {len(shape)}], got values {list(values.shape)} and indices "
                           f"{idx.dtype}{list(idx.shape)}")
    coords = idx.astype(np.int64).reshape(nnz, idx.size // nnz if nnz else 1)
    bound = np.array([math.prod(shape)] if idx.ndim == 1 else shape, dtype=np.int64)
    bad = np.flatnonzero(((coords < 0) | (coords >= bound)).any(axis=1))
    if bad.size:
        raise LeptoncError(f"{where}sparse index {coords[bad[0]].tolist()} (entry {bad[0]}) is out of range "
                           f"for dims {list(shape)}")
    out = np.zeros(shape, dtype=values.dtype)
    flat = coords[:, 0] if idx.ndim == 1 else np.ravel_multi_index(tuple(coords.T), shape)
    out.reshape(-1)[flat] = values
    return out


def to_array(t, where: str = "") -> np.ndarray:
    """A TensorProto as a numpy array of a dtype the IR has; data that does not fill its dims exactly is a
    LeptoncError naming the tensor (`where`)."""
    from onnx import numpy_helper

    dtype = dtype_of(t.data_type, where)
    _check_size(dtype, tuple(t.dims), where)
    if t.data_location == t.EXTERNAL:
        raise LeptoncError(f"{where}its data is in an external file that was not loaded (import the model "
                           f"by path, next to its data file)")
    try:
        arr = numpy_helper.to_array(t)
    except Exception as e:
        raise LeptoncError(f"{where}its data does not fit its dims {list(t.dims)} and type {dtype} "
                           f"({type(e).__name__}: {e})") from None
    if arr.shape != tuple(t.dims):
        raise LeptoncError(f"{where}its data has shape {list(arr.shape)}, its dims say {list(t.dims)}")
    return np.asarray(arr, order="C").astype(dtype.numpy, copy=False)


def _check_size(dtype: DType, dims: tuple, where: str) -> None:
    """Dims that are sizes (>= 0) of a tensor small enough to allocate (TensorType.check)."""
    try:
        TensorType(dtype, dims).check("type")
    except LeptoncError as e:
        raise LeptoncError(f"{where}{e}") from None


def supported_op_types() -> frozenset:
    """ONNX op types the importer maps (natively, or by expanding the op's ONNX function body)."""
    import onnx.defs

    from . import handlers  # noqa: F401  (registers the mappings)

    names = {t if d == "" else f"{d}:{t}" for d, t in HANDLERS}
    for s in onnx.defs.get_all_schemas():
        if s.domain in ("", "ai.onnx") and (s.has_function or s.has_context_dependent_function):
            names.add(s.name)
    return frozenset(names)


# -- the importer -------------------------------------------------------------------------------
class Importer:
    def __init__(self, proto, source: str, input_shapes: dict | None = None):
        self.proto = proto
        self.source = source
        self.input_shapes = dict(input_shapes or {})
        name = proto.graph.name or "main"
        self.g = Graph(re.sub(r"[^A-Za-z0-9_.]", "_", name) or "main")
        self.env: collections.ChainMap = collections.ChainMap()
        self.functions = {(f.domain, f.name): f for f in proto.functions}
        self._known: dict[int, tuple] = {}
        self._dims: dict[int, tuple] = {}
        self._const_cache: dict[tuple, Value] = {}
        self._context: list[str] = []  # the nodes being expanded (function bodies, subgraphs), outermost first

    # -- driver ------------------------------------------------------------------------------
    def run(self) -> Graph:
        from . import handlers  # noqa: F401  (registers the mappings)

        graph = self.proto.graph
        opsets = {("" if o.domain == "ai.onnx" else o.domain): o.version for o in self.proto.opset_import}
        init_names = self._initializers(graph)
        for vi in graph.input:
            if vi.name in init_names:
                continue
            self.env[vi.name] = self.g.add_input(vi.name, self._input_type(vi))
        self.import_nodes(graph.node, opsets)
        outs = []
        for o in graph.output:
            if o.name not in self.env:
                raise LeptoncError(f"{self.source}: graph output {o.name!r} is produced by no node")
            outs.append(self.env[o.name])
        self.g.set_outputs(outs)
        self.finish()
        return self.g

    def finish(self) -> None:
        self._fold()
        self._dce()
        verify(self.g)

    def _initializers(self, graph) -> set:
        names = set()
        for t in graph.initializer:
            self.env[t.name] = self.g.add_constant(to_array(t, f"{self.source}: initializer {t.name!r}: "), t.name)
            names.add(t.name)
        for sp in graph.sparse_initializer:
            arr = sparse_to_array(sp, f"{self.source}: sparse initializer {sp.values.name!r}: ")
            self.env[sp.values.name] = self.g.add_constant(arr, sp.values.name)
            names.add(sp.values.name)
        return names

    def _input_type(self, vi) -> TensorType:
        where = f"{self.source}: graph input {vi.name!r}: "
        if not vi.type.HasField("tensor_type"):
            kind = vi.type.WhichOneof("value")
            raise UnsupportedOpError(f"{where}{kind} inputs are not supported (only tensors)")
        tt = vi.type.tensor_type
        dtype = dtype_of(tt.elem_type, where)
        if vi.name in self.input_shapes:
            return TensorType(dtype, tuple(self.input_shapes[vi.name]))
        if not tt.HasField("shape"):
            raise LeptoncError(f"{where}the model gives no shape (not even a rank); pass "
                               f"input_shapes={{{vi.name!r}: [...]}} to import_onnx")
        dims = []
        for d in tt.shape.dim:
            if d.HasField("dim_value") and d.dim_value >= 0:
                dims.append(int(d.dim_value))
            elif d.HasField("dim_param") and d.dim_param:
                dims.append(_symbol(d.dim_param))
            else:
                dims.append(D.UNKNOWN)
        return TensorType(dtype, tuple(dims))

    def import_nodes(self, nodes, opsets: dict) -> None:
        for i, node in enumerate(nodes):
            self.import_node(node, opsets, i)

    @staticmethod
    def _label(node, index=None) -> str:
        label = f"node {node.name!r}" if node.name else f"node #{index}" if index is not None else "a node"
        dom = f"{node.domain}:" if node.domain not in ("", "ai.onnx") else ""
        return f"{label} ({dom}{node.op_type})"

    def where(self, node, index=None) -> str:
        """The node for messages: its name (or index) and op, inside the nodes being expanded, and the model."""
        return " > ".join(self._context + [self._label(node, index)]) + f" in {self.source}"

    def import_node(self, node, opsets: dict, index=None) -> None:
        domain = "" if node.domain == "ai.onnx" else node.domain
        version = opsets.get(domain, TARGET_OPSET if domain == "" else 1)
        inputs = []
        for name in node.input:
            if not name:
                inputs.append(None)
            elif name in self.env:
                inputs.append(self.env[name])
            else:
                raise LeptoncError(f"{self.where(node, index)}: operand {name!r} is not defined before use")
        start = len(self.g.nodes)
        handler = HANDLERS.get((domain, node.op_type))
        where = self.where(node, index)
        self._context.append(self._label(node, index))
        try:
            check_schema(node, domain, version)
            attrs = {a.name: attr_value(a) for a in node.attribute}
            if handler is not None:
                outs = handler(NodeContext(self, node, version, inputs, attrs))
            elif (domain, node.op_type) in self.functions:
                outs = self.expand_function(self.functions[(domain, node.op_type)], node, inputs, attrs, opsets)
            else:
                body = self._schema_function(node, domain, version, inputs)
                if body is None:
                    raise _located(UnsupportedOpError(
                        f"unsupported ONNX op {node.op_type!r} (domain {domain or 'ai.onnx'!r}, opset {version}) "
                        f"at {where}; the supported op types are listed in leptonc.frontends.onnx.SUPPORTED_OPS"))
                outs = self.expand_function(body, node, inputs, attrs, opsets, schema_defaults=True, version=version,
                                            domain=domain)
        except LeptoncError as e:
            if getattr(e, "onnx_located", False):
                raise
            raise _located(type(e)(f"{where}: {e}")) from None
        except Exception as e:  # a malformed node that its mapping does not foresee
            reason = str(e).splitlines()[0] if str(e) else ""
            raise _located(LeptoncError(f"{where}: malformed node ({type(e).__name__}: {reason})")) from None
        finally:
            self._context.pop()
        if not self._context:  # a node of the model itself: what it expanded to has its source
            source = node_source(node)
            for n in self.g.nodes[start:]:
                if n.op != "const":
                    n.loc = source
        if isinstance(outs, Value) or outs is None:
            outs = [outs]
        outs = list(outs)
        new_nodes = {id(n) for n in self.g.nodes[start:]}
        for i, name in enumerate(node.output):
            if not name:
                continue
            v = outs[i] if i < len(outs) else None
            if v is None:
                raise _located(UnsupportedOpError(f"{where}: output {i} ({name!r}) is not supported"))
            if v.producer is not None and id(v.producer) in new_nodes and v.producer.op != "const":
                self._rename(v, name)
            self.env[name] = v

    def _rename(self, v: Value, hint: str) -> None:
        names = self.g._names  # the graph's set of used value names
        names.discard(v.name)
        v.name = self.g.unique_name(hint)

    # -- functions ---------------------------------------------------------------------------
    def _schema_function(self, node, domain, version, inputs):
        """The FunctionProto the op's ONNX schema defines it by (None if it defines none)."""
        import onnx
        import onnx.defs

        def nearest(versions):  # any body of this schema version computes the op; take the closest opset
            return sorted(versions, key=lambda v: (v > version, abs(v - version)))[0] if versions else version

        try:
            schema = onnx.defs.get_schema(node.op_type, version, domain)
            if schema.has_function:
                data = schema.get_function_with_opset_version(nearest(schema.function_opset_versions))
            elif schema.has_context_dependent_function:
                full = onnx.NodeProto()
                full.CopyFrom(node)
                present = {a.name for a in node.attribute}
                full.attribute.extend(spec.default_value for name, spec in schema.attributes.items()
                                      if name not in present and spec.default_value.type != 0)
                types = [_type_proto(v).SerializeToString() for v in inputs]
                data = schema.get_context_dependent_function_with_opset_version(
                    nearest(schema.context_dependent_function_opset_versions), full.SerializeToString(), types)
            else:
                return None
        except Exception:  # no schema, or one whose function builder rejects these operands
            return None
        if not data:
            return None
        fp = onnx.FunctionProto()
        fp.ParseFromString(data)
        return fp

    def expand_function(self, fp, node, inputs, attrs, outer_opsets: dict, schema_defaults=False, version=None,
                        domain=""):
        """Import a FunctionProto's body in place of node (formal inputs bound to the operands); a domain
        the body imports no version of keeps the caller's version."""
        import onnx.defs

        given = {a.name: a for a in node.attribute}
        defaults = {a.name: a for a in fp.attribute_proto}
        if schema_defaults:
            schema = onnx.defs.get_schema(node.op_type, version, domain)
            for name, spec in schema.attributes.items():
                if spec.default_value.type != 0:
                    defaults.setdefault(name, spec.default_value)
        local = {}
        for i, formal in enumerate(fp.input):
            local[formal] = inputs[i] if i < len(inputs) else None
        opsets = {**outer_opsets, **{("" if o.domain == "ai.onnx" else o.domain): o.version for o in fp.opset_import}}
        saved = self.env
        self.env = collections.ChainMap({k: v for k, v in local.items() if v is not None})
        try:
            for sub in fp.node:
                self.import_node(self._bind_attr_refs(sub, given, defaults), opsets)
            outs = [self.env.get(o) if o else None for o in fp.output]
        finally:
            self.env = saved
        return outs

    @staticmethod
    def _bind_attr_refs(node, given, defaults):
        if not any(a.ref_attr_name for a in node.attribute):
            return node
        import onnx

        out = onnx.NodeProto()
        out.CopyFrom(node)
        del out.attribute[:]
        for a in node.attribute:
            if a.ref_attr_name:
                src = given.get(a.ref_attr_name) or defaults.get(a.ref_attr_name)
                if src is None:
                    continue
                b = onnx.AttributeProto()
                b.CopyFrom(src)
                b.name = a.name
                out.attribute.append(b)
            else:
                out.attribute.append(a)
        return out

    def import_subgraph(self, graph, inputs: list, opsets: dict | None = None) -> list:
        """Inline a subgraph (If branch, Scan/Loop body): its inputs bound to `inputs`; outer names visible."""
        opsets = opsets or {("" if o.domain == "ai.onnx" else o.domain): o.version for o in self.proto.opset_import}
        saved = self.env
        self.env = self.env.new_child()
        try:
            for t in graph.initializer:
                self.env[t.name] = self.const(to_array(t, f"{self.source}: initializer {t.name!r}: "), t.name)
            for vi, v in zip(graph.input, inputs):
                self.env[vi.name] = v
            self.import_nodes(graph.node, opsets)
            return [self.env[o.name] for o in graph.output]
        finally:
            self.env = saved

    # -- building helpers (used by the mappings) -----------------------------------------------
    def op(self, name: str, *inputs: Value, **attrs) -> Value:
        return self.g.add(name, *inputs, **attrs)

    def ops(self, name: str, inputs, **attrs) -> list[Value]:
        return self.g.add_node(name, list(inputs), attrs).outputs

    def op_refined(self, name: str, *inputs: Value, shape=None, **attrs) -> Value:
        """Like op(), with the result's "?" dims replaced by what the importer knows of them (`shape`:
        one entry per dim, "?" where unknown): a dynamic op's inference cannot see its operands' values."""
        node = self.g.add_node(name, list(inputs), attrs)
        v = node.output
        if shape is not None and len(shape) == v.type.rank:
            dims = tuple(k if d == D.UNKNOWN else d for d, k in zip(v.shape, shape))
            v.type = v.type.with_shape(dims)
        return v

    def const(self, array, name: str | None = None) -> Value:
        arr = np.asarray(array)
        key = None
        if arr.size <= 64 and name is None:
            key = (arr.dtype.str, arr.shape, arr.tobytes())
            v = self._const_cache.get(key)
            if v is not None and v.producer is not None and v.producer.graph is self.g:
                return v
        v = self.g.add_constant(np.asarray(arr, order="C"), name or "c")
        if key is not None:
            self._const_cache[key] = v
        return v

    def scalar(self, value, dtype: DType, shape=()) -> Value:
        return self.const(np.full(shape, value, dtype=dtype.numpy))

    def cast(self, v: Value, dtype: DType, **attrs) -> Value:
        """v converted to dtype (attrs: the cast op's saturate and round)."""
        return v if v.dtype is dtype else self.op("cast", v, dtype=dtype, **attrs)

    def reshape(self, v: Value, shape) -> Value:
        """Reshape to explicit dims (ints or symbols); a target with "?" goes through reshape_dynamic."""
        shape = tuple(shape)
        if tuple(v.shape) == shape and D.UNKNOWN not in shape:
            return v
        if D.UNKNOWN in shape:
            raise LeptoncError(f"cannot reshape {v.type} to {list(shape)} before run time")
        return self.op("reshape", v, shape=shape)

    # -- what is known while importing -----------------------------------------------------------
    def known(self, v: Value | None, limit: int = KNOWN_LIMIT) -> np.ndarray | None:
        """v's value when it can be computed from constants while importing (small tensors only)."""
        if v is None:
            return None
        hit = self._known.get(id(v))
        if hit is not None and hit[0] is v:
            return hit[1]
        res = self._compute_known(v, limit)
        self._known[id(v)] = (v, res)
        return res

    def _compute_known(self, v: Value, limit: int):
        arr = self.g.constant_of(v)
        if arr is not None:
            return arr
        p = v.producer
        if p is None or not v.type.is_static or int(np.prod(v.shape)) > limit:
            return None
        if v.dtype.is_int and v.type.rank <= 1:
            d = self.dims(v)
            if d is not None and all(isinstance(x, int) for x in d):
                return np.array(d, dtype=v.dtype.numpy).reshape(v.shape)
        opdef = get_op(p.op)
        if "pure" not in opdef.traits or p.op in _NOT_FOLDABLE:
            return None
        if any(isinstance(x, str) for k in opdef.shape_attrs for x in p.attrs[k]):
            return None
        args = []
        for x in p.inputs:
            a = self.known(x, limit)
            if a is None:
                return None
            args.append(a)
        try:
            with np.errstate(all="ignore"):
                out = opdef.reference(*args, **p.attrs)
        except Exception:
            return None
        outs = out if isinstance(out, tuple) else (out,)
        for r, ov in zip(outs, p.outputs):
            r = np.asarray(r)
            if r.dtype == ov.dtype.numpy and r.ndim == ov.type.rank:
                self._known[id(ov)] = (ov, r)
        hit = self._known.get(id(v))
        return hit[1] if hit is not None and hit[0] is v else None

    def ints(self, v: Value | None) -> tuple | None:
        """A known integer tensor's values, flattened."""
        arr = self.known(v)
        if arr is None or arr.dtype.kind not in "iub":
            return None
        return tuple(int(x) for x in arr.reshape(-1))

    def dims(self, v: Value | None) -> tuple | None:
        """The values of a small rank-0/1 integer tensor as dims (int, symbol expression, or "?" for
        an entry known only at run time); None for other values."""
        if v is None or not v.dtype.is_int or v.type.rank > 1 or not v.type.is_static \
                or (v.type.rank == 1 and v.shape[0] > 64):
            return None
        hit = self._dims.get(id(v))
        if hit is not None and hit[0] is v:
            return hit[1]
        n = 1 if v.type.rank == 0 else v.shape[0]
        self._dims[id(v)] = (v, (D.UNKNOWN,) * n)  # guards against cycles through known()
        res = self._compute_dims(v)
        if res is None or len(res) != n:
            res = (D.UNKNOWN,) * n
        self._dims[id(v)] = (v, res)
        return res

    def _compute_dims(self, v: Value):
        arr = self.g.constant_of(v)
        if arr is not None:
            return tuple(int(x) for x in arr.reshape(-1))
        p = v.producer
        n = 1 if v.type.rank == 0 else v.shape[0]
        if p is None:
            return (D.UNKNOWN,) * n
        a = p.attrs
        op = p.op
        if op == "shape_of":
            return tuple(p.inputs[0].shape[slice(a["start"], a["end"])])
        if op in ("cast", "reshape", "squeeze", "unsqueeze") and p.inputs[0].dtype.is_int:
            return self.dims(p.inputs[0])
        if op == "gather" and p.inputs[0].type.rank == 1:
            src, idx = self.dims(p.inputs[0]), self.ints(p.inputs[1])
            if src is None or idx is None:
                return None
            try:
                return tuple(src[i] for i in idx)
            except IndexError:
                return None
        if op == "concat":
            parts = [self.dims(x) for x in p.inputs]
            return None if any(x is None for x in parts) else tuple(d for x in parts for d in x)
        if op == "slice" and p.inputs[0].type.rank == 1:
            src = self.dims(p.inputs[0])
            return None if src is None else tuple(src[slice(a["starts"][0], a["ends"][0], a["steps"][0])])
        if op in ("add", "sub", "mul", "div", "max", "min") and all(x.type.rank <= 1 for x in p.inputs):
            x, y = self.dims(p.inputs[0]), self.dims(p.inputs[1])
            if x is None or y is None:
                return None
            if len(x) == 1:
                x = x * n
            if len(y) == 1:
                y = y * n
            if len(x) != n or len(y) != n:
                return None
            return tuple(_dim_binary(op, i, j) for i, j in zip(x, y))
        if op in ("reduce_prod", "reduce_sum") and p.inputs[0].type.rank == 1 and v.type.rank in (0, 1) and n == 1:
            src = self.dims(p.inputs[0])
            if src is None:
                return None
            out = 1 if op == "reduce_prod" else 0
            for d in src:
                out = D.mul(out, d) if op == "reduce_prod" else D.add(out, d)
            return (out,)
        if op == "where" and all(x.type.rank <= 1 for x in p.inputs):
            cond, x, y = self.truths(p.inputs[0]), self.dims(p.inputs[1]), self.dims(p.inputs[2])
            if cond is None or x is None or y is None:
                return None
            cond, x, y = (t * n if len(t) == 1 else t for t in (cond, x, y))
            if not len(cond) == len(x) == len(y) == n:
                return None
            return tuple(D.UNKNOWN if c is None else (i if c else j) for c, i, j in zip(cond, x, y))
        if op == "full" and isinstance(a["value"], (int, float)) and float(a["value"]).is_integer():
            return (int(a["value"]),) * n
        arr = self.known(v)
        return (D.UNKNOWN,) * n if arr is None else tuple(int(x) for x in arr.reshape(-1))

    def truths(self, v: Value) -> tuple | None:
        """A small rank-0/1 bool tensor computed by comparing dims: True / False / None (unknown) per
        element. Symbols stand for sizes, so they are >= 0 (and a symbol equals itself)."""
        if v.dtype is not DType.bool or v.type.rank > 1 or not v.type.is_static:
            return None
        arr = self.known(v)
        if arr is not None:
            return tuple(bool(x) for x in arr.reshape(-1))
        p = v.producer
        if p is None or p.op not in ("equal", "less", "greater", "not") or any(x.type.rank > 1 for x in p.inputs):
            return None
        if p.op == "not":
            t = self.truths(p.inputs[0])
            return None if t is None else tuple(None if x is None else not x for x in t)
        x, y = self.dims(p.inputs[0]), self.dims(p.inputs[1])
        if x is None or y is None:
            return None
        n = max(len(x), len(y))
        x, y = (t * n if len(t) == 1 else t for t in (x, y))
        return tuple(_dim_compare(p.op, i, j) for i, j in zip(x, y))

    # -- the end: fold small constants, remove dead nodes ----------------------------------------
    def _fold(self) -> None:
        """Store small all-constant results as constants (placed where the node that made them was): a
        pattern over every pure op, applied by the passes' rewrite driver."""
        rules = PatternSet("import-fold")
        rules.add(Pattern("known", self._folded, trait="pure"))
        rules.apply(self.g)

    def _folded(self, g: Graph, node) -> list | None:
        """The node's results as constants when all are known and small, else None."""
        if node.op == "const" or not all(v.type.is_static and int(np.prod(v.shape)) <= FOLD_LIMIT
                                         for v in node.outputs):
            return None
        if not node.inputs and sum(int(np.prod(v.shape)) for v in node.outputs) > 64:
            return None
        values = [self.known(v, FOLD_LIMIT) for v in node.outputs]
        if any(x is None for x in values):
            return None
        consts = [g.add_constant(arr, v.name, before=node) for v, arr in zip(node.outputs, values)]
        for c, arr in zip(consts, values):
            self._known[id(c)] = (c, arr)
        return consts

    def _dce(self) -> None:
        """Remove the nodes nothing (transitively) feeds a graph output from, and their constants."""
        g = self.g
        live = {id(v) for v in g.outputs}
        for node in reversed(g.nodes):
            if any(id(v) in live for v in node.outputs):
                live.update(id(v) for v in node.inputs)
            else:
                g.erase(node)  # its users, later in the order, are gone already


def node_source(node) -> str | None:
    """What a node came from: the torch module path that torch.onnx.export recorded (the last of its
    pkg.torch.onnx.name_scopes before the node's own name: encoder.layer.0.attention.query), else the node's
    name."""
    for prop in getattr(node, "metadata_props", ()):
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                break
            if isinstance(scopes, list) and len(scopes) >= 2 and isinstance(scopes[-2], str) and scopes[-2]:
                return scopes[-2]
            break
    return node.name or None


def check_schema(node, domain: str, version: int) -> None:
    """The node's input and output counts, required inputs and attributes (names and kinds) against its
    op's ONNX schema; ops with no schema (custom domains) pass."""
    import onnx
    import onnx.defs

    try:
        schema = onnx.defs.get_schema(node.op_type, version, domain)
    except Exception:
        return
    for kind, n, lo, hi in (("inputs", len(node.input), schema.min_input, schema.max_input),
                            ("outputs", len(node.output), schema.min_output, schema.max_output)):
        if not lo <= n <= hi:
            want = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi < 2 ** 31 - 1 else f"at least {lo}"
            raise LeptoncError(f"takes {want} {kind}, got {n}")
    single = onnx.defs.OpSchema.FormalParameterOption.Single
    for i, (name, formal) in enumerate(zip(node.input, schema.inputs)):
        if not name and formal.option == single:
            raise LeptoncError(f"input {i} ({formal.name}) is required, but the node leaves it empty")
    given = {a.name: a for a in node.attribute}
    unknown = sorted(set(given) - set(schema.attributes))
    if unknown:
        raise LeptoncError(f"unknown attribute {unknown[0]!r} (attributes of {node.op_type}: "
                           f"{', '.join(sorted(schema.attributes)) or 'none'})")
    for name, spec in schema.attributes.items():
        a = given.get(name)
        if a is None and spec.required:
            raise LeptoncError(f"missing required attribute {name!r}")
        if a is not None and not a.ref_attr_name and a.type != int(spec.type):
            kinds = onnx.AttributeProto.AttributeType
            got = kinds.Name(a.type) if a.type in kinds.values() else a.type
            raise LeptoncError(f"attribute {name!r} must be {spec.type.name}, got {got}")


def _type_proto(v: Value | None):
    """An ONNX TypeProto for a Value (an empty one for an absent operand)."""
    import onnx

    tp = onnx.TypeProto()
    if v is not None:
        tp.tensor_type.elem_type = elem_type_of(v.dtype)
        for d in v.shape:
            dim = tp.tensor_type.shape.dim.add()
            if isinstance(d, int):
                dim.dim_value = d
            elif d != D.UNKNOWN:
                dim.dim_param = str(d)
    return tp


def _located(e: LeptoncError) -> LeptoncError:
    """Mark an error whose message already names the node and model (outer nodes leave it alone)."""
    e.onnx_located = True
    return e


def _dim_compare(op: str, a, b):
    """a op b for dims (True / False / None when it depends on the run-time sizes)."""
    if D.UNKNOWN in (a, b):
        return None
    if isinstance(a, int) and isinstance(b, int):
        return {"equal": a == b, "less": a < b, "greater": a > b}[op]
    if D.same(a, b):
        return op == "equal"
    if isinstance(b, int) and b < 0 or isinstance(a, int) and a < 0:  # a size against a negative number
        neg_left = isinstance(a, int) and a < 0
        return {"equal": False, "less": neg_left, "greater": not neg_left}[op]
    return None


def _dim_binary(op: str, a, b):
    if op == "add":
        return D.add(a, b)
    if op == "sub":
        return D.sub(a, b)
    if op == "mul":
        return D.mul(a, b)
    if isinstance(a, int) and isinstance(b, int):
        if op == "div":
            if b == 0:
                return D.UNKNOWN
            q = abs(a) // abs(b)
            return q if (a < 0) == (b < 0) else -q
        return max(a, b) if op == "max" else min(a, b)
    if op == "div" and isinstance(b, int) and b > 0:
        return D.floordiv(a, b) if D.floordiv(a, b) != D.UNKNOWN else D.UNKNOWN
    return D.UNKNOWN


def import_onnx(model, *, input_shapes: dict | None = None) -> Graph:
    """An ONNX model (path, bytes or onnx.ModelProto) as a verified Graph.

    input_shapes: {graph input name: dims} overrides the shapes the model declares (dims are ints or
    symbol names), e.g. for inputs the model gives no shape.
    """
    proto, source = load_model(model)
    proto = convert_old_opset(proto, source)
    return Importer(proto, source, input_shapes).run()
