"""ONNX Runtime (CPU) on the ONNX backend test cases, in the same harness as leptonc's tests.

    .venv/bin/python benchmarks/onnx_backend_ort.py [--node] [--pytorch] [--failures FILE]

--node generates the node cases into a temporary folder (tests/frontends/onnx_cases.py) and runs
them; --pytorch runs the shipped pytorch-converted and pytorch-operator cases, each model first
converted to opset 13 with onnx.version_converter (as leptonc's importer does). Prints the pass
counts. Tensors of types numpy lacks (bfloat16, float8, 4- and 2-bit) travel as raw bytes through
OrtValue so that they count.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "frontends"))
import onnx_cases as oc  # noqa: E402


def _onnx_elem(arr: np.ndarray):
    from onnx import helper

    try:
        return helper.np_dtype_to_tensor_dtype(arr.dtype)
    except Exception:
        return None


_PACKED = {"int4": 4, "uint4": 4, "float4_e2m1fn": 4, "int2": 2, "uint2": 2}


def _is_ml_dtype(dt) -> bool:
    return dt.name == "bfloat16" or dt.name.startswith(("float8", "float4", "float6")) or dt.name in _PACKED


def _to_ort(arr, ort):
    """numpy -> what InferenceSession takes; ml_dtypes arrays become OrtValues filled with raw bytes."""
    if not isinstance(arr, np.ndarray) or not _is_ml_dtype(arr.dtype):
        return arr
    bits = _PACKED.get(arr.dtype.name)
    if bits:
        flat = arr.reshape(-1).view(np.uint8) & ((1 << bits) - 1)
        per = 8 // bits
        flat = np.concatenate([flat, np.zeros((-len(flat)) % per, np.uint8)]).reshape(-1, per)
        raw = np.zeros(len(flat), np.uint8)
        for i in range(per):
            raw |= flat[:, i] << (i * bits)
    else:
        raw = np.ascontiguousarray(arr).view(np.uint8)
    v = ort.OrtValue.ortvalue_from_shape_and_type(list(arr.shape), _onnx_elem(arr))
    ctypes.memmove(v.data_ptr(), raw.ctypes.data, min(raw.nbytes, v.tensor_size_in_bytes()))
    return v


def _from_ort(v, expected):
    """An OrtValue as numpy; types numpy lacks are read back as raw bytes in the expected dtype."""
    if not v.is_tensor():
        return v.numpy() if hasattr(v, "numpy") else v
    try:
        return v.numpy()
    except Exception:
        dt = expected.dtype
        shape = tuple(v.shape())
        nbytes = v.tensor_size_in_bytes()
        raw = np.frombuffer(ctypes.string_at(v.data_ptr(), nbytes), np.uint8)
        n = int(np.prod(shape))
        bits = {"int4": 4, "uint4": 4, "float4_e2m1fn": 4, "int2": 2, "uint2": 2}.get(dt.name)
        if bits:
            per = 8 // bits
            vals = np.stack([(raw >> (i * bits)) & ((1 << bits) - 1) for i in range(per)], 1).reshape(-1)[:n]
            if dt.name in ("int4", "int2"):
                vals = vals.astype(np.int8)
                vals = np.where(vals >= (1 << (bits - 1)), vals - (1 << bits), vals)
                return vals.astype(dt).reshape(shape)
            return vals.astype(np.uint8).view(np.uint8).astype(dt).reshape(shape) if dt.name != "float4_e2m1fn" \
                else vals.astype(np.uint8).view(dt).reshape(shape)
        return raw.view(dt).reshape(shape)


def run_case(case_dir: str, convert: bool = False) -> str:
    import onnx
    import onnxruntime as ort

    c = oc.load_case(case_dir)
    try:
        model = onnx.load(c.model_path)
        if convert:
            model = oc.convert_to_13(model)
        so = ort.SessionOptions()
        so.log_severity_level = 4
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        names = [i.name for i in sess.get_inputs()]
        outs = [o.name for o in sess.get_outputs()]
        for inputs, expected in c.data_sets:
            feed = {n: _to_ort(a, ort) for n, a in zip(names, inputs)}
            if any(isinstance(a, ort.OrtValue) for a in feed.values()) or \
                    any(isinstance(e, np.ndarray) and _is_ml_dtype(e.dtype) for e in expected):
                feed = {n: a if isinstance(a, ort.OrtValue) else ort.OrtValue.ortvalue_from_numpy(a)
                        for n, a in feed.items()}
                got = [_from_ort(v, e) for v, e in zip(sess.run_with_ort_values(outs, feed), expected)]
            else:
                got = sess.run(None, feed)
            oc.assert_similar(expected, got, c.rtol, c.atol)
        return "pass"
    except Exception as e:
        msg = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
        return f"{type(e).__name__}: {msg}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--node", action="store_true")
    p.add_argument("--pytorch", action="store_true")
    p.add_argument("--failures", help="write failing cases and why to this file")
    args = p.parse_args(argv)
    results = {}
    if args.node:
        with tempfile.TemporaryDirectory() as tmp:
            node_dir = oc.generate_node_cases(tmp)
            node = {os.path.basename(d): run_case(d) for d in oc.node_case_dirs(node_dir)}
            seq = {os.path.basename(d) for d in oc.node_case_dirs(node_dir) if oc.load_case(d).non_tensor}
        ok = [k for k, v in node.items() if v == "pass"]
        print(f"node: ONNX Runtime passes {len(ok)} of {len(node)}; "
              f"{len([k for k in ok if k not in seq])} of {len(node) - len(seq)} without sequence/optional cases")
        results.update(node)
    if args.pytorch:
        for kind in ("pytorch-converted", "pytorch-operator"):
            r = {os.path.basename(d): run_case(d, convert=True) for d in oc.model_case_dirs(kind)}
            print(f"{kind}: ONNX Runtime passes {sum(v == 'pass' for v in r.values())} of {len(r)} (converted to opset 13)")
            results.update(r)
    if args.failures:
        with open(args.failures, "w") as f:
            for k, v in sorted(results.items()):
                if v != "pass":
                    f.write(f"{k}  {v}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
