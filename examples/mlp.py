"""The bundled example model: a small MLP with GELU, random weights, built in code."""
import torch


class MLP(torch.nn.Module):
    def __init__(self, d_in=512, d_hidden=2048, d_out=512):
        super().__init__()
        self.fc1 = torch.nn.Linear(d_in, d_hidden)
        self.fc2 = torch.nn.Linear(d_hidden, d_out)

    def forward(self, x):
        return self.fc2(torch.nn.functional.gelu(self.fc1(x)))


def build():
    """(module, example_inputs): what `leptonc ir examples/mlp.py:build` imports."""
    torch.manual_seed(0)
    return MLP().eval(), (torch.randn(64, 512),)
