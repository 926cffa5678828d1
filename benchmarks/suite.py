"""The CPU benchmark suite: fp32, random weights, batch 1 unless said (the `_bN` entries: batch N)."""
from __future__ import annotations

import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests import model_zoo  # noqa: E402


class MLP(nn.Module):
    """512 -> 2048 -> 2048 -> 512 with GELU."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(512, 2048), nn.GELU(), nn.Linear(2048, 2048), nn.GELU(),
                                    nn.Linear(2048, 512))

    def forward(self, x):
        return self.layers(x)


class GemvChain(nn.Module):
    """4 x Linear(4096, 4096) without bias, ReLU between: bound by reading weights at batch 1."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(4096, 4096, bias=False) for _ in range(4))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x


def mlp():
    torch.manual_seed(0)
    return MLP().eval(), (torch.randn(64, 512),)


def gemv_chain():
    torch.manual_seed(0)
    return GemvChain().eval(), (torch.randn(1, 4096),)


def regnet():
    """RegNetModel(RegNetConfig()) (RegNetY-4.0GF: grouped 3x3 convs, 64 channels a group, with
    squeeze-excitation) on 1 x 3 x 224 x 224."""
    from transformers import RegNetConfig, RegNetModel

    torch.manual_seed(0)
    return RegNetModel(RegNetConfig()).eval(), (torch.randn(1, 3, 224, 224),)


def efficientnet():
    """EfficientNetModel at B0's size (depthwise 3x3 and 5x5 convs, squeeze-excitation, SiLU) on
    1 x 3 x 224 x 224."""
    from transformers import EfficientNetConfig, EfficientNetModel

    torch.manual_seed(0)
    cfg = EfficientNetConfig(width_coefficient=1.0, depth_coefficient=1.0, image_size=224, hidden_dim=1280)
    return EfficientNetModel(cfg).eval(), (torch.randn(1, 3, 224, 224),)


def convnext():
    """ConvNextModel(ConvNextConfig()) (ConvNeXt-T: depthwise 7x7 convs, channels-last LayerNorm and MLPs) on
    1 x 3 x 224 x 224."""
    from transformers import ConvNextConfig, ConvNextModel

    torch.manual_seed(0)
    return ConvNextModel(ConvNextConfig()).eval(), (torch.randn(1, 3, 224, 224),)


def batched(build, batch: int):
    """A model of the suite at another batch size: its batch-1 inputs repeated `batch` times (the work of a
    batch does not depend on the values)."""
    def build_batched():
        module, inputs = build()
        return module, tuple(x.repeat(batch, *[1] * (x.dim() - 1)) for x in inputs)
    build_batched.__doc__ = f"At batch {batch}: {build.__doc__}"
    return build_batched


SUITE = {
    "mlp": mlp,
    "gemv_chain": gemv_chain,
    "bert": model_zoo.bert,
    "gpt2": model_zoo.gpt2,
    "resnet50": model_zoo.resnet50,
    "mobilenet_v2": model_zoo.mobilenet_v2,
    "vit": model_zoo.vit,
    "regnet": regnet,
    "efficientnet": efficientnet,
    "convnext": convnext,
    "bert_b8": batched(model_zoo.bert, 8),
    "bert_b32": batched(model_zoo.bert, 32),
    "resnet50_b8": batched(model_zoo.resnet50, 8),
    "resnet50_b32": batched(model_zoo.resnet50, 32),
}
