"""Compiling StableHLO text with jaxlib's XLA client and running it on numpy arrays.

The module text goes straight to the PJRT client (`Client.compile_and_load`), the
same entry point jax itself hands its lowered modules to; no Python is traced.
`XlaModel` runs a Graph: it emits one module per binding of the symbolic dims,
compiles it once, and keeps the weights on the device between calls.
"""
from __future__ import annotations

import numpy as np

from ...ir.errors import LeptoncError
from ...ir.graph import Graph
from ...runtime.signature import bind_inputs
from .emit import EmittedModule, emit
from .specialize import symbols_of


def xla_client(platform: str = "cpu"):
    """The PJRT client of a platform ("cpu", "tpu", "gpu"), through jaxlib."""
    try:
        from jax._src import xla_bridge
    except ImportError:
        raise LeptoncError("the stablehlo target runs on XLA through jaxlib: pip install jax jaxlib") from None
    return xla_bridge.get_backend(platform)


class XlaExecutable:
    """One StableHLO module compiled by XLA: call it with numpy arrays, get numpy arrays back."""

    def __init__(self, module_text: str, platform: str = "cpu"):
        from jax._src.lib import xla_client as xc

        self.client = xla_client(platform)
        self.device = self.client.local_devices()[0]
        options = xc.CompileOptions()
        try:
            self.executable = self.client.compile_and_load(
                module_text, executable_devices=xc.DeviceList((self.device,)), compile_options=options)
        except Exception as e:  # XLA reports a module it rejects as a runtime error with the reason
            raise LeptoncError(f"XLA rejected the StableHLO module: {e}") from None

    def to_device(self, array: np.ndarray):
        """Copy an array to the device in its own dtype (64-bit types stay 64-bit)."""
        import jax
        from jax._src import config

        with config.enable_x64(True):
            return jax.device_put(np.ascontiguousarray(array), self.device)

    def run_on_device(self, buffers: list) -> list:
        """Run on device-resident arguments; the results stay on the device."""
        return self.executable.execute(buffers)

    def __call__(self, *arrays) -> list[np.ndarray]:
        return [np.asarray(r) for r in self.run_on_device([self.to_device(a) for a in arrays])]


class XlaModel:
    """A Graph run by XLA: a module per size binding, compiled on first use and cached."""

    def __init__(self, graph: Graph, inline_weights: bool = False, platform: str = "cpu"):
        self.graph = graph
        self.inline_weights = inline_weights
        self.platform = platform
        self._symbols = symbols_of(graph)
        self._compiled: dict[tuple, tuple[EmittedModule, XlaExecutable]] = {}
        self._weights_on_device: dict[str, object] = {}

    def module_for(self, bindings: dict[str, int]) -> EmittedModule:
        return self._compile(bindings)[0]

    def _compile(self, bindings: dict[str, int]):
        key = tuple(sorted((k, v) for k, v in bindings.items() if k in self._symbols))
        if key not in self._compiled:
            module = emit(self.graph, dict(key), self.inline_weights)
            self._compiled[key] = (module, XlaExecutable(module.text, self.platform))
        return self._compiled[key]

    @property
    def compiled_sizes(self) -> list[dict[str, int]]:
        """The bindings compiled so far (one XLA executable each)."""
        return [dict(k) for k in self._compiled]

    def __call__(self, *inputs) -> list[np.ndarray]:
        arrays, bindings = bind_inputs([v.name for v in self.graph.inputs], [v.type for v in self.graph.inputs],
                                       inputs)
        module, exe = self._compile(bindings)
        buffers = [exe.to_device(a) for a in arrays] + [self._weight(exe, n) for n in module.weights]
        return [np.asarray(r) for r in exe.run_on_device(buffers)]

    def _weight(self, exe: XlaExecutable, name: str):
        if name not in self._weights_on_device:
            self._weights_on_device[name] = exe.to_device(self.graph.constants[name])
        return self._weights_on_device[name]
