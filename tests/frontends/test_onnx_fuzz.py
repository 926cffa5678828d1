"""Fuzzing the ONNX importer with mutated real models.

Three small torch models (an MLP, a CNN, a transformer encoder layer) are exported once; each case
applies a few random mutations to one of them (dims, attribute values, operand counts, dtypes,
initializer data, op types, removed nodes, opsets) and must either import, verify and run through the
reference interpreter, or raise a LeptoncError. Any other exception is a bug (a crash), and so is a
wrong answer: a sample of the cases that import is compiled to cpu and compared with the reference.
"""
from __future__ import annotations

import io
import random

import numpy as np
import pytest

import leptonc
from leptonc.ir import dims as D
from leptonc.ir.errors import LeptoncError

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
from onnx import AttributeProto, TensorProto  # noqa: E402

RUN_LIMIT = 1 << 20   # elements: a mutant with a larger value is imported but not run
SIZES = [-(2 ** 63), -(2 ** 31), -7, -2, -1, 0, 1, 2, 3, 5, 64, 2 ** 31, 2 ** 40, 2 ** 62, 2 ** 63 - 1]
OP_TYPES = ["Relu", "Add", "MatMul", "Gemm", "Conv", "Reshape", "Transpose", "Softmax", "Concat", "Gather",
            "Pad", "Expand", "Slice", "Unsqueeze", "Squeeze", "MaxPool", "Flatten", "LayerNormalization",
            "Where", "Cast", "ReduceMean", "Split", "Tile", "Identity", "Resize", "Erf", "Nope"]
DTYPES = [TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32, TensorProto.FLOAT16, TensorProto.BOOL,
          TensorProto.UINT8, TensorProto.STRING, TensorProto.DOUBLE, 0, 99]


def _export(module, example, dynamic=False):
    f = io.BytesIO()
    axes = {"x": {0: "batch"}} if dynamic else None
    torch.onnx.export(module.eval(), (example,), f, input_names=["x"], output_names=["y"],
                      dynamic_axes=axes, dynamo=False)
    return onnx.load_from_string(f.getvalue())


class _Block(torch.nn.Module):
    """A pre-norm transformer block: two-head self-attention and a GELU MLP."""

    def __init__(self, d=8, heads=2):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        self.qkv, self.out = torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, d)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(d, 2 * d), torch.nn.GELU(), torch.nn.Linear(2 * d, d))

    def forward(self, x):
        b, s, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, s, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-1, -2) / (d // self.heads) ** 0.5, dim=-1)
        x = x + self.out((att @ v).transpose(1, 2).reshape(b, s, d))
        return x + self.mlp(self.norm2(x))


@pytest.fixture(scope="session")
def base_models():
    return export_base_models()


def export_base_models():
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4),
                              torch.nn.Softmax(-1))
    cnn = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                              torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 5))
    block = _Block()
    with torch.no_grad():
        return [_export(mlp, torch.randn(2, 8), dynamic=True),
                _export(cnn, torch.randn(1, 3, 8, 8)),
                _export(block, torch.randn(1, 5, 8))]


# -- mutations ---------------------------------------------------------------------------------
def _names(m):
    g = m.graph
    return [i.name for i in g.input] + [t.name for t in g.initializer] + [o for n in g.node for o in n.output]


def _mutate_attribute(rng, m):
    nodes = [n for n in m.graph.node if n.attribute]
    if not nodes:
        return
    a = rng.choice(rng.choice(nodes).attribute)
    if a.type == AttributeProto.INT:
        a.i = rng.choice(SIZES)
    elif a.type == AttributeProto.INTS:
        vals = [rng.choice(SIZES) if rng.random() < 0.5 else v for v in a.ints] or [rng.choice(SIZES)]
        del a.ints[:]
        a.ints.extend(vals[:rng.randint(0, len(vals) + 1)] if rng.random() < 0.3 else vals)
    elif a.type == AttributeProto.FLOAT:
        a.f = rng.choice([float("nan"), float("inf"), -1.0, 0.0, 1e30])
    elif a.type == AttributeProto.STRING:
        a.s = rng.choice([b"", b"bogus", b"reflect", b"\xff"])
    elif a.type == AttributeProto.TENSOR:
        _mutate_tensor(rng, a.t)
    else:
        a.type = rng.choice([AttributeProto.INT, AttributeProto.FLOATS, 0])


def _mutate_tensor(rng, t):
    choice = rng.randrange(4)
    if choice == 0 and t.dims:
        t.dims[rng.randrange(len(t.dims))] = rng.choice(SIZES[:-1])
    elif choice == 1:
        t.dims.append(rng.choice([0, 1, 2, 3]))
    elif choice == 2:
        t.data_type = rng.choice(DTYPES)
    elif t.raw_data:
        t.raw_data = t.raw_data[:rng.randrange(len(t.raw_data))]
    else:
        t.dims.extend([2, 2])


def _mutate_node(rng, m):
    g = m.graph
    if not g.node:
        return
    n = rng.choice(g.node)
    choice = rng.randrange(6)
    if choice == 0:
        n.op_type = rng.choice(OP_TYPES)
    elif choice == 1:
        n.input.append(rng.choice(_names(m)))
    elif choice == 2 and n.input:
        del n.input[rng.randrange(len(n.input))]
    elif choice == 3 and n.input:
        n.input[rng.randrange(len(n.input))] = rng.choice(_names(m) + ["", "undefined"])
    elif choice == 4:
        g.node.remove(n)
    else:
        n.attribute.add(name=rng.choice(["axis", "bogus", "perm"]), type=AttributeProto.INT, i=rng.choice(SIZES))


