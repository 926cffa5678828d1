"""Models the tests share: each builder returns (module, example_inputs), random weights, eval mode.

    from tests.model_zoo import MODELS, build, eager_outputs
    module, inputs = build("bert_small")
    expected = eager_outputs(module, inputs)        # list of numpy arrays, in graph-output order

Full-size models (bert, gpt2, resnet50, mobilenet_v2, vit) are slow to export;
fast tests use the small variants (mlp, cnn, bert_small, gpt2_small,
resnet_small, mobilenet_small, vit_small). `dynamic(name)` gives, for the
models in DYNAMIC, the torch.export dynamic_shapes and a second input set of
other sizes.
"""
from __future__ import annotations

import functools
from typing import Callable

import numpy as np
import torch
from torch import nn

SEED = 0


class MLP(nn.Module):
    """Two linear layers with a GELU between them and a softmax over the classes."""

    def __init__(self, d_in: int = 64, d_hidden: int = 128, d_out: int = 10):
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(d_hidden, d_out)

    def forward(self, x):
        return torch.softmax(self.fc2(self.act(self.fc1(x))), dim=-1)


class SmallCNN(nn.Module):
    """conv-bn-relu-maxpool, conv-bn-relu, global average pool, linear."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(32, classes)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        x = torch.relu(self.bn2(self.conv2(x)))
        x = torch.nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def _randomize_batchnorm(module: nn.Module) -> None:
    """Give BatchNorm layers non-trivial running statistics so that eval mode is really tested."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)


def _ready(module: nn.Module) -> nn.Module:
    _randomize_batchnorm(module)
    return module.eval()


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(SEED + 1)


def _token_inputs(vocab: int, batch: int, seq: int) -> tuple:
    """Token ids and an attention mask that pads the last quarter of every sequence after the first."""
    ids = torch.randint(0, vocab, (batch, seq), generator=_generator())
    mask = torch.ones(batch, seq, dtype=torch.int64)
    mask[1:, seq - seq // 4:] = 0
    return ids, mask


def _image(batch: int, size: int) -> tuple:
    """One batch of random RGB images."""
    return (torch.randn(batch, 3, size, size, generator=_generator()),)


def _seeded(fn: Callable) -> Callable:
    """Build with the global seed set, so that random weights are the same on every call."""
    @functools.wraps(fn)
    def build():
        torch.manual_seed(SEED)
        with torch.no_grad():
            return fn()
    return build


@_seeded
def mlp():
    """MLP 64 -> 128 -> 10 with GELU and softmax, batch 4."""
    return _ready(MLP()), (torch.randn(4, 64, generator=_generator()),)


@_seeded
def cnn():
    """Small CNN with BatchNorm on 2 x 3 x 32 x 32 images."""
    return _ready(SmallCNN()), _image(2, 32)


def _bert(batch: int, seq: int, **config):
    from transformers import BertConfig, BertModel

    cfg = BertConfig(**config)
    return _ready(BertModel(cfg)), _token_inputs(cfg.vocab_size, batch, seq)


@_seeded
def bert():
    """BertModel(BertConfig()) (BERT-base), batch 1, seq 128."""
    return _bert(1, 128)


@_seeded
def bert_small():
    """2-layer BERT, hidden 128, 2 heads, batch 2, seq 16."""
    return _bert(2, 16, hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512,
                 vocab_size=1000, max_position_embeddings=128)


def _gpt2(batch: int, seq: int, **config):
    from transformers import GPT2Config, GPT2Model

    cfg = GPT2Config(use_cache=False, **config)
    ids = torch.randint(0, cfg.vocab_size, (batch, seq), generator=_generator())
    return _ready(GPT2Model(cfg)), (ids,)


@_seeded
def gpt2():
    """GPT2Model(GPT2Config()), batch 1, seq 64."""
    return _gpt2(1, 64)


@_seeded
def gpt2_small():
    """2-layer GPT-2, hidden 128, 2 heads, batch 2, seq 16."""
    return _gpt2(2, 16, n_layer=2, n_embd=128, n_head=2, vocab_size=1000, n_positions=128,
                 bos_token_id=0, eos_token_id=0)


@_seeded
def resnet50():
    """ResNetModel(ResNetConfig()) (ResNet-50) on 1 x 3 x 224 x 224."""
    from transformers import ResNetConfig, ResNetModel

    return _ready(ResNetModel(ResNetConfig())), _image(1, 224)


@_seeded
def resnet_small():
    """2-stage basic-block ResNet, widths 16/32, on 2 x 3 x 32 x 32."""
    from transformers import ResNetConfig, ResNetModel

    cfg = ResNetConfig(embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], layer_type="basic")
    return _ready(ResNetModel(cfg)), _image(2, 32)


