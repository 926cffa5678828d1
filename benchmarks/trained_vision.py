"""Small trained classifiers on data sets that ship with scikit-learn, for the accuracy benchmarks.

    model = digits_cnn()     # a CNN on load_digits (8x8 grey images, 10 classes)
    model = mlp_classifier() # an MLP on load_breast_cancer (30 standardized features, 2 classes)

Each returns a `Trained`: the torch module (eval mode), and the calibration and test splits as float32
numpy arrays (inputs, and integer labels for the test split). Training is seeded and deterministic on the
CPU; the weights are cached under the leptonc cache folder (keyed by the model's recipe), so a second call
only loads them. The calibration samples come from the training split, never from the test split.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

SEED = 0


@dataclass
class Trained:
    """A trained module with its data: calibration inputs [n, ...], test inputs and labels."""

    name: str
    module: object
    calibration: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray

    def accuracy(self, predict) -> float:
        """Percent of the test split `predict` (inputs -> logits, numpy) classifies right."""
        logits = np.asarray(predict(self.test_x))
        return float(np.mean(np.argmax(logits, axis=-1) == self.test_y) * 100)


def _split(x: np.ndarray, y: np.ndarray, calibration: int, test_fraction: float = 0.3):
    """Seeded (train, calibration, test) splits; the calibration samples are drawn from the training split."""
    order = np.random.default_rng(SEED).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return (x[train], y[train]), x[train[:calibration]], (x[test], y[test])


def _train(module, x: np.ndarray, y: np.ndarray, epochs: int, lr: float, batch: int = 64) -> None:
    import torch

    g = torch.Generator().manual_seed(SEED)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    module.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(xt), generator=g).split(batch):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(module(xt[idx]), yt[idx]).backward()
            opt.step()
        sched.step()
    module.eval()


def _cached(name: str, build, recipe: str, train) -> object:
    """build() with weights trained by train(module), or loaded from the cache when the recipe was trained."""
    import torch

    from leptonc.runtime.files import cache_dir

    torch.manual_seed(SEED)
    module = build()
    key = hashlib.sha256((recipe + repr(module)).encode()).hexdigest()[:16]
    path = os.path.join(cache_dir(), "trained", f"{name}-{key}.pt")
    if os.path.exists(path):
        module.load_state_dict(torch.load(path, weights_only=True))
    else:
        with torch.random.fork_rng():
            torch.manual_seed(SEED)
            train(module)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        torch.save(module.state_dict(), path + ".tmp")
        os.replace(path + ".tmp", path)
    return module.eval()


def digits_cnn(calibration: int = 128, epochs: int = 40) -> Trained:
    """conv 3x3 (1 -> 16) -> relu -> conv 3x3 (16 -> 32) -> relu -> max pool 2 -> linear (512 -> 10), trained on
    70% of scikit-learn's digits (pixels scaled to [0, 1]); tested on the other 30% (540 images)."""
    import torch
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None]  # [1797, 1, 8, 8]
    (tx, ty), cal, (vx, vy) = _split(x, data.target, calibration)

    def build():
        return torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(),
            torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(32 * 4 * 4, 10))

    module = _cached("digits_cnn", build, f"digits adam 2e-3 e{epochs} b64 seed{SEED}",
                     lambda m: _train(m, tx, ty, epochs, 2e-3))
    return Trained("digits CNN", module, cal, vx, vy.astype(np.int64))


def mlp_classifier(calibration: int = 64, epochs: int = 60) -> Trained:
    """linear (30 -> 64) -> relu -> linear (64 -> 32) -> relu -> linear (32 -> 2), trained on 70% of
    scikit-learn's breast cancer data set (features standardized with the training split's mean and
    deviation); tested on the other 30% (171 samples)."""
    import torch
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    (tx, ty), _, _ = _split(data.data, data.target, 0)
    mean, std = tx.mean(axis=0), tx.std(axis=0) + 1e-12
    x = ((data.data - mean) / std).astype(np.float32)
    (tx, ty), cal, (vx, vy) = _split(x, data.target, calibration)

    def build():
        return torch.nn.Sequential(torch.nn.Linear(30, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32),
                                   torch.nn.ReLU(), torch.nn.Linear(32, 2))

    module = _cached("breast_cancer_mlp", build, f"breast_cancer adam 1e-3 e{epochs} b64 seed{SEED}",
                     lambda m: _train(m, tx, ty, epochs, 1e-3))
    return Trained("breast cancer MLP", module, cal, vx, vy.astype(np.int64))
