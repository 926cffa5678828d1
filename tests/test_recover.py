"""leptonc.recover: a pruned (and quantized) torch model fine-tuned against the dense one's outputs, its mask
and grid kept, and compiled to what it computes."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import leptonc
from leptonc.passes.sparse_layers import SparsityWarning


def mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32), torch.nn.ReLU(),
                               torch.nn.Linear(32, 8))


def samples(n=6, rows=16):
    rng = np.random.default_rng(0)
    return [(rng.standard_normal((rows, 16)).astype(np.float32),) for _ in range(n)]


def recover(module, passes, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SparsityWarning)
        return leptonc.recover(module, passes, samples(), **kw)


@pytest.mark.parametrize("passes, grid", [
    ("prune{method=sparsegpt,sparsity=0.75,skip=none}", False),
    ("prune{method=block,block=1x4,sparsity=0.75,skip=none},quantize{weights=int8}", True),
])
def test_recovery_lowers_the_loss_keeps_the_mask_and_compiles_to_the_recovered_module(passes, grid):
    dense = mlp()
    before = [m.weight.detach().clone() for m in dense if isinstance(m, torch.nn.Linear)]
    r = recover(dense, passes, steps=60, lr=1e-2, loss="kl")
    assert np.mean(r.losses[-6:]) < 0.7 * np.mean(r.losses[:6]), r.losses
    for layer, w0 in zip([m for m in r.module if isinstance(m, torch.nn.Linear)], before):
        w = layer.weight.detach().numpy()
        assert (w == 0).mean() >= 0.75
        assert not np.array_equal(w, w0.numpy())
        if grid:  # on the int8 grid of its rows
            amax = np.abs(w).max(axis=1, keepdims=True)
            q = w / np.where(amax > 0, amax / 127, 1)
            np.testing.assert_allclose(q, np.rint(q), atol=1e-3)
    for m, w0 in zip([m for m in dense if isinstance(m, torch.nn.Linear)], before):
        assert torch.equal(m.weight, w0)   # the dense module is left as it was
    assert r.mismatch < 1e-5
    x = np.random.default_rng(1).standard_normal((16, 16)).astype(np.float32)   # (not a calibration sample)
    with torch.no_grad():
        np.testing.assert_allclose(r.compiled(x), r.module(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-5)
    zeros = [row["sparsity"] for row in r.compiled.manifest["accuracy"]["layers"]]
    assert min(zeros) >= 0.75


@pytest.mark.parametrize("call, message", [
    (lambda: leptonc.recover(leptonc.Graph(), "prune", samples()), "recover fine-tunes a torch.nn.Module"),
    (lambda: leptonc.recover(mlp(), "prune", samples(), loss="l1"), "loss='l1' is not one of kl, mse"),
    (lambda: leptonc.recover(mlp(), "prune", samples(), schedule="step"), "schedule='step' is not one of cosine"),
    (lambda: leptonc.recover(mlp(), "prune", None), "recover needs calibration data"),
    (lambda: leptonc.recover(mlp(), "", samples()), "recover needs the passes"),
])
def test_errors(call, message):
    with pytest.raises(leptonc.LeptoncError, match=message):
        call()


def test_recovery_of_a_cnn_keeps_the_conv_masks_and_runs_the_sparse_conv():
    torch.manual_seed(0)
    cnn = torch.nn.Sequential(torch.nn.Conv2d(2, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(16 * 5 * 5, 8))
    rng = np.random.default_rng(0)
    data = [(rng.standard_normal((4, 2, 5, 5)).astype(np.float32),) for _ in range(4)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SparsityWarning)
        r = leptonc.recover(cnn, "prune{method=sparsegpt,pattern=block,block=1x8,sparsity=0.75,skip=none,"
                                 "kernels=sparse}", data, steps=40, lr=1e-2, loss="kl")
    assert np.mean(r.losses[-4:]) < np.mean(r.losses[:4]), r.losses
    conv = r.module[2].weight.detach().numpy().reshape(16, -1)
    assert (conv.reshape(16, -1, 8) == 0).all(axis=2).mean() == 0.75   # whole 1x8 blocks of W [O, C * 3 * 3]
    assert "conv_bsr(" in r.compiled.ir_text
    assert r.mismatch < 1e-5
    x = rng.standard_normal((4, 2, 5, 5)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(r.compiled(x), r.module(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-5)