@_seeded
def mobilenet_v2():
    """MobileNetV2Model(MobileNetV2Config()) on 1 x 3 x 224 x 224."""
    from transformers import MobileNetV2Config, MobileNetV2Model

    return _ready(MobileNetV2Model(MobileNetV2Config())), _image(1, 224)


@_seeded
def mobilenet_small():
    """MobileNetV2 at depth multiplier 0.35 on 1 x 3 x 64 x 64."""
    from transformers import MobileNetV2Config, MobileNetV2Model

    cfg = MobileNetV2Config(depth_multiplier=0.35, image_size=64)
    return _ready(MobileNetV2Model(cfg)), _image(1, 64)


@_seeded
def vit():
    """ViTModel(ViTConfig()) (ViT-Base/16) on 1 x 3 x 224 x 224."""
    from transformers import ViTConfig, ViTModel

    return _ready(ViTModel(ViTConfig())), _image(1, 224)


@_seeded
def vit_small():
    """2-layer ViT, hidden 64, 2 heads, patch 8 on 2 x 3 x 32 x 32."""
    from transformers import ViTConfig, ViTModel

    cfg = ViTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                    image_size=32, patch_size=8)
    return _ready(ViTModel(cfg)), _image(2, 32)


MODELS: dict[str, Callable[[], tuple]] = {
    "mlp": mlp, "cnn": cnn,
    "bert_small": bert_small, "gpt2_small": gpt2_small, "resnet_small": resnet_small,
    "mobilenet_small": mobilenet_small, "vit_small": vit_small,
    "bert": bert, "gpt2": gpt2, "resnet50": resnet50, "mobilenet_v2": mobilenet_v2, "vit": vit,
}
SMALL = ("mlp", "cnn", "bert_small", "gpt2_small", "resnet_small", "mobilenet_small", "vit_small")
FULL = ("bert", "gpt2", "resnet50", "mobilenet_v2", "vit")


def build(name: str) -> tuple:
    """(module, example_inputs) for a model of MODELS."""
    return MODELS[name]()


def dynamic(name: str) -> tuple:
    """(dynamic_shapes for torch.export, other inputs of different sizes) for the models in DYNAMIC."""
    batch = torch.export.Dim("batch", min=1, max=64)
    seq = torch.export.Dim("seq", min=2, max=128)
    if name == "mlp":
        return ({0: batch},), (torch.randn(7, 64, generator=_generator()),)
    if name == "cnn":
        return ({0: batch},), _image(3, 32)
    if name == "bert_small":
        return ({0: batch, 1: seq}, {0: batch, 1: seq}), _token_inputs(1000, 3, 24)
    if name == "gpt2_small":
        return ({0: batch, 1: seq},), (torch.randint(0, 1000, (3, 20), generator=_generator()),)
    if name in ("vit_small", "resnet_small"):
        return ({0: batch},), _image(3, 32)
    raise KeyError(f"no dynamic-shape variant for {name!r} (models with one: {', '.join(DYNAMIC)})")


DYNAMIC = ("mlp", "cnn", "bert_small", "gpt2_small", "vit_small", "resnet_small")


def eager_outputs(module: nn.Module, inputs: tuple) -> list[np.ndarray]:
    """The module's outputs on inputs, flattened in the order torch.export and the graph use."""
    with torch.no_grad():
        out = module(*inputs)
    return [t.detach().numpy() for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]


def as_numpy(inputs: tuple) -> list[np.ndarray]:
    return [t.detach().numpy() for t in inputs]


def assert_close(actual, expected) -> None:
    """The project's fp32 check on every output: max|y - ref| <= 1e-4 * max(1, max|ref|)."""
    assert len(actual) == len(expected), f"{len(actual)} outputs, expected {len(expected)}"
    for i, (y, ref) in enumerate(zip(actual, expected)):
        y, ref = np.asarray(y), np.asarray(ref)
        assert y.shape == ref.shape, f"output {i}: shape {y.shape}, expected {ref.shape}"
        err = float(np.max(np.abs(y.astype(np.float64) - ref))) if ref.size else 0.0
        bound = 1e-4 * max(1.0, float(np.max(np.abs(ref)))) if ref.size else 0.0
        assert err <= bound, f"output {i}: max|y - ref| = {err:.3g} > {bound:.3g}"
