"""Request and response bodies of KServe v2 (the Open Inference Protocol, with the binary tensor data
extension) and of the v1 predict API, checked against a model's signature.

A bad request is a `RequestError` carrying its HTTP status (400 for a malformed or mismatched body, 404 for an
unknown model, ...) and a message naming the field at fault."""
from __future__ import annotations

import json
import re

import ml_dtypes
import numpy as np

from ..ir.errors import LeptoncError

# leptonc dtype -> (v2 datatype, numpy dtype); other dtypes (fp8, sub-byte ints) have no v2 name.
V2_DTYPES = {
    "bool": ("BOOL", np.dtype(np.bool_)), "u8": ("UINT8", np.dtype(np.uint8)), "u16": ("UINT16", np.dtype(np.uint16)),
    "u32": ("UINT32", np.dtype(np.uint32)), "u64": ("UINT64", np.dtype(np.uint64)), "i8": ("INT8", np.dtype(np.int8)),
    "i16": ("INT16", np.dtype(np.int16)), "i32": ("INT32", np.dtype(np.int32)), "i64": ("INT64", np.dtype(np.int64)),
    "f16": ("FP16", np.dtype(np.float16)), "f32": ("FP32", np.dtype(np.float32)),
    "f64": ("FP64", np.dtype(np.float64)), "bf16": ("BF16", np.dtype(ml_dtypes.bfloat16)),
}
HEADER_LENGTH = "inference-header-content-length"


class RequestError(LeptoncError):
    """A request the server refuses, with the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400, headers: dict | None = None):
        super().__init__(message)
        self.status, self.headers = status, headers or {}


class Signature:
    """A model's inputs and outputs as the protocols see them: names, leptonc dtypes, shapes (a symbolic dim is
    its name, a string)."""

    def __init__(self, name: str, signature: dict):
        self.name = name
        self.inputs, self.outputs = signature["inputs"], signature["outputs"]
        for t in self.inputs + self.outputs:
            if t["dtype"] not in V2_DTYPES:
                raise LeptoncError(f"model '{name}': {t['name']} has dtype {t['dtype']}, which the inference "
                                   f"protocols cannot carry (servable: {', '.join(V2_DTYPES)})")

    def metadata(self) -> dict:
        """The v2 model metadata: dynamic dims are -1."""
        def describe(ts):
            return [{"name": t["name"], "datatype": V2_DTYPES[t["dtype"]][0],
                     "shape": [d if isinstance(d, int) else -1 for d in t["shape"]]} for t in ts]
        return {"name": self.name, "versions": ["1"], "platform": "leptonc",
                "inputs": describe(self.inputs), "outputs": describe(self.outputs)}

    def check(self, arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The inputs in signature order, each checked by name, dtype, rank and static dims."""
        names = [t["name"] for t in self.inputs]
        unknown = sorted(set(arrays) - set(names))
        if unknown:
            raise RequestError(f"model '{self.name}' has no input {unknown[0]!r}; its inputs are {names}")
        missing = [n for n in names if n not in arrays]
        if missing:
            raise RequestError(f"model '{self.name}' needs input {missing[0]!r}; its inputs are {names}")
        out = []
        for t in self.inputs:
            a = arrays[t["name"]]
            want = V2_DTYPES[t["dtype"]][1]
            if a.dtype != want:
                raise RequestError(f"input '{t['name']}' of model '{self.name}' is {V2_DTYPES[t['dtype']][0]}, "
                                   f"got {_v2_name(a.dtype)}")
            shape = list(a.shape)
            if len(shape) != len(t["shape"]) or any(isinstance(d, int) and d != n for d, n in zip(t["shape"], shape)):
                raise RequestError(f"input '{t['name']}' of model '{self.name}' has shape "
                                   f"{[d if isinstance(d, int) else -1 for d in t['shape']]}, got {shape}")
            out.append(a)
        return out


def _v2_name(dtype: np.dtype) -> str:
    return next((v2 for v2, np_dtype in V2_DTYPES.values() if np_dtype == dtype), str(dtype))


