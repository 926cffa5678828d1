"""Sample inputs of an op: small operands and attributes that exercise it, kept with its registry entry.

Each module of ops/ declares its samples once, as a function of a `Sampler` (built lazily, so
importing the registry draws no arrays):

    @op_samples
    def _samples(s):
        return {"add": [s(s.f32(2, 3), s.f32(3))],
                "reshape_dynamic": [s(s.f32(2, 3, 4), s.const(0, -1))]}

`s(*operands, **attrs)` is one Sample; an operand made by `s.const`/`s.scalar`/`s.constant` is a graph
constant (its contents known before run time, as a shape or an axis must be for most targets), any other
array is a graph input. The arrays are drawn from a generator seeded by the module's name, so they are
the same on every run. `sample_graph` builds a graph running a list of samples side by side; the conformance
test and `leptonc ops` read them through `OpDef.samples`.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Constant:
    """An operand that is a graph constant rather than a graph input."""

    array: np.ndarray


@dataclass
class Sample:
    """One application of an op: its operands (arrays, or Constants) and attributes."""

    operands: tuple
    attrs: dict = field(default_factory=dict)

    @property
    def inputs(self) -> list[np.ndarray]:
        """The operands that are graph inputs, in order."""
        return [a for a in self.operands if not isinstance(a, Constant)]


class Sampler:
    """Makes the operands of samples from a generator seeded by a name."""

    def __init__(self, seed_name: str = ""):
        self.rng = np.random.default_rng(zlib.crc32(seed_name.encode()))

    def __call__(self, *operands, **attrs) -> Sample:
        return Sample(tuple(operands), attrs)

    def f32(self, *shape, low=-2.0, high=2.0, dtype=np.float32) -> np.ndarray:
        return self.rng.uniform(low, high, shape).astype(dtype)

    def ints(self, *shape, low=-5, high=6, dtype=np.int64) -> np.ndarray:
        return self.rng.integers(low, high, shape).astype(dtype)

    def bools(self, *shape) -> np.ndarray:
        return self.rng.random(shape) < 0.5

    @staticmethod
    def const(*values, dtype=np.int64) -> Constant:
        """A 1-d constant operand (a shape, axes, sizes)."""
        return Constant(np.array(values, dtype=dtype))

    @staticmethod
    def scalar(value, dtype=np.int64) -> Constant:
        """A 0-d constant operand."""
        return Constant(np.array(value, dtype=dtype))

    @staticmethod
    def constant(array) -> Constant:
        return Constant(np.asarray(array))


_BUILDERS: list[Callable[[Sampler], dict]] = []
_CACHE: dict[str, list[Sample]] | None = None


def op_samples(build: Callable[[Sampler], dict]) -> Callable:
    """Declare a module's samples: build(sampler) returns {op name: [Sample, ...]}."""
    _BUILDERS.append(build)
    return build


def samples_of(op: str) -> list[Sample]:
    """The samples declared for op (drawn on first use)."""
    global _CACHE
    if _CACHE is None:
        from .registry import all_ops  # every module of ops/ declares its samples on import

        known = set(all_ops())
        cache: dict[str, list[Sample]] = {}
        for build in _BUILDERS:
            for name, samples in build(Sampler(build.__module__)).items():
                if name not in known:
                    raise ValueError(f"samples for an unregistered op '{name}'")
                cache.setdefault(name, []).extend(samples)
        _CACHE = cache
    return _CACHE.get(op, [])


def sample_graph(cases: list[tuple[str, Sample]], name: str = "samples"):
    """A graph running every (op, sample) side by side, each over its own inputs and constants, all results
    outputs; with the input arrays in graph order and, per case, the slice of graph outputs it owns."""
    from .dtypes import DType
    from .graph import Graph
    from .types import TensorType

    g = Graph(name)
    inputs, owned, outputs = [], [], []
    for k, (op, sample) in enumerate(cases):
        values = []
        for i, a in enumerate(sample.operands):
            if isinstance(a, Constant):
                values.append(g.add_constant(a.array, f"s{k}_c{i}"))
            else:
                values.append(g.add_input(f"s{k}_x{i}", TensorType(DType.from_numpy(a.dtype), a.shape)))
                inputs.append(a)
        node = g.add_node(op, values, sample.attrs)
        owned.append(slice(len(outputs), len(outputs) + len(node.outputs)))
        outputs.extend(node.outputs)
    g.set_outputs(outputs)
    return g, inputs, owned
