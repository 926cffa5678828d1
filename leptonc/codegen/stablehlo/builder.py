"""Writing StableHLO as MLIR text: SSA names, tensor types, constants and op lines.

Every op is written in MLIR's generic form,

    %v3 = "stablehlo.add"(%v1, %v2) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>

one spelling for every op, so the text always parses. Lowering rules build on
the helpers here (broadcast, convert, reshape, compare, constants, reductions
with a scalar body) and never format MLIR by hand.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...ir.dtypes import DType
from ...ir.types import TensorType

ELEMENT_TYPE = {
    DType.f32: "f32", DType.f16: "f16", DType.bf16: "bf16", DType.f64: "f64",
    DType.i64: "i64", DType.i32: "i32", DType.i16: "i16", DType.i8: "i8", DType.i4: "i4",
    DType.u8: "ui8", DType.u16: "ui16", DType.u32: "ui32", DType.u64: "ui64", DType.bool: "i1",
    DType.f8e4m3fn: "f8E4M3FN", DType.f8e4m3fnuz: "f8E4M3FNUZ", DType.f8e5m2: "f8E5M2",
    DType.f8e5m2fnuz: "f8E5M2FNUZ", DType.f8e8m0fnu: "f8E8M0FNU", DType.f4e2m1fn: "f4E2M1FN",
    DType.u4: "ui4", DType.i2: "i2", DType.u2: "ui2",
}
# Types that values are stored and moved in, but not computed in: only `cast` and the view ops
# (reshape, transpose, slice, ...) take them (emit.py checks).
STORAGE_ONLY = frozenset({DType.f8e4m3fn, DType.f8e4m3fnuz, DType.f8e5m2, DType.f8e5m2fnuz, DType.f8e8m0fnu,
                          DType.f4e2m1fn, DType.u4, DType.i2, DType.u2})


def tensor_type(t: TensorType) -> str:
    """MLIR spelling of a static tensor type: tensor<2x3xf32>, tensor<i1> for a scalar."""
    dims = "".join(f"{d}x" for d in t.shape)
    return f"tensor<{dims}{ELEMENT_TYPE[t.dtype]}>"


def i64_array(values) -> str:
    values = [int(v) for v in values]
    return f"array<i64: {', '.join(map(str, values))}>" if values else "array<i64>"


def i64_matrix(rows) -> str:
    """A dense<[[a, b], ...]> : tensor<Nx2xi64> attribute (padding of convolution and reduce_window)."""
    rows = [list(map(int, r)) for r in rows]
    body = ", ".join(f"[{', '.join(map(str, r))}]" for r in rows)
    return f"dense<[{body}]> : tensor<{len(rows)}x2xi64>"


def dims_list(values) -> str:
    return f"[{', '.join(str(int(v)) for v in values)}]"


def comparison_type(dtype: DType) -> str:
    if dtype.is_float:
        return "FLOAT"
    return "SIGNED" if dtype.is_signed else "UNSIGNED"


@dataclass(frozen=True)
class Val:
    """An SSA value of the module being written: its name (with %), concrete type, and its value
    when that is known before run time (shape arithmetic; see specialize.py)."""

    name: str
    type: TensorType
    known: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def shape(self) -> tuple:
        return self.type.shape

    @property
    def dtype(self) -> DType:
        return self.type.dtype


class Builder:
    """Accumulates the lines of one function body and hands out fresh SSA names."""

    def __init__(self):
        self.lines: list[str] = []
        self._count = 0
        self._indent = "    "

    def fresh(self) -> str:
        self._count += 1
        return f"%v{self._count}"

    # -- the generic op line ----------------------------------------------
    def op(self, name: str, operands, result_types, attrs: dict | None = None,
           regions: list | None = None) -> list[Val]:
        """Write one op; `regions` are callables that write a block and return its terminator's values."""
        results = [TensorType(t.dtype, t.shape) for t in result_types]
        base = self.fresh()
        if len(results) == 1:
            vals = [Val(base, results[0])]
            lhs = f"{base} = "
        elif results:
            vals = [Val(f"{base}#{i}", t) for i, t in enumerate(results)]
            lhs = f"{base}:{len(results)} = "
        else:
            vals, lhs = [], ""
        props = f" <{{{', '.join(f'{k} = {v}' for k, v in attrs.items())}}}>" if attrs else ""
        region_text = ""
        if regions:
            region_text = " (" + ", ".join(self._region(r) for r in regions) + ")"
        ins = ", ".join(tensor_type(v.type) for v in operands)
        outs = ", ".join(tensor_type(t) for t in results)
        outs = outs if len(results) == 1 else f"({outs})"
        self.lines.append(f"{self._indent}{lhs}\"{name}\"({', '.join(v.name for v in operands)})"
                          f"{props}{region_text} : ({ins}) -> {outs}")
        return vals

    def op1(self, name: str, operands, result_type: TensorType, attrs: dict | None = None,
            regions: list | None = None) -> Val:
        return self.op(name, operands, [result_type], attrs, regions)[0]

    def _region(self, region) -> str:
        """A one-block region; `region` is (argument types, body) where body(*args) -> list[Val]."""
        arg_types, body = region
        args = [Val(self.fresh().replace("%v", "%a"), TensorType(t.dtype, t.shape)) for t in arg_types]
        outer, self.lines = self.lines, []
        saved_indent = self._indent
        self._indent += "  "
        returned = body(*args)
        self.op("stablehlo.return", returned, [])
        inner, self.lines, self._indent = self.lines, outer, saved_indent
        header = f"{saved_indent}^bb0({', '.join(f'{a.name}: {tensor_type(a.type)}' for a in args)}):"
        return "{\n" + header + "\n" + "\n".join(inner) + f"\n{saved_indent}}}"

    # -- constants ----------------------------------------------------------
    def constant(self, array: np.ndarray, dtype: DType | None = None) -> Val:
        """A tensor literal with the array's exact bits (hex), in the array's dtype or `dtype`."""
        array = np.asarray(array)
        dtype = dtype or DType.from_numpy(array.dtype)
        if dtype is DType.bool or dtype.is_packed:
            # stored as bytes (f32 for f4e2m1fn), converted in the module: exact, and no sub-byte literal
            # layout to rely on
            wide_dtype = DType.f32 if dtype.is_float else DType.i8
            wide = self.constant(array.astype(wide_dtype.numpy), wide_dtype)
            return self.convert(wide, dtype) if dtype is not DType.bool else \
                self.compare(wide, self.full(0, wide.type), "NE")
        array = np.asarray(array, dtype=dtype.numpy, order="C")  # (ascontiguousarray would make 0-d 1-d)
        t = TensorType(dtype, array.shape)
        if array.size == 0:
            literal = f"dense<> : {tensor_type(t)}"
        else:
            data = array.reshape(-1)[:1] if _is_splat(array) else array
            literal = f'dense<"0x{data.astype(data.dtype.newbyteorder("<")).tobytes().hex().upper()}"> : {tensor_type(t)}'
        return self.op1("stablehlo.constant", [], t, {"value": literal})

    def scalar(self, value, dtype: DType) -> Val:
        return self.constant(np.asarray(value).astype(dtype.numpy), dtype)

    def full(self, value, t: TensorType) -> Val:
        """A tensor of type t filled with one value."""
        return self.broadcast_in_dim(self.scalar(value, t.dtype), t.shape, ())

    # -- common ops ---------------------------------------------------------
    def broadcast_in_dim(self, v: Val, shape, dims) -> Val:
        shape = tuple(shape)
        if tuple(v.shape) == shape and tuple(dims) == tuple(range(len(shape))):
            return v
        return self.op1("stablehlo.broadcast_in_dim", [v], v.type.with_shape(shape),
                        {"broadcast_dimensions": i64_array(dims)})

    def broadcast_to(self, v: Val, shape) -> Val:
        """numpy broadcasting of v to shape (v's dims align with the trailing dims)."""
        shape = tuple(shape)
        lead = len(shape) - len(v.shape)
        return self.broadcast_in_dim(v, shape, range(lead, len(shape)))

    def reshape(self, v: Val, shape) -> Val:
        shape = tuple(int(d) for d in shape)
        if tuple(v.shape) == shape:
            return v
        return self.op1("stablehlo.reshape", [v], v.type.with_shape(shape))

    def convert(self, v: Val, dtype: DType) -> Val:
        if v.dtype is dtype:
            return v
        return self.op1("stablehlo.convert", [v], v.type.with_dtype(dtype))

    def transpose(self, v: Val, perm) -> Val:
        perm = tuple(perm)
        if perm == tuple(range(len(perm))):
            return v
        return self.op1("stablehlo.transpose", [v], v.type.with_shape([v.shape[p] for p in perm]),
                        {"permutation": i64_array(perm)})

    def binary(self, name: str, a: Val, b: Val) -> Val:
        """An elementwise op of two operands of one shape and dtype."""
        return self.op1(f"stablehlo.{name}", [a, b], a.type)

    def unary(self, name: str, a: Val) -> Val:
        return self.op1(name if "." in name else f"stablehlo.{name}", [a], a.type)

    def compare(self, a: Val, b: Val, direction: str, kind: str | None = None) -> Val:
        attrs = {"comparison_direction": f"#stablehlo<comparison_direction {direction}>",
                 "compare_type": f"#stablehlo<comparison_type {kind or comparison_type(a.dtype)}>"}
        return self.op1("stablehlo.compare", [a, b], a.type.with_dtype(DType.bool), attrs)

    def select(self, pred: Val, a: Val, b: Val) -> Val:
        return self.op1("stablehlo.select", [pred, a, b], a.type)

    def iota(self, t: TensorType, dim: int) -> Val:
        return self.op1("stablehlo.iota", [], t, {"iota_dimension": f"{int(dim)} : i64"})

    def slice(self, v: Val, starts, limits, strides=None) -> Val:
        strides = strides or [1] * len(starts)
        shape = [max(0, -(-(lim - s) // st)) for s, lim, st in zip(starts, limits, strides)]
        if list(starts) == [0] * len(starts) and list(shape) == list(v.shape):
            return v
        return self.op1("stablehlo.slice", [v], v.type.with_shape(shape),
                        {"start_indices": i64_array(starts), "limit_indices": i64_array(limits),
                         "strides": i64_array(strides)})

    def concatenate(self, vals: list[Val], axis: int) -> Val:
        if len(vals) == 1:
            return vals[0]
        shape = list(vals[0].shape)
        shape[axis] = sum(v.shape[axis] for v in vals)
        return self.op1("stablehlo.concatenate", vals, vals[0].type.with_shape(shape),
                        {"dimension": f"{int(axis)} : i64"})

    def reduce(self, v: Val, init: Val, axes, combine: str) -> Val:
        """Reduce v over axes with a scalar body `stablehlo.<combine>`."""
        axes = sorted(axes)
        out = v.type.with_shape([d for i, d in enumerate(v.shape) if i not in axes])
        scalar = TensorType(v.dtype, ())
        return self.op1("stablehlo.reduce", [v, init], out, {"dimensions": i64_array(axes)},
                        [([scalar, scalar], lambda a, b: [self.binary(combine, a, b)])])


def _is_splat(array: np.ndarray) -> bool:
    flat = array.reshape(-1)
    return flat.size > 1 and bool(np.all(flat.view(np.uint8).reshape(flat.size, -1) ==
                                         flat[:1].view(np.uint8).reshape(1, -1)))
