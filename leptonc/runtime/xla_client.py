"""Compiling StableHLO text with jaxlib's XLA client and running the executable on numpy arrays.

The module text goes straight to the PJRT client (`Client.compile_and_load`), the
same entry point jax itself hands its lowered modules to; no Python is traced.
"""
from __future__ import annotations

import numpy as np

from ..ir.errors import LeptoncError, optional_dependency


def xla_client(platform: str = "cpu"):
    """The PJRT client of a platform ("cpu", "tpu", "gpu"), through jaxlib."""
    with optional_dependency("the stablehlo target (XLA through jaxlib)"):
        from jax._src import xla_bridge
    try:
        return xla_bridge.get_backend(platform)
    except RuntimeError as e:
        raise LeptoncError(f"no XLA client for platform {platform!r}: {e}") from None


class XlaExecutable:
    """One StableHLO module compiled by XLA: call it with numpy arrays, get numpy arrays back."""

    def __init__(self, module_text: str, platform: str = "cpu"):
        self.client = xla_client(platform)
        from jax._src.lib import xla_client as xc

        self.device = self.client.local_devices()[0]
        try:
            self.executable = self.client.compile_and_load(
                module_text, executable_devices=xc.DeviceList((self.device,)), compile_options=xc.CompileOptions())
        except Exception as e:  # XLA reports a module it rejects as a runtime error with the reason
            raise LeptoncError(f"XLA rejected the StableHLO module: {e}") from None

    def to_device(self, array: np.ndarray):
        """Copy an array to the device in its own dtype (64-bit types stay 64-bit)."""
        import jax
        from jax._src import config

        with config.enable_x64(True):
            return jax.device_put(np.asarray(array, order="C"), self.device)

    def run_on_device(self, buffers: list) -> list:
        """Run on device-resident arguments; the results stay on the device."""
        return self.executable.execute(buffers)

    def __call__(self, *arrays) -> list[np.ndarray]:
        return [np.asarray(r) for r in self.run_on_device([self.to_device(a) for a in arrays])]
