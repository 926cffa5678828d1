"""Each ATen op mapping of the torch frontend, checked against eager PyTorch on a one-op module,
and the errors the frontend raises."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import leptonc
from leptonc.frontends.torch import SUPPORTED_OPS
from leptonc.ir import LeptoncError, UnsupportedOpError
from tests.model_zoo import as_numpy, assert_close, eager_outputs

g = torch.Generator().manual_seed(0)


def randn(*shape):
    return torch.randn(*shape, generator=g)


def ints(*shape, high=10):
    return torch.randint(-high, high, shape, generator=g)


class Fn(torch.nn.Module):
    def __init__(self, fn, *modules):
        super().__init__()
        self.fn = fn
        self.layers = torch.nn.ModuleList(modules)

    def forward(self, *args):
        return self.fn(self, *args)


x4, y4 = randn(2, 3, 4, 5), randn(2, 3, 4, 5)
q, k, v = randn(2, 4, 6, 8), randn(2, 4, 7, 8), randn(2, 4, 7, 8)

CASES = {
    # elementwise arithmetic, type promotion and comparisons
    "add_alpha": (lambda m, a, b: torch.add(a, b, alpha=2.5), (x4, y4)),
    "sub_mul_scalar": (lambda m, a: (a - 1.5) * 3, (x4,)),
    "rsub": (lambda m, a: 1.0 - a, (x4,)),
    "div": (lambda m, a, b: a / b, (x4, y4)),
    "div_trunc_floor": (lambda m, a, b: (torch.div(a, b, rounding_mode="trunc"),
                                         torch.div(a, b, rounding_mode="floor")), (x4 * 5, y4)),
    "int_div_modes": (lambda m, a, b: (a // b, torch.div(a, b, rounding_mode="trunc"), a % b, torch.fmod(a, b),
                                       a / b), (ints(3, 4), ints(3, 4, high=4) * 2 + 1)),
    "int_times_float": (lambda m, a: a * 0.5 + 1, (ints(3, 4),)),
    "pow": (lambda m, a, b: (a ** 2, a ** 3, a.abs() ** 0.5, a.abs() ** b), (x4, y4)),
    "max_min": (lambda m, a, b: (torch.maximum(a, b), torch.minimum(a, b)), (x4, y4)),
    "compare": (lambda m, a, b: (a == b, a != b, a < b, a <= 0.5, a > b, a >= b), (x4.round(), y4.round())),
    "where_clamp": (lambda m, a, b: (torch.where(a > 0, a, b), a.clamp(-0.5, 0.5), a.clamp(min=0.1), a.clamp_max(b),
                                     F.relu6(a * 4), F.hardtanh(a)), (x4, y4)),
    "logical": (lambda m, a, b: ((a > 0) & (b > 0), (a > 0) | (b > 0), (a > 0) ^ (b > 0), ~(a > 0),
                                 torch.logical_not(a), torch.logical_and(a, b)), (x4, y4)),
    "bitwise_int": (lambda m, a, b: (a & b, a | b, a ^ b, ~a), (ints(3, 4), ints(3, 4))),
    # unary math
    "unary": (lambda m, a: (a.exp(), (a.abs() + 1).log(), a.abs().sqrt(), (a.abs() + 1).rsqrt(), a.sigmoid(),
                            a.tanh(), torch.erf(a), a.sin(), a.cos(), a.floor(), a.ceil(), a.round(), a.sign(),
                            a.abs(), -a, (a.abs() + 1).reciprocal()), (x4,)),
    "activations": (lambda m, a: (F.silu(a), F.hardswish(a), F.hardsigmoid(a), F.leaky_relu(a, 0.2),
                                  F.gelu(a, approximate="tanh"), F.gelu(a), torch.log1p(a.abs()),
                                  torch.expm1(a), F.relu(a), F.elu(a), F.selu(a), F.softplus(a)), (x4,)),
    # reductions and normalizations
    "reductions": (lambda m, a: (a.sum(), a.sum(dim=(1, 3), keepdim=True), a.mean(-1), a.amax(1), a.amin((0, 2)),
                                 a.prod(2), (a > 1).any(1), (a > -2).all(), a.argmax(-1), a.argmin(1, keepdim=True),
                                 a.max(dim=2)[0], a.min(dim=1).indices, a.var(dim=-1)), (x4,)),
    "softmax": (lambda m, a: (a.softmax(1), a.log_softmax(-1)), (x4,)),
    "layer_norm": (lambda m, a: m.layers[0](a), (x4,), torch.nn.LayerNorm(5)),
    "layer_norm_2d": (lambda m, a: F.layer_norm(a, (4, 5)), (x4,)),
    "batch_norm_1d": (lambda m, a: m.layers[0](a), (randn(4, 3, 6),), torch.nn.BatchNorm1d(3)),
    "group_instance_norm": (lambda m, a: (m.layers[0](a), F.instance_norm(a), m.layers[1](a)), (x4,),
                            torch.nn.GroupNorm(3, 3), torch.nn.InstanceNorm2d(3, affine=True)),
    "vector_norm": (lambda m, a: (a.norm(dim=-1), torch.linalg.vector_norm(a, 1, dim=(1, 2), keepdim=True),
                                  torch.linalg.vector_norm(a, float("inf")), torch.linalg.vector_norm(a, 3, dim=0),
                                  a.std(-1)), (x4,)),
    "cumsum": (lambda m, a, b: (a.cumsum(2), b.cumsum(0)), (x4, ints(5))),
    # layout and data movement
    "views": (lambda m, a: (a.permute(0, 2, 3, 1), a.transpose(1, 2), a.reshape(6, -1), a.unsqueeze(2),
                            a[:, :1].squeeze(1), a.flatten(1), a.t() if a.dim() == 2 else a.mT), (x4,)),
    "expand_repeat": (lambda m, a: (a[:, :1].expand(2, 3, 4, 5), a.repeat(1, 2, 1, 1),
                                    a[0, 0].repeat(2, 1, 1)), (x4,)),
    "cat_split": (lambda m, a, b: (torch.cat([a, b], 1), *a.split(2, dim=2), *a.split([1, 4], dim=-1),
                                   *a.chunk(3, 1), *a.unbind(0)), (x4, y4)),
    "slices": (lambda m, a: (a[:, 1:], a[..., ::2], a[:, :, -2:], a[:, 1, 2:3], a[1], a[:, -1]), (x4,)),
    "gather_index": (lambda m, a, i, j, l: (a.index_select(1, i[:2]), torch.gather(a, 3, i.abs().reshape(1, 1, 1, 4)
                                      .expand(2, 3, 4, 4)), a[:, i], a[j, :, l], a[:, i[:2], :, l[1:]]),
                     (x4, torch.tensor([0, 2, 1, -1]), torch.tensor([1, 0, -1]), torch.tensor([3, 0, -2]))),
    "gather_smaller_index": (lambda m, a, i: torch.gather(a, 1, i), (randn(3, 5), torch.tensor([[0, 4], [1, 1]]))),
    "flip_sort_topk": (lambda m, a: (a.flip(-1), a.flip(0, 2), a.sort(-1), a.sort(1, descending=True).values,
                                      a.topk(2, dim=2), a.topk(3, largest=False).indices), (x4,)),
    "scatter": (lambda m, a, i, s: (a.scatter(1, i, 1.5), a.scatter(1, i, s)),
                (randn(3, 5), torch.tensor([[0, 4], [1, 2], [3, 3]]), randn(4, 6))),
    "resize": (lambda m, a: (F.interpolate(a, scale_factor=2, mode="nearest"), F.interpolate(a, size=(5, 3)),
                             F.interpolate(a, scale_factor=2, mode="bilinear"),
                             F.interpolate(a, size=(7, 5), mode="bilinear", align_corners=True),
                             F.interpolate(a[:, :, 0], scale_factor=3, mode="linear")), (randn(2, 3, 4, 6),)),
    "assignment": (lambda m, a, b, i: (_assign(a, b, i)), (randn(4, 6), randn(4, 6), torch.tensor([2, 0]))),
    "as_strided": (lambda m, a: (a.mean((1, 2), keepdim=True).as_strided((2, 5, 1, 1), (5, 1, 5, 5)),
                                 a.contiguous().as_strided((3, 2), (1, 3), 2)), (x4,)),
    "pad": (lambda m, a: (F.pad(a, (1, 2)), F.pad(a, (1, 1, 2, 0), value=-1.5), F.pad(a, (2, 1, 1, 2), "reflect"),
                          F.pad(a, (1, 1, 1, 1), "replicate")), (x4,)),
    "embedding": (lambda m, i: m.layers[0](i), (torch.tensor([[1, 5], [9, 0]]),), torch.nn.Embedding(10, 3)),
    # linear algebra, convolution, pooling, attention
    "matmuls": (lambda m, a, b: (a @ b.transpose(-1, -2), torch.bmm(a[0], b[0].mT), a[0, 0] @ b[0, 0].T,
                                 torch.baddbmm(a[0, :, :, :4], a[0], b[0].mT, beta=0.5, alpha=2.0)), (x4, y4)),
    "linear": (lambda m, a: (m.layers[0](a), m.layers[1](a)), (x4,), torch.nn.Linear(5, 6),
               torch.nn.Linear(5, 2, bias=False)),
    "conv2d": (lambda m, a: (m.layers[0](a), m.layers[1](a)), (randn(2, 4, 9, 8),),
               torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=1),
               torch.nn.Conv2d(4, 8, (3, 2), padding=(2, 1), dilation=2, groups=2, bias=False)),
    "conv1d": (lambda m, a: m.layers[0](a), (randn(2, 3, 10),), torch.nn.Conv1d(3, 5, 3, stride=2, padding=1)),
    "pools": (lambda m, a: (F.max_pool2d(a, 3, 2, 1), F.max_pool2d(a, 2, ceil_mode=True), F.avg_pool2d(a, 2),
                            F.avg_pool2d(a, 3, 2, 1, count_include_pad=False), F.avg_pool2d(a, 3, 2, 1),
                            F.adaptive_avg_pool2d(a, (3, 2)), F.adaptive_avg_pool2d(a, 1)), (randn(2, 3, 9, 8),)),
    "attention": (lambda m, a, b, c: (F.scaled_dot_product_attention(a, b, c),
                                      F.scaled_dot_product_attention(a, a, a, is_causal=True),
                                      F.scaled_dot_product_attention(a, b, c, attn_mask=b[:, :, :6, :7] > 0),
                                      F.scaled_dot_product_attention(a, b, c, attn_mask=b[:, :1, :6, :7], scale=0.3),
                                      F.scaled_dot_product_attention(a, b[:, :2], c[:, :2], enable_gqa=True)),
                  (q, k, v)),
    # creating tensors
    "creation": (lambda m, a: (torch.zeros_like(a), torch.ones(2, 3) + a[0, 0, :2, :3], torch.full_like(a, 2.5),
                               torch.arange(3, 11, 2) + a.shape[0], torch.arange(5.0) * a[0, 0, 0],
                               a.new_zeros(3)), (x4,)),
}


def _assign(a, b, i):
    """Slice, select, index and mask assignment on copies of a."""
    y = a.clone()
    y[:, 1:5:2] = b[:, :2]
    y[1] = b[0]
    y[:, -1] = 3.0
    z = a.clone()
    z[i] = b[:2]
    z[a > 0.5] = 0.0
    w = a.clone()
    w.index_put_((i,), b[:2], accumulate=True)
    return y, z, w


def run_case(fn, inputs, *modules):
    module = Fn(fn, *modules).eval()
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-1, 1, generator=g)
            m.running_var.uniform_(0.5, 2, generator=g)
    graph = leptonc.import_torch(module, inputs)
    expected = eager_outputs(module, inputs)
    outputs = leptonc.run_reference(graph, *as_numpy(inputs))
    for out, ref in zip(outputs, expected):
        assert out.dtype == ref.dtype
    assert_close(outputs, expected)
    text = leptonc.print_ir(graph)
    assert leptonc.print_ir(leptonc.parse_ir(text, graph.constants)) == text


@pytest.mark.parametrize("case", list(CASES))
def test_op_matches_eager(case):
    fn, inputs, *modules = CASES[case]
    run_case(fn, inputs, *modules)


def test_unsupported_op_names_op_node_model_and_supported_list():
    class Bessel(torch.nn.Module):
        def forward(self, x):
            return torch.special.bessel_j0(x) + 1

    with pytest.raises(UnsupportedOpError) as info:
        leptonc.import_torch(Bessel(), (randn(3),))
    message = str(info.value)
    assert "aten.special_bessel_j0.default" in message
    assert "node 'special_bessel_j0'" in message
    assert message.startswith("Bessel:")
    assert "test_torch_ops.py" in message  # the model source line
    assert "leptonc.frontends.torch.SUPPORTED_OPS" in message and "aten.addmm.default" in message


def test_supported_ops_list():
    assert SUPPORTED_OPS == tuple(sorted(SUPPORTED_OPS))
    assert {"aten.convolution.default", "aten.native_layer_norm.default",
            "aten.scaled_dot_product_attention.default"} <= set(SUPPORTED_OPS)


def test_data_dependent_shapes_are_a_clear_error():
    class MaskSelect(torch.nn.Module):
        def forward(self, x):
            return x[x > 0]

    with pytest.raises(UnsupportedOpError, match=r"MaskSelect: node 'index' .*boolean mask"):
        leptonc.import_torch(MaskSelect(), (randn(5),))


def test_export_failure_is_a_leptonc_error():
    class Branchy(torch.nn.Module):
        def forward(self, x):
            return x + 1 if x.sum() > 0 else x - 1

    with pytest.raises(LeptoncError, match="torch.export could not trace Branchy"):
        leptonc.import_torch(Branchy(), (randn(5),))


def test_bfloat16_parameters():
    module = torch.nn.Linear(4, 3).to(torch.bfloat16).eval()
    x = randn(2, 4).to(torch.bfloat16)
    graph = leptonc.import_torch(module, (x,))
    assert graph.constants["weight"].dtype == leptonc.DType.bf16.numpy
    (out,) = leptonc.run_reference(graph, x.float().numpy().astype(leptonc.DType.bf16.numpy))
    np.testing.assert_allclose(out.astype(np.float32), module(x).detach().float().numpy(), atol=0.05)


def test_data_dependent_sizes_are_a_clear_error():
    class Arange(torch.nn.Module):
        def forward(self, x):
            n = x.argmax().item()
            torch._check(n >= 0)
            return torch.ones(n) * 2

    with pytest.raises(UnsupportedOpError, match="Arange: node .* sizes that depend on data"):
        leptonc.import_torch(Arange(), (randn(5),))


def test_single_tensor_as_example_inputs():
    module = torch.nn.Linear(4, 2).eval()
    x = randn(3, 4)
    graph = leptonc.import_torch(module, x)
    assert_close(leptonc.run_reference(graph, x.numpy()), [module(x).detach().numpy()])


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(5, 12), (2, 3, 12), (12,)])
def test_linear_layers_import_without_torch_decompositions(monkeypatch, bias, shape):
    """A graph whose every op has a mapping of its own (aten.linear here) skips torch's decompositions."""
    calls = []
    real = torch.export.ExportedProgram.run_decompositions
    monkeypatch.setattr(torch.export.ExportedProgram, "run_decompositions",
                        lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(12, 7, bias=bias), torch.nn.ReLU(), torch.nn.Linear(7, 3)).eval()
    x = torch.randn(*shape)
    g = leptonc.import_torch(module, (x,))
    assert calls == []
    assert_close(leptonc.run_reference(g, x.numpy()), eager_outputs(module, (x,)))
    # a model with an op of no mapping of its own (aten.layer_norm) still decomposes
    leptonc.import_torch(torch.nn.Sequential(module, torch.nn.LayerNorm(3)).eval(), (x,))
    assert calls == [1]
