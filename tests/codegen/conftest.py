"""Where the triton target's tests run its kernels: on the CUDA GPU where there is one, otherwise on the CPU
through Triton's interpreter (TRITON_INTERPRET=1, read when a kernel module is imported)."""
from __future__ import annotations

import pytest


@pytest.fixture
def triton_device(monkeypatch) -> str:
    """'cuda' or 'cpu': the device the triton target's kernels run on in this test."""
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        monkeypatch.delenv("TRITON_INTERPRET", raising=False)
        return "cuda"
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    return "cpu"
