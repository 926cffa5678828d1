"""Kernels share their work out in chunks that threads take as they go (GEMM tiles, chunks of rows): the results
are the same bits whatever the number of threads and whoever ran which chunk, also from many Python threads at
once, and they match the reference interpreter."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import leptonc  # noqa: E402


class _Mixed(torch.nn.Module):
    """GEMMs with K past the GEMM's block of K (1100, 2048) and a row count off the micro-kernel's, fused
    epilogues, a layer norm and a softmax (row reductions) and a transpose."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(1100, 2048)
        self.b = torch.nn.Linear(2048, 96)
        self.norm = torch.nn.LayerNorm(96)

    def forward(self, x):
        h = self.b(torch.nn.functional.gelu(self.a(x)))
        y = torch.softmax(self.norm(h) * 3.0, dim=-1)
        return y, h.t().contiguous() - 1.0


@pytest.fixture(scope="module", params=[5, 203], ids=["rows5", "rows203"])
def compiled(request):
    torch.manual_seed(0)
    module = _Mixed().eval()
    x = torch.randn(request.param, 1100)
    graph = leptonc.import_torch(module, (x,))
    return leptonc.compile(graph, quiet=True), graph, x.numpy()


def test_the_same_bits_on_any_number_of_threads(compiled):
    cm, graph, x = compiled
    try:
        runs = {}
        for n in (1, 2, 3, 4):
            cm.executor.set_threads(n)
            runs[n] = [cm(x) for _ in range(3)]
    finally:
        cm.executor.set_threads(None)
    first = runs[1][0]
    for n, outs in runs.items():
        for out in outs:
            for a, b in zip(out, first):
                np.testing.assert_array_equal(a, b, err_msg=f"{n} threads")
    for a, b in zip(first, leptonc.run_reference(graph, x)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_the_same_bits_from_many_python_threads_at_once(compiled):
    cm, _, x = compiled
    cm.executor.set_threads(2)
    try:
        want = cm(x)
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda _: [cm(x) for _ in range(4)], range(6)))
    finally:
        cm.executor.set_threads(None)
    for outs in results:
        for out in outs:
            for a, b in zip(out, want):
                np.testing.assert_array_equal(a, b)
