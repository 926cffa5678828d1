"""The op registry: every op is defined once, with its attribute schema, type
inference, traits and numpy reference implementation.

    @define_op("add", arity=2, traits=ELEMENTWISE | {"commutative"}, infer=broadcast_same_dtype)
    def add(a, b):
        return a + b

`infer(*input_types, **attrs)` returns a TensorType or a list of them; the
reference implementation takes numpy arrays and attrs and returns an array or
a tuple of arrays. Attribute kinds: int, float, str, bool, dtype, ints, floats,
strs, shape (dims that may be symbols, resolved at run time), any. An attribute's
domain narrows its kind: `low` (int, ints: the least value of each) and `choices`
(str: the values allowed), e.g. `"strides": Attr("ints", (), low=1)`.

Beside its traits, each op declares what the passes and targets need to know about it, so that none of
them keeps a list of op names:
  - `fusion`, its pattern kind (as TVM's OpPatternKind), what a fusion planner may do with it:
      elemwise   each result element is a function of the operand elements at its index (broadcast);
      broadcast  the result repeats its operand along some axes (broadcast_to);
      injective  each result element is one operand element, picked by an index function (transpose,
                 slice, concat, gather...);
      reduce     a commutative reduction over static axes (reduce_sum, argmax...);
      anchor     a contraction that takes an epilogue of elementwise ops on its output (matmul, conv);
      opaque     none of these: it runs as a kernel of its own.
    Left out, it follows the traits: elementwise -> elemwise, view -> injective, reduction -> reduce.
  - `precision`, what mixed precision does with it: "low" (computes in bf16/f16 with f32 accumulation:
    matmul, conv), "follow" (exact enough to stay in the low type when its operands are: data movement,
    add, max...), "f32" (numerically sensitive: stays f32; the default).
  - `layout`: "any" (commutes with any transpose of all of its operands: elementwise), "channels_last"
    (runs NHWC itself: it has a channels_last attribute), else "fixed".
  - samples (ir/samples.py): small operands and attributes that exercise it, for the conformance test.

Every op's inference is checked the same way: the operand count against `arity`,
and each result type against the size rules of TensorType.check (no negative
dim, no tensor too large to allocate).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from . import dims as D
from .dtypes import DType
from .errors import IRError, LeptoncError, ShapeError
from .types import TensorType

REQUIRED = object()
ELEMENTWISE = frozenset({"elementwise", "pure"})
PURE = frozenset({"pure"})
# cheap: as fast to recompute as to load (a code generator may recompute it rather than keep it in memory)
KNOWN_TRAITS = {"elementwise", "reduction", "view", "pure", "commutative", "structured", "shape", "cheap"}
FUSION_KINDS = ("elemwise", "broadcast", "injective", "reduce", "anchor", "opaque")
PRECISIONS = ("low", "follow", "f32")
LAYOUTS = ("any", "channels_last", "fixed")


@dataclass(frozen=True)
class Attr:
    kind: str
    default: object = REQUIRED
    low: int | None = None  # int / ints: the least value allowed
    choices: tuple = ()     # str: the values allowed

    def check_domain(self, value, where: str) -> None:
        if self.low is not None:
            bad = [v for v in (value if self.kind == "ints" else (value,)) if v < self.low]
            if bad:
                raise IRError(f"{where} must be >= {self.low}, got {value!r}")
        if self.choices and value not in self.choices:
            raise IRError(f"{where} must be one of {', '.join(map(repr, self.choices))}, got {value!r}")


@dataclass
class OpDef:
    name: str
    attrs: dict[str, Attr]
    infer_fn: Callable
    reference: Callable
    traits: frozenset
    arity: tuple  # (min, max); max None = variadic
    doc: str = ""
    shape_attrs: tuple = field(default=())
    check: Callable | None = None  # check(operand arrays or None, operand types, attrs): contents of constants
    fusion: str = "opaque"     # one of FUSION_KINDS
    precision: str = "f32"     # one of PRECISIONS
    layout: str = "fixed"      # one of LAYOUTS
    needs: Callable | None = None  # needs(operand types, attrs): run-time size requirements (size_checks.py)

    def has(self, trait: str) -> bool:
        return trait in self.traits

    @property
    def samples(self) -> list:
        """Operands and attributes that exercise the op (ir/samples.py)."""
        from .samples import samples_of

        return samples_of(self.name)

    def normalize_attrs(self, attrs: dict, where: str) -> dict:
        """Check names against the schema, fill defaults, coerce to the declared kinds."""
        out = {}
        for key in attrs:
            if key not in self.attrs:
                known = ", ".join(sorted(self.attrs)) or "none"
                raise IRError(f"{where}: unknown attribute '{key}' (attributes of '{self.name}': {known})")
        for key, spec in self.attrs.items():
            if key in attrs:
                out[key] = _coerce(attrs[key], spec.kind, f"{where}: attribute '{key}'")
                spec.check_domain(out[key], f"{where}: attribute '{key}'")
            elif spec.default is REQUIRED:
                raise IRError(f"{where}: missing attribute '{key}' of '{self.name}'")
            else:
                out[key] = spec.default
        return out

    def resolve_shape_attrs(self, attrs: dict, bindings, where: str) -> dict:
        """attrs with every symbolic shape attribute evaluated for the given symbol sizes."""
        if not self.shape_attrs:
            return attrs
        out = dict(attrs)
        for key in self.shape_attrs:
            try:
                out[key] = tuple(D.evaluate(d, bindings) for d in attrs[key])
            except KeyError as e:
                raise ShapeError(f"{where}: attribute '{key}' uses {e}, which no input binds") from None
        return out

    def infer(self, types: list[TensorType], attrs: dict, where: str) -> list[TensorType]:
        lo, hi = self.arity
        if len(types) < lo or (hi is not None and len(types) > hi):
            want = f"{lo}" if lo == hi else f"{lo}..{hi if hi is not None else ''}"
            raise IRError(f"{where}: takes {want} operands, got {len(types)}")
        try:
            out = self.infer_fn(*types, **attrs)
        except ShapeError as e:
            raise ShapeError(f"{where}: {e}") from None
        except LeptoncError:
            raise
        except Exception as e:  # an operand/attribute combination the inference code cannot handle
            raise ShapeError(f"{where}: cannot infer result types ({type(e).__name__}: {e})") from None
        outs = [out] if isinstance(out, TensorType) else list(out)
        for i, t in enumerate(outs):
            t.check(f"{where}: result {i}")
        return outs


_REGISTRY: dict[str, OpDef] = {}


def define_op(name: str, *, infer: Callable, arity=1, attrs: dict | None = None, traits=PURE,
              check: Callable | None = None, fusion: str | None = None, precision: str = "f32",
              layout: str | None = None, needs: Callable | None = None) -> Callable:
    """Register the decorated numpy function as the reference implementation of op `name`.

    `check(arrays, types, attrs)`, when given, checks the contents of operands that are constants (the
    arrays; None for the others) and raises ShapeError naming what is wrong; the verifier calls it.
    `needs(types, attrs)`, when given, lists what the inferred result type takes for granted about symbolic
    sizes, as (operand index, dim index, dim expression that must not be negative, what needs it); every
    runtime checks them before a run (ir/size_checks.py).
    `fusion`, `precision` and `layout` are described in the module docstring."""
    if isinstance(arity, int):
        arity = (arity, arity)
    unknown = set(traits) - KNOWN_TRAITS
    if unknown:
        raise ValueError(f"op '{name}': unknown traits {sorted(unknown)}")
    if fusion is None:
        fusion = "elemwise" if "elementwise" in traits else "injective" if "view" in traits else \
            "reduce" if "reduction" in traits else "opaque"
    if layout is None:
        layout = "any" if "elementwise" in traits else "channels_last" if "channels_last" in (attrs or {}) \
            else "fixed"
    for what, value, allowed in (("fusion", fusion, FUSION_KINDS), ("precision", precision, PRECISIONS),
                                 ("layout", layout, LAYOUTS)):
        if value not in allowed:
            raise ValueError(f"op '{name}': {what} must be one of {allowed}, got {value!r}")
    specs = {k: v if isinstance(v, Attr) else Attr(*v) if isinstance(v, tuple) else Attr(v)
             for k, v in (attrs or {}).items()}

    def register(fn: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"op '{name}' is defined twice")
        _REGISTRY[name] = OpDef(name, specs, infer, fn, frozenset(traits), tuple(arity),
                                (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else "",
                                tuple(k for k, s in specs.items() if s.kind == "shape"), check,
                                fusion, precision, layout, needs)
        return fn

    return register


def get_op(name: str) -> OpDef:
    _load_ops()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise IRError(f"unregistered op '{name}'") from None


def is_registered(name: str) -> bool:
    _load_ops()
    return name in _REGISTRY


def all_ops() -> dict[str, OpDef]:
    _load_ops()
    return dict(_REGISTRY)


def _load_ops() -> None:
    from . import ops  # noqa: F401  (defines every op on first import)


def _coerce(value, kind: str, where: str):
    try:
        if kind == "any":
            return _freeze(value)
        if kind == "int":
            if isinstance(value, bool) or int(value) != value or not -2 ** 63 <= value < 2 ** 63:
                raise TypeError
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if kind == "str":
            if not isinstance(value, str):
                raise TypeError
            return value
        if kind == "bool":
            if not isinstance(value, (bool, int)) or value not in (0, 1):
                raise TypeError
            return bool(value)
        if kind == "dtype":
            return value if isinstance(value, DType) else DType.parse(value)
        if kind == "ints":
            return tuple(_coerce(v, "int", where) for v in value)
        if kind == "floats":
            return tuple(_coerce(v, "float", where) for v in value)
        if kind == "strs":
            return tuple(_coerce(v, "str", where) for v in value)
        if kind == "shape":
            return tuple(D.canonical(v if isinstance(v, str) else _coerce(v, "int", where)) for v in value)
    except (TypeError, ValueError, OverflowError):
        raise IRError(f"{where} must be {kind}{' (64-bit)' if kind in ('int', 'ints', 'shape') else ''}, "
                      f"got {value!r}") from None
    raise ValueError(f"unknown attribute kind {kind!r}")


def _freeze(value):
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value
