"""The triton target on whole models, run on the GPU where there is one, else on the CPU through Triton's
interpreter (TRITON_INTERPRET=1):
the model zoo matches the reference interpreter within the fp32 tolerance (tl.dot in "ieee" precision;
with TF32 on a GPU the declared tolerance is TF32_TOLERANCE), symbolic sizes run at two sizes without
recompiling, and the artifact round-trips with its kernel sources inspectable."""
from __future__ import annotations

import pytest

pytest.importorskip("triton")
pytest.importorskip("torch")

import leptonc  # noqa: E402
from leptonc import import_torch  # noqa: E402
from leptonc.ir.errors import LeptoncError  # noqa: E402
from leptonc.runtime.report import inspect_text  # noqa: E402
from tests.codegen.cpu_check import assert_matches_reference  # noqa: E402
from tests.model_zoo import _gpt2, as_numpy, build, dynamic  # noqa: E402


@pytest.fixture(autouse=True)
def on_triton_device(triton_device):
    """The kernels run on the GPU where there is one, else through Triton's interpreter."""


def compile_and_check(graph, inputs):
    ref = leptonc.run_reference(graph, *inputs)
    cm = leptonc.compile(graph, target="triton", quiet=True)
    assert_matches_reference(cm.run(*inputs), ref)
    return cm


@pytest.mark.parametrize("name", ["mlp", "cnn", "bert_small", "gpt2_small"])
def test_model_matches_reference(name):
    module, inputs = build(name)
    cm = compile_and_check(import_torch(module, inputs), as_numpy(inputs))
    kinds = [k["kind"] for k in cm.manifest["program"]["kernels"]]
    if name in ("bert_small", "gpt2_small"):
        assert kinds.count("attention") == 2  # one flash-attention kernel per layer


def test_a_one_token_gpt2_step():
    """Attention over a single token (a decode step without its cache; MobileViT's patch attention has the
    same shape) in a one-layer GPT-2."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    torch.manual_seed(0)
    with torch.no_grad():
        module, inputs = _gpt2(1, 1, n_layer=1, n_embd=64, n_head=2, vocab_size=100, n_positions=16,
                               bos_token_id=0, eos_token_id=0)
    cm = compile_and_check(import_torch(module, inputs), as_numpy(inputs))
    assert "attention" in [k["kind"] for k in cm.manifest["program"]["kernels"]]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet_small", "mobilenet_small", "vit_small"])
def test_more_models_match_reference(name):
    module, inputs = build(name)
    compile_and_check(import_torch(module, inputs), as_numpy(inputs))


@pytest.mark.parametrize("name", ["mlp", "bert_small"])
def test_symbolic_sizes_run_at_other_sizes(name):
    module, inputs = build(name)
    shapes, other = dynamic(name)
    graph = import_torch(module, inputs, dynamic_shapes=shapes)
    assert any(isinstance(d, str) for v in graph.inputs for d in v.shape)
    ref_other = leptonc.run_reference(graph, *as_numpy(other))
    cm = compile_and_check(graph, as_numpy(inputs))
    assert_matches_reference(cm.run(*as_numpy(other)), ref_other)


def test_artifact_round_trip_and_inspect(tmp_path):
    module, inputs = build("mlp")
    graph = import_torch(module, inputs)
    cm = compile_and_check(graph, as_numpy(inputs))
    path = tmp_path / "mlp.lep"
    cm.save(path)
    loaded = leptonc.load(path)
    assert loaded.manifest["target"] == "triton"
    assert_matches_reference(loaded.run(*as_numpy(inputs)), cm.run(*as_numpy(inputs)))
    text = inspect_text(loaded)
    names = [k["name"] for k in loaded.manifest["program"]["kernels"]]
    assert names == ["k0_matmul_gelu", "k1_matmul_add", "k2_softmax_sub"]
    for name in names:
        assert f"@triton.jit\ndef {name}(" in text
    assert "tl.dot(" in loaded.kernel_sources()["k0_matmul_gelu"]
    assert "#   %erf = erf" in loaded.kernel_sources()["k0_matmul_gelu"]  # the header lists the fused ops


def test_run_torch_keeps_tensors_on_the_device(triton_device):
    import torch

    module, inputs = build("mlp")
    cm = leptonc.compile(import_torch(module, inputs), target="triton", quiet=True)
    (y,) = cm.run_torch(inputs[0].to(triton_device))
    assert isinstance(y, torch.Tensor) and y.device.type == triton_device and tuple(y.shape) == (4, 10)


def test_later_runs_replay_one_cuda_graph_per_input_size(triton_device):
    import torch

    if triton_device != "cuda":
        pytest.skip("CUDA graphs need a GPU")
    module, inputs = build("mlp")
    shapes, other = dynamic("mlp")
    graph = import_torch(module, inputs, dynamic_shapes=shapes)
    cm = leptonc.compile(graph, target="triton", quiet=True)
    for batch in (inputs, other, inputs, other):
        x = as_numpy(batch)[0]
        earlier = []
        for step in range(3):  # compile (at a new size), capture, replay
            assert_matches_reference(cm.run(x + step), leptonc.run_reference(graph, x + step))
            earlier.append(cm.run_torch(torch.from_numpy(x + step).cuda()))
        for step, ys in enumerate(earlier):  # a replay does not overwrite what an earlier run returned
            assert_matches_reference([y.cpu().numpy() for y in ys], leptonc.run_reference(graph, x + step))
    captured = [g for g in cm.executor._graphs.values() if g is not None]
    assert len(captured) == 2 and all(isinstance(g.graph, torch.cuda.CUDAGraph) for g in captured)


def test_without_gpu_or_interpreter_the_error_says_what_to_do(monkeypatch):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    module, inputs = build("mlp")
    monkeypatch.delenv("TRITON_INTERPRET")
    cm = leptonc.compile(import_torch(module, inputs), target="triton", quiet=True)  # compiling needs no GPU
    assert "@triton.jit" in cm.source
    with pytest.raises(LeptoncError, match="TRITON_INTERPRET=1"):
        cm.run(*as_numpy(inputs))
