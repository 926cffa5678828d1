"""torch's 8-bit float types through import_torch: conversions (into float8_e4m3fn torch saturates, inf
included; into the others it does not) and float8 weights, against eager torch."""
from __future__ import annotations

import numpy as np
import pytest

import leptonc

torch = pytest.importorskip("torch")

FLOAT8 = [torch.float8_e4m3fn, torch.float8_e4m3fnuz, torch.float8_e5m2, torch.float8_e5m2fnuz]


class RoundTrip(torch.nn.Module):
    """Scale, store in a float8 type, read back: the fake quantization of FP8 training and inference."""

    def __init__(self, dtype):
        super().__init__()
        self.dtype = dtype

    def forward(self, x):
        q = (x * 4.0).to(self.dtype)
        return q, q.to(torch.float32) / 4.0


class Float8Weight(torch.nn.Module):
    def __init__(self, dtype):
        super().__init__()
        self.register_buffer("w", (torch.randn(8, 4, generator=torch.Generator().manual_seed(0)) * 100).to(dtype))

    def forward(self, x):
        return x @ self.w.to(torch.float32)


def _bits(t: torch.Tensor) -> np.ndarray:
    return t.view(torch.uint8).numpy() if t.dtype in FLOAT8 else t.numpy()


@pytest.mark.parametrize("dtype", FLOAT8, ids=str)
def test_conversions_match_eager(dtype):
    x = torch.tensor([[0.4789, -3.3, 1e6, -1e6, float("inf"), -float("inf"), float("nan"), 116.0, 117.0,
                       1e-9, -0.0, 15000.0]])
    module = RoundTrip(dtype)
    got = leptonc.run_reference(leptonc.import_torch(module, (x,)), x.numpy())
    for g, e in zip(got, module(x)):
        eb, gb = _bits(e), np.asarray(g).view(np.uint8) if e.dtype in FLOAT8 else np.asarray(g)
        nan = np.isnan(e.float().numpy())
        assert np.array_equal(np.where(nan, 0, gb), np.where(nan, 0, eb)), (dtype, gb, eb)
        assert np.array_equal(np.isnan(np.asarray(g).astype(np.float32)), nan)


@pytest.mark.parametrize("dtype", FLOAT8, ids=str)
def test_float8_weights_import_as_constants(dtype):
    module, x = Float8Weight(dtype), torch.randn(3, 8)
    g = leptonc.import_torch(module, (x,))
    assert "%w = const @w : " + str(dtype).replace("torch.float8_", "f8").replace("_", "") + "[8, 4]" \
        in leptonc.print_ir(g)
    (got,) = leptonc.run_reference(g, x.numpy())
    np.testing.assert_allclose(got, module(x).numpy(), rtol=1e-5, atol=1e-5)