def _mutate_initializer(rng, m):
    if m.graph.initializer:
        _mutate_tensor(rng, rng.choice(m.graph.initializer))


def _mutate_value_info(rng, m):
    vi = rng.choice(list(m.graph.input) + list(m.graph.output))
    tt = vi.type.tensor_type
    choice = rng.randrange(4)
    if choice == 0:
        tt.elem_type = rng.choice(DTYPES)
    elif choice == 1 and tt.shape.dim:
        d = tt.shape.dim[rng.randrange(len(tt.shape.dim))]
        if rng.random() < 0.5:
            d.dim_value = rng.choice([0, 1, 2, 3, 7, 2 ** 40])
        else:
            d.dim_param = rng.choice(["batch", "N", "1x", "?"])
    elif choice == 2:
        tt.shape.dim.add().dim_value = rng.choice([1, 2])
    else:
        vi.name = rng.choice(_names(m) + ["nowhere"])


def _mutate_opset(rng, m):
    m.opset_import[0].version = rng.choice([1, 7, 11, 13, 17, 21, 99])


MUTATIONS = [(_mutate_attribute, 4), (_mutate_node, 4), (_mutate_initializer, 3), (_mutate_value_info, 2),
             (_mutate_opset, 1)]


def mutant(base, seed: int):
    rng = random.Random(seed)
    m = onnx.ModelProto()
    m.CopyFrom(base[seed % len(base)])
    fns, weights = zip(*MUTATIONS)
    for fn in rng.choices(fns, weights, k=rng.randint(1, 3)):
        fn(rng, m)
    return m


# -- running a case ----------------------------------------------------------------------------
def _inputs(graph, rng):
    bindings = {}
    out = []
    for v in graph.inputs:
        shape = []
        for d in v.shape:
            if isinstance(d, str) and d != D.UNKNOWN:
                for s in D.symbols(d):
                    bindings.setdefault(s, 2)
                d = D.evaluate(d, bindings)
            shape.append(3 if d == D.UNKNOWN else d)
        x = rng.standard_normal(shape) * 2
        out.append(x.astype(v.dtype.numpy) if v.dtype.is_float or v.dtype.is_int else x > 0)
    return out


def _small(graph) -> bool:
    """Every value's fixed part small enough for the reference interpreter to run it here."""
    values = list(graph.inputs) + [o for n in graph.nodes for o in n.outputs]
    return all(np.prod([d if isinstance(d, int) else 4 for d in v.shape], dtype=np.float64) <= RUN_LIMIT
               for v in values)


def run_case(base, seed: int):
    """'refused', 'imported' (too large to run), or ('ran', graph, inputs, outputs); any other outcome
    raises."""
    m = mutant(base, seed)
    try:
        graph = leptonc.import_onnx(m.SerializeToString())
    except LeptoncError:
        return "refused", None
    if not _small(graph):
        return "imported", None
    inputs = _inputs(graph, np.random.default_rng(seed))
    try:
        outs = leptonc.run_reference(graph, *inputs)
    except LeptoncError:
        return "refused at run time", None
    return "ran", (graph, inputs, outs)


def _fuzz(base_models, seeds):
    counts: dict[str, int] = {}
    ran = []
    for seed in seeds:
        try:
            outcome, detail = run_case(base_models, seed)
        except Exception as e:  # anything but a LeptoncError is a crash
            raise AssertionError(f"mutant {seed}: {type(e).__name__}: {e}") from e
        counts[outcome] = counts.get(outcome, 0) + 1
        if detail is not None:
            ran.append((seed, *detail))
    return counts, ran


def _compare_compiled(cases, tmp_path):
    for seed, graph, inputs, want in cases:
        try:
            cm = leptonc.compile(graph, target="cpu", cache=False, quiet=True)
        except LeptoncError:
            continue  # a graph the cpu target refuses is fine; a wrong answer is not
        got = cm(*inputs)
        got = got if isinstance(got, (list, tuple)) else [got]
        for g, w in zip(got, want):
            assert g.shape == w.shape and g.dtype == w.dtype, f"mutant {seed}"
            if w.dtype.kind == "f":
                np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4 * max(1.0, float(np.nanmax(np.abs(w)))
                                                                           if w.size else 1.0),
                                           err_msg=f"mutant {seed}")
            else:
                np.testing.assert_array_equal(g, w, err_msg=f"mutant {seed}")


def test_mutated_models_import_or_raise_leptonc_errors(base_models):
    counts, ran = _fuzz(base_models, range(2000))
    assert sum(counts.values()) == 2000
    assert counts.get("refused", 0) > 200 and counts.get("ran", 0) > 100, counts  # the fuzz reaches both


def test_mutants_that_import_compile_to_the_reference_answer(base_models, tmp_path):
    _, ran = _fuzz(base_models, range(3000, 3200))
    changed = [c for c in ran if c[0] % 3 != 0][:4]
    assert changed
    _compare_compiled(changed, tmp_path)


@pytest.mark.slow
def test_many_mutated_models(base_models, tmp_path):
    counts, ran = _fuzz(base_models, range(10000, 30000))
    assert sum(counts.values()) == 20000
    _compare_compiled(ran[::max(1, len(ran) // 40)], tmp_path)
