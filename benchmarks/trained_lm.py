"""A small byte-level transformer LM trained on the Python standard library's sources, for the accuracy
benchmarks.

    lm = byte_lm()                     # trained (or loaded from the cache) on this machine's stdlib sources
    lm.module                          # torch module: byte ids [batch, seq] int64 -> logits [batch, seq, 256]
    perplexity(fn, lm.eval_text)       # fn: ids [batch, seq] -> logits (numpy in, numpy out)
    lm.calibration(64, batch=8)        # 8 samples of 8 training windows for compile(..., calibration=)

The corpus is every .py file of a few standard library packages, in sorted order; every tenth file is
held out for evaluation, the others are the training text. Training is seeded and deterministic on the
CPU (a few minutes on two cores); the weights are cached under the leptonc cache folder, keyed by the
recipe and the corpus's digest, so a second call only loads them.
"""
from __future__ import annotations

import glob
import hashlib
import os
import sys
import sysconfig
from dataclasses import dataclass

import numpy as np

SEED = 0
PACKAGES = ("json", "email", "http", "logging", "urllib", "concurrent", "importlib")
SEQ = 128


def corpus(packages=PACKAGES) -> tuple[bytes, bytes]:
    """(training text, held-out text): the packages' .py sources, every tenth file held out."""
    root = sysconfig.get_paths()["stdlib"]
    files = sorted(f for p in packages for f in glob.glob(os.path.join(root, p, "**", "*.py"), recursive=True))
    if not files:
        raise RuntimeError(f"no Python sources of {packages} under {root}")
    texts = [open(f, "rb").read() for f in files]
    return b"".join(t for i, t in enumerate(texts) if i % 10), b"".join(t for i, t in enumerate(texts) if i % 10 == 0)


def _model_class():
    import torch
    from torch import nn

    class Block(nn.Module):
        """Pre-norm causal self-attention and a GELU MLP."""

        def __init__(self, d: int, heads: int, seq: int):
            super().__init__()
            self.heads = heads
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
            self.up, self.down = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
            self.register_buffer("mask", torch.triu(torch.full((seq, seq), -1e9), 1), persistent=False)

        def forward(self, x):
            b, t, d = x.shape
            h = self.ln1(x)
            q, k, v = (m(h).reshape(b, t, self.heads, d // self.heads).transpose(1, 2)
                       for m in (self.q, self.k, self.v))
            att = torch.softmax(q @ k.transpose(2, 3) * (d // self.heads) ** -0.5 + self.mask[:t, :t], dim=-1)
            x = x + self.o((att @ v).transpose(1, 2).reshape(b, t, d))
            return x + self.down(nn.functional.gelu(self.up(self.ln2(x))))

    class ByteLM(nn.Module):
        """Byte embedding plus learned positions, `layers` blocks, a final norm and a linear head."""

        def __init__(self, d: int = 192, layers: int = 4, heads: int = 4, seq: int = SEQ):
            super().__init__()
            self.embed, self.pos = nn.Embedding(256, d), nn.Parameter(torch.zeros(seq, d))
            self.blocks = nn.ModuleList(Block(d, heads, seq) for _ in range(layers))
            self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, 256)

        def forward(self, ids):
            x = self.embed(ids) + self.pos[:ids.shape[1]]
            for block in self.blocks:
                x = block(x)
            return self.head(self.ln(x))

    return ByteLM


@dataclass
class TrainedLM:
    """The trained module, its training and held-out text, and how long training took (0 when cached)."""

    module: object
    train_text: bytes
    eval_text: bytes
    train_s: float

    def calibration(self, n: int, batch: int = 1, seq: int = SEQ) -> list[tuple[np.ndarray]]:
        """n windows of the training text (never the held-out text), evenly spaced, as n // batch samples
        [batch, seq] int64 for compile(..., calibration=)."""
        starts = np.linspace(0, len(self.train_text) - seq - 1, n // batch * batch).astype(int)
        data = np.frombuffer(self.train_text, np.uint8)
        w = np.stack([data[s:s + seq] for s in starts]).astype(np.int64)
        return [(w[i:i + batch],) for i in range(0, len(w), batch)]


def windows(text: bytes, seq: int = SEQ, limit: int | None = None) -> np.ndarray:
    """Non-overlapping windows of seq + 1 bytes (inputs and next-byte targets), [n, seq + 1] int64."""
    data = np.frombuffer(text, np.uint8)
    n = (len(data) - 1) // seq
    n = n if limit is None else min(n, limit)
    return np.stack([data[i * seq:i * seq + seq + 1] for i in range(n)]).astype(np.int64)


def perplexity(fn, text: bytes, batch: int = 8, seq: int = SEQ, limit: int | None = 64) -> float:
    """exp(mean next-byte cross entropy) of `fn` (ids [batch, seq] int64 -> logits [batch, seq, 256], numpy)
    over the first `limit` windows of `text` (all of them when None), fed `batch` windows at a time."""
    w = windows(text, seq, limit)
    w = w[:len(w) // batch * batch]
    nll, count = 0.0, 0
    for i in range(0, len(w), batch):
        x, y = w[i:i + batch, :-1], w[i:i + batch, 1:]
        logits = np.asarray(fn(x), np.float64)
        logits = logits - logits.max(axis=-1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
        nll -= float(np.take_along_axis(logp, y[..., None], axis=-1).sum())
        count += y.size
    return float(np.exp(nll / count))


def byte_lm(d: int = 128, layers: int = 4, heads: int = 4, steps: int = 800, batch: int = 16,
            lr: float = 3e-3, packages=PACKAGES) -> TrainedLM:
    """The byte-level LM trained `steps` steps of AdamW (cosine schedule) on random windows of the training
    text, seeded, on one thread (several threads on a busy machine are far slower, and one is deterministic);
    loaded from the cache when this recipe was trained on this corpus before."""
    import time

    import torch

    from leptonc.runtime.files import cache_dir

    train_text, eval_text = corpus(packages)
    torch.manual_seed(SEED)
    module = _model_class()(d, layers, heads)
    recipe = f"byte_lm d={d} layers={layers} heads={heads} steps={steps} batch={batch} lr={lr} seq={SEQ}"
    key = hashlib.sha256(recipe.encode() + hashlib.sha256(train_text).digest()).hexdigest()[:16]
    path = os.path.join(cache_dir(), "trained", f"byte_lm-{key}.pt")
    t0 = time.perf_counter()
    if os.path.exists(path):
        module.load_state_dict(torch.load(path, weights_only=True))
        train_s = 0.0
    else:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            _train(module, train_text, steps, batch, lr)
        finally:
            torch.set_num_threads(threads)
        train_s = time.perf_counter() - t0
        os.makedirs(os.path.dirname(path), exist_ok=True)
        torch.save(module.state_dict(), path + ".tmp")
        os.replace(path + ".tmp", path)
    return TrainedLM(module.eval(), train_text, eval_text, train_s)


def _train(module, text: bytes, steps: int, batch: int, lr: float) -> None:
    import torch

    data = torch.from_numpy(np.frombuffer(text, np.uint8).astype(np.int64))
    g = torch.Generator().manual_seed(SEED)
    opt = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.95))
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, 0.5 * (1 + np.cos(np.pi * min(s, steps) / steps))))
    module.train()
    for step in range(steps):
        starts = torch.randint(0, len(data) - SEQ - 1, (batch,), generator=g)
        w = torch.stack([data[s:s + SEQ + 1] for s in starts.tolist()])
        logits = module(w[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 256), w[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"byte_lm: step {step}, loss {loss.item():.3f}", file=sys.stderr, flush=True)
    module.eval()