def _numpy_of(v2: str, where: str) -> np.dtype:
    for name, np_dtype in V2_DTYPES.values():
        if name == v2:
            return np_dtype
    raise RequestError(f"{where}: unknown datatype {v2!r} (known: {', '.join(n for n, _ in V2_DTYPES.values())})")


def _json(text: bytes, where: str):
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise RequestError(f"{where} is not valid JSON: {e}") from None


def decode_v2(body: bytes, header_length: str | None) -> tuple[dict, dict[str, np.ndarray]]:
    """The request's JSON header and its input arrays by name, from JSON data or binary data after the header."""
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            raise RequestError(f"Inference-Header-Content-Length is not a number: {header_length!r}") from None
        if not 0 <= n <= len(body):
            raise RequestError(f"Inference-Header-Content-Length {n} exceeds the body's {len(body)} bytes")
        header, binary = _json(body[:n], "the inference header"), memoryview(body)[n:]
    else:
        header, binary = _json(body, "the request body"), memoryview(b"")
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list):
        raise RequestError("the request must be a JSON object with an 'inputs' list")
    arrays, offset = {}, 0
    for i, spec in enumerate(header["inputs"]):
        where = f"inputs[{i}]"
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise RequestError(f"{where} must be an object with a 'name'")
        where = f"input '{spec['name']}'"
        shape = spec.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                  for d in shape):
            raise RequestError(f"{where}: 'shape' must be a list of non-negative integers, got {shape!r}")
        dtype = _numpy_of(spec.get("datatype"), where)
        count = int(np.prod(shape, dtype=np.int64))
        size = (spec.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size != count * dtype.itemsize:
                raise RequestError(f"{where}: binary_data_size {size!r} is not {count} x {dtype.itemsize} bytes "
                                   f"for shape {shape} of {spec['datatype']}")
            if offset + size > len(binary):
                raise RequestError(f"{where}: binary_data_size {size} runs past the body's binary data "
                                   f"({len(binary) - offset} bytes left)")
            a = np.frombuffer(binary[offset:offset + size], dtype).reshape(shape)
            offset += size
        else:
            if "data" not in spec:
                raise RequestError(f"{where} has neither 'data' nor a binary_data_size parameter")
            a = _array(spec["data"], dtype, where)
            if a.size != count:
                raise RequestError(f"{where}: 'data' holds {a.size} elements, shape {shape} needs {count}")
            a = a.reshape(shape)
        if spec["name"] in arrays:
            raise RequestError(f"{where} is given twice")
        arrays[spec["name"]] = a
    if offset != len(binary):
        raise RequestError(f"the body has {len(binary) - offset} bytes of binary data no input's "
                           f"binary_data_size accounts for")
    return header, arrays


def _array(data, dtype: np.dtype, where: str) -> np.ndarray:
    try:
        a = np.array(data)
    except ValueError as e:
        raise RequestError(f"{where}: 'data' is not a rectangular array: {e}") from None
    if a.dtype == object or a.dtype.kind not in "biuf":
        raise RequestError(f"{where}: 'data' must hold numbers{' or booleans' if dtype == np.bool_ else ''}")
    if dtype == np.bool_ and a.dtype != np.bool_ or dtype != np.bool_ and a.dtype == np.bool_:
        raise RequestError(f"{where}: 'data' holds {a.dtype.name} values, the datatype is {_v2_name(dtype)}")
    if dtype.kind in "iu" and a.dtype.kind == "f":
        raise RequestError(f"{where}: 'data' holds non-integer numbers for {_v2_name(dtype)}")
    return a.astype(dtype)


def encode_v2(model: str, header: dict, sig: Signature, outputs: list[np.ndarray]) -> tuple[bytes, dict]:
    """The v2 response body and its headers: each requested output (all by default) as JSON data, or as binary
    data after the JSON header when the request asks (`binary_data` per output, `binary_data_output` for all)."""
    params = header.get("parameters") if isinstance(header.get("parameters"), dict) else {}
    all_binary = bool(params.get("binary_data_output", False))
    by_name = {t["name"]: (t, y) for t, y in zip(sig.outputs, outputs)}
    wanted = header.get("outputs")
    if wanted is None:
        wanted = [{"name": t["name"]} for t in sig.outputs]
    if not isinstance(wanted, list) or not all(isinstance(w, dict) and isinstance(w.get("name"), str)
                                               for w in wanted):
        raise RequestError("'outputs' must be a list of objects with a 'name'")
    body_outputs, blobs = [], []
    for w in wanted:
        if w["name"] not in by_name:
            raise RequestError(f"model '{model}' has no output {w['name']!r}; its outputs are {list(by_name)}")
        t, y = by_name[w["name"]]
        out = {"name": t["name"], "datatype": V2_DTYPES[t["dtype"]][0], "shape": list(y.shape)}
        if (w.get("parameters") or {}).get("binary_data", all_binary):
            blob = np.ascontiguousarray(y).tobytes()
            out["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            out["data"] = y.reshape(-1).tolist()
        body_outputs.append(out)
    response = {"model_name": model, "model_version": "1", "outputs": body_outputs}
    if "id" in header:
        response["id"] = header["id"]
    passed = {k: v for k, v in params.items() if k != "binary_data_output"}
    if passed:
        response["parameters"] = passed
    text = json.dumps(response).encode()
    if not blobs:
        return text, {"content-type": "application/json"}
    return text + b"".join(blobs), {"content-type": "application/octet-stream", HEADER_LENGTH: str(len(text))}


def decode_v1(body: bytes, sig: Signature) -> tuple[dict[str, np.ndarray], bool]:
    """The input arrays of a v1 predict request, and whether it came as rows ("instances") rather than columns
    ("inputs"). A model with one input takes a list; with several, a dict by input name (columns) or a list of
    such dicts (rows)."""
    request = _json(body, "the request body")
    if not isinstance(request, dict) or ("instances" in request) == ("inputs" in request):
        raise RequestError("a v1 predict request is a JSON object with either 'instances' or 'inputs'")
    rows = "instances" in request
    data = request["instances" if rows else "inputs"]
    names = [t["name"] for t in sig.inputs]
    dtypes = {t["name"]: V2_DTYPES[t["dtype"]][1] for t in sig.inputs}
    if rows and data and all(isinstance(r, dict) for r in data):
        columns = {n: [r.get(n) for r in data] for n in {k for r in data for k in r}}
    elif isinstance(data, dict):
        columns = data
    elif len(names) == 1:
        columns = {names[0]: data}
    else:
        raise RequestError(f"model '{sig.name}' has inputs {names}: give them by name")
    arrays = {}
    for n, v in columns.items():
        if n not in dtypes:
            raise RequestError(f"model '{sig.name}' has no input {n!r}; its inputs are {names}")
        arrays[n] = _array(v, dtypes[n], f"input '{n}'")
    return arrays, rows


def encode_v1(sig: Signature, outputs: list[np.ndarray], rows: bool) -> bytes:
    """{"predictions": ...}: the one output's values; with several, a dict by output name, or for a request of
    rows a list of such dicts (one per row)."""
    names = [t["name"] for t in sig.outputs]
    if len(outputs) == 1:
        predictions = outputs[0].tolist()
    elif rows and all(y.ndim and len(y) == len(outputs[0]) for y in outputs):
        predictions = [{n: y[i].tolist() for n, y in zip(names, outputs)} for i in range(len(outputs[0]))]
    else:
        predictions = {n: y.tolist() for n, y in zip(names, outputs)}
    return json.dumps({"predictions": predictions}).encode()


def batch_symbol(signature: dict) -> str | None:
    """The symbol every input and output has as its leading dim and nowhere else, if one: the dim requests can
    be stacked along."""
    tensors = signature["inputs"] + signature["outputs"]
    lead = {str(t["shape"][0]) if t["shape"] else None for t in tensors}
    if len(lead) != 1:
        return None
    (s,) = lead
    if s is None or not s.isidentifier():
        return None
    word = re.compile(rf"\b{re.escape(s)}\b")
    return None if any(word.search(str(d)) for t in tensors for d in t["shape"][1:]) else s
