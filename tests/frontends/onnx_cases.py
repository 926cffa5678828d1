"""The ONNX backend test data as (model, inputs, expected outputs) cases, and one way to check a
backend against them the way onnx's own backend runner does.

Node cases are generated (not committed): `generate_node_cases(folder)` writes every case that
`onnx.backend.test.case.node.collect_testcases()` returns with the writer of
`onnx.backend.test.cmd_tools.generate_data`, plus a `tol.json` holding the case's rtol/atol.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
from dataclasses import dataclass, field

import numpy as np

DEFAULT_RTOL, DEFAULT_ATOL = 1e-3, 1e-7


def onnx_data_dir() -> str:
    import onnx.backend.test

    return os.path.join(os.path.dirname(onnx.backend.test.__file__), "data")


def generate_node_cases(out_dir: str) -> str:
    """Write all node cases under out_dir/node/<case>/ and return that folder."""
    import onnx.backend.test.case.model as model_test
    import onnx.backend.test.case.node as node_test
    from onnx.backend.test import cmd_tools

    with np.errstate(all="ignore"):
        cases = node_test.collect_testcases()
    original = model_test.collect_testcases
    model_test.collect_testcases = lambda *a, **k: cases
    try:
        with np.errstate(all="ignore"):
            cmd_tools.generate_data(argparse.Namespace(output=out_dir))
    finally:
        model_test.collect_testcases = original
    for c in cases:
        with open(os.path.join(out_dir, c.kind, c.name, "tol.json"), "w") as f:
            json.dump({"rtol": c.rtol, "atol": c.atol}, f)
    return os.path.join(out_dir, "node")


@dataclass
class Case:
    name: str
    model_path: str
    data_sets: list = field(default_factory=list)  # [(inputs, expected outputs)]
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL
    non_tensor: bool = False  # some graph input or output is a sequence, optional or map


def _load_proto(path: str, type_proto):
    import onnx
    from onnx import numpy_helper

    with open(path, "rb") as f:
        data = f.read()
    if type_proto.HasField("sequence_type"):
        p = onnx.SequenceProto()
        p.ParseFromString(data)
        return numpy_helper.to_list(p)
    if type_proto.HasField("optional_type"):
        p = onnx.OptionalProto()
        p.ParseFromString(data)
        return numpy_helper.to_optional(p)
    p = onnx.TensorProto()
    p.ParseFromString(data)
    return numpy_helper.to_array(p)


def load_case(case_dir: str) -> Case:
    """A case folder (model.onnx + test_data_set_*/input_K.pb, output_K.pb) with its tolerances."""
    import onnx

    model = onnx.load(os.path.join(case_dir, "model.onnx"), load_external_data=False)
    case = Case(os.path.basename(case_dir), os.path.join(case_dir, "model.onnx"))
    for fname in ("tol.json", "data.json"):
        p = os.path.join(case_dir, fname)
        if os.path.exists(p):
            with open(p) as f:
                d = json.load(f)
            case.rtol, case.atol = d.get("rtol", case.rtol), d.get("atol", case.atol)
    g = model.graph
    case.non_tensor = any(not vi.type.HasField("tensor_type") for vi in list(g.input) + list(g.output))
    inits = {t.name for t in g.initializer}
    real_inputs = [vi for vi in g.input if vi.name not in inits]
    for ds in sorted(glob.glob(os.path.join(case_dir, "test_data_set_*"))):
        n_in = len(glob.glob(os.path.join(ds, "input_*.pb")))
        n_out = len(glob.glob(os.path.join(ds, "output_*.pb")))
        inputs = [_load_proto(os.path.join(ds, f"input_{i}.pb"), real_inputs[i].type) for i in range(n_in)]
        outputs = [_load_proto(os.path.join(ds, f"output_{i}.pb"), g.output[i].type) for i in range(n_out)]
        case.data_sets.append((inputs, outputs))
    return case


def assert_similar(expected, actual, rtol: float, atol: float) -> None:
    """onnx's backend runner check: same count, shapes and dtypes; values within rtol/atol."""
    from onnx.backend.test.runner import Runner

    Runner.assert_similar_outputs(expected, actual, rtol, atol)


def node_case_dirs(node_dir: str) -> list[str]:
    return sorted(d for d in glob.glob(os.path.join(node_dir, "test_*")) if os.path.isdir(d))


def model_case_dirs(kind: str) -> list[str]:
    """The shipped pytorch-converted / pytorch-operator / simple case folders."""
    return sorted(d for d in glob.glob(os.path.join(onnx_data_dir(), kind, "test_*")) if os.path.isdir(d))


def convert_to_13(model):
    """An older-opset model converted to opset 13 (the version leptonc's importer maps natively)."""
    from onnx import version_converter

    version = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    return version_converter.convert_version(model, 13) if version < 13 else model


def run_leptonc(case_dir: str, convert: bool = False, target: str | None = None) -> str:
    """Import a case's model with leptonc, run it in the reference interpreter (or compiled for `target`, as a
    user would: compile, then run) and compare: "pass", or one line naming why not."""
    import leptonc

    try:
        c = load_case(case_dir)
        if c.non_tensor:
            return "skip: sequence/optional-typed graph input or output (not supported by the IR)"
        g = leptonc.import_onnx(c.model_path)
        run = (lambda *xs: leptonc.run_reference(g, *xs)) if target is None else \
            leptonc.compile(g, target=target, quiet=True, cache=False).run
        for inputs, expected in c.data_sets:
            got = run(*inputs)
            assert_similar(expected, got, c.rtol, c.atol)
        return "pass"
    except Exception as e:
        text = " ".join(str(e).split())
        return f"{type(e).__name__}: {text[:300]}"


def short_reason(result: str) -> str:
    """A failure message as one short line without paths or node numbers (for the failure list)."""
    text = re.sub(r"\S*/(model\.onnx|test_data_set_\d+)\S*", "", result)
    text = re.sub(r"(at )?((node #\d+|a node|node '[^']*') \([^)]*\)( > )?)+( in)?[:;]?", "", text)
    text = re.sub(r";? the supported op types are listed in \S+", "", text)
    text = re.sub(r" \(supported: [^)]*\)?", "", text)
    text = re.sub(r"TensorProto\.", "", text)
    text = re.sub(r"\s+", " ", text).strip(" :;")
    return text[:160]


def run_node_suite(node_dir: str, processes: int = 1, target: str | None = None, every: int = 1) -> dict:
    """{case name: "pass" or why not} for every node case under node_dir (every `every`-th one, in name order),
    run by the reference interpreter or compiled for `target`."""
    import functools

    dirs = node_case_dirs(node_dir)[::every]
    run = functools.partial(run_leptonc, target=target)
    if processes > 1:
        import multiprocessing

        with multiprocessing.Pool(processes) as pool:
            results = pool.map(run, dirs, chunksize=16)
    else:
        results = [run(d) for d in dirs]
    return {os.path.basename(d): r for d, r in zip(dirs, results)}


def read_failure_list(path: str) -> dict:
    """The committed list of node cases leptonc fails: {case: reason} (lines "case  reason", # comments)."""
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                name, _, reason = line.partition(" ")
                out[name] = reason.strip()
    return out


LIGHT_MODELS = ("bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet",
                "squeezenet", "vgg19", "zfnet512")


def light_case(name: str):
    """(model path, inputs, expected output) of one `light` CNN: inputs filled as onnx's backend
    runner does, arange(n).reshape(shape) / n in float32 (unknown dims as 1)."""
    import onnx
    from onnx import numpy_helper

    path = os.path.join(onnx_data_dir(), "light", f"light_{name}.onnx")
    model = onnx.load(path, load_external_data=False)
    inits = {t.name for t in model.graph.initializer}
    inputs = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        shape = [d.dim_value or 1 for d in vi.type.tensor_type.shape.dim]
        n = int(np.prod(shape))
        inputs.append((np.arange(n).reshape(shape) / n).astype(np.float32))
    expected = numpy_helper.to_array(onnx.load_tensor(os.path.join(onnx_data_dir(), "light",
                                                                   f"light_{name}_output_0.pb")))
    return path, inputs, expected


def run_light(name: str) -> str:
    import leptonc

    try:
        path, inputs, expected = light_case(name)
        (got,) = leptonc.run_reference(leptonc.import_onnx(path), *inputs)
        assert_similar([expected], [got], DEFAULT_RTOL, DEFAULT_ATOL)
        return "pass"
    except Exception as e:
        return f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
