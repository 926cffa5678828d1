"""KServe v2 (JSON and binary tensor data) and v1 predict through the application in-process (starlette's
TestClient): health, metadata, answers equal to the model's, every kind of bad request answered with a status
and a message naming the problem, the body limit, and the metrics."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("uvicorn")
testclient = pytest.importorskip("starlette.testclient")

from leptonc.serve import ServeConfig, make_app  # noqa: E402


@pytest.fixture(scope="module")
def client(models):
    loaded, _ = models
    with testclient.TestClient(make_app(loaded, ServeConfig(workers=2, max_body_mb=0.01))) as c:
        yield c


def _x(rows=2, seed=1):
    return np.random.default_rng(seed).standard_normal((rows, 16)).astype(np.float32)


def _binary_body(header: dict, *blobs: bytes) -> tuple[bytes, dict]:
    text = json.dumps(header).encode()
    return text + b"".join(blobs), {"Inference-Header-Content-Length": str(len(text)),
                                    "Content-Type": "application/octet-stream"}


def test_health_and_metadata(client):
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").status_code == 200
    assert "binary_tensor_data" in client.get("/v2").json()["extensions"]
    meta = client.get("/v2/models/mlp").json()
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 16]}]
    assert meta["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, 3]}]
    pair = client.get("/v2/models/pair/versions/1").json()
    assert [t["shape"] for t in pair["inputs"]] == [[2, 3], [2, 3]]
    assert client.get("/v2/models/pair/ready").json() == {"name": "pair", "ready": True}
    assert client.get("/v2/models/nope/ready").status_code == 404


def test_v2_json_equals_the_model_and_echoes_id_and_parameters(client, models):
    x = _x()
    r = client.post("/v2/models/mlp/infer", json={
        "id": "req-7", "parameters": {"trace": "abc"},
        "inputs": [{"name": "x", "shape": [2, 16], "datatype": "FP32", "data": x.reshape(-1).tolist()}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "req-7" and body["parameters"] == {"trace": "abc"} and body["model_name"] == "mlp"
    (out,) = body["outputs"]
    assert out["name"] == "y" and out["shape"] == [2, 3] and out["datatype"] == "FP32"
    assert np.array_equal(np.array(out["data"], np.float32).reshape(2, 3), models[0]["mlp"](x))


def test_v2_binary_inputs_and_outputs(client, models):
    a, b = (np.arange(6, dtype=np.float32).reshape(2, 3) + k for k in (0, 10))
    body, headers = _binary_body({
        "inputs": [{"name": "a", "shape": [2, 3], "datatype": "FP32", "parameters": {"binary_data_size": 24}},
                   {"name": "b", "shape": [2, 3], "datatype": "FP32", "data": b.reshape(-1).tolist()}],
        "outputs": [{"name": "m", "parameters": {"binary_data": True}}, {"name": "s"}]}, a.tobytes())
    r = client.post("/v2/models/pair/infer", content=body, headers=headers)
    assert r.status_code == 200, r.text
    n = int(r.headers["inference-header-content-length"])
    header = json.loads(r.content[:n])
    m, s = header["outputs"]
    assert m["name"] == "m" and m["parameters"]["binary_data_size"] == 24 and "data" not in m
    assert np.array_equal(np.frombuffer(r.content[n:], np.float32).reshape(2, 3), a * b)
    assert np.array_equal(np.array(s["data"], np.float32).reshape(2, 3), a + b)


def test_v1_instances_and_inputs(client, models):
    x = _x(3)
    r = client.post("/v1/models/mlp:predict", json={"instances": x.tolist()})
    assert r.status_code == 200, r.text
    assert np.array_equal(np.array(r.json()["predictions"], np.float32), models[0]["mlp"](x))
    a, b = np.ones((2, 3), np.float32), np.full((2, 3), 2, np.float32)
    r = client.post("/v1/models/pair:predict", json={"inputs": {"a": a.tolist(), "b": b.tolist()}})
    assert r.json() == {"predictions": {"s": (a + b).tolist(), "m": (a * b).tolist()}}


def _infer(name="mlp", inputs=None, **extra):
    inputs = inputs if inputs is not None else \
        [{"name": "x", "shape": [1, 16], "datatype": "FP32", "data": [0.5] * 16}]
    return f"/v2/models/{name}/infer", {"inputs": inputs, **extra}


BAD = [
    ("unknown model", 404, "no model named 'nope'", _infer("nope")),
    ("no inputs", 400, "'inputs' list", ("/v2/models/mlp/infer", {"id": "1"})),
    ("unknown input", 400, "no input 'z'",
     _infer(inputs=[{"name": "z", "shape": [1, 16], "datatype": "FP32", "data": [0.5] * 16}])),
    ("missing input", 400, "needs input 'b'",
     _infer("pair", [{"name": "a", "shape": [2, 3], "datatype": "FP32", "data": [1] * 6}])),
    ("wrong dtype", 400, "input 'x' of model 'mlp' is FP32, got INT64",
     _infer(inputs=[{"name": "x", "shape": [1, 16], "datatype": "INT64", "data": [1] * 16}])),
    ("wrong shape", 400, "has shape [-1, 16], got [2, 8]",
     _infer(inputs=[{"name": "x", "shape": [2, 8], "datatype": "FP32", "data": [0.5] * 16}])),
    ("data count", 400, "'data' holds 15 elements, shape [1, 16] needs 16",
     _infer(inputs=[{"name": "x", "shape": [1, 16], "datatype": "FP32", "data": [0.5] * 15}])),
    ("unknown datatype", 400, "unknown datatype 'FP128'",
     _infer(inputs=[{"name": "x", "shape": [1, 16], "datatype": "FP128", "data": [0.5] * 16}])),
    ("strings as data", 400, "'data' must hold numbers",
     _infer(inputs=[{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": ["a", "b"]}])),
    ("unknown output", 400, "no output 'q'", _infer(outputs=[{"name": "q"}])),
    ("v1 without instances", 400, "either 'instances' or 'inputs'", ("/v1/models/mlp:predict", {"rows": []})),
    ("v1 wrong shape", 400, "has shape [-1, 16], got [1, 3]", ("/v1/models/mlp:predict", {"instances": [[1, 2, 3]]})),
]


@pytest.mark.parametrize("kind,status,message,request_", BAD, ids=[b[0] for b in BAD])
def test_bad_requests_name_the_problem(client, kind, status, message, request_):
    path, body = request_
    r = client.post(path, json=body)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]


def test_malformed_json_and_binary_sizes(client):
    r = client.post("/v2/models/mlp/infer", content=b'{"inputs": [')
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    spec = {"name": "x", "shape": [1, 16], "datatype": "FP32", "parameters": {"binary_data_size": 64}}
    x = np.ones(16, np.float32).tobytes()
    for header, blob, message in [
            ({"inputs": [dict(spec, parameters={"binary_data_size": 60})]}, x, "binary_data_size 60 is not 16 x 4"),
            ({"inputs": [spec]}, x[:32], "runs past the body's binary data"),
            ({"inputs": [spec]}, x + b"xx", "2 bytes of binary data no input's binary_data_size accounts for")]:
        body, headers = _binary_body(header, blob)
        r = client.post("/v2/models/mlp/infer", content=body, headers=headers)
        assert r.status_code == 400 and message in r.json()["error"], r.text
    r = client.post("/v2/models/mlp/infer", content=b"{}", headers={"Inference-Header-Content-Length": "99"})
    assert r.status_code == 400 and "exceeds the body's 2 bytes" in r.json()["error"]


def test_body_limit_is_413(client):
    r = client.post("/v1/models/mlp:predict", content=b"[" + b"0," * 20000 + b"0]")
    assert r.status_code == 413 and "exceeds the limit" in r.json()["error"]


def test_metrics_count_per_model(client):
    path, body = _infer("pair", [{"name": n, "shape": [2, 3], "datatype": "FP32", "data": [1] * 6} for n in "ab"])
    assert client.post(path, json=body).status_code == 200
    mlp_path, mlp_body = _infer()
    assert client.post(mlp_path, json=mlp_body).status_code == 200  # mlp metrics exist whatever ran before
    assert client.post("/v2/models/mlp/infer", content=b"{").status_code == 400
    text = client.get("/metrics").text
    for line in ['leptonc_requests_total{model="pair",protocol="v2"}', 'leptonc_errors_total{model="mlp",'
                 'protocol="v2",status="400"}', 'leptonc_compute_seconds_count{model="pair"}',
                 'leptonc_queue_seconds_count{model="mlp"}', 'leptonc_batch_rows_bucket{le="1.0",model="mlp"}',
                 'leptonc_queued{model="mlp"} 0.0']:
        assert line in text, line


@pytest.mark.parametrize("argv,message", [
    (["a={mlp}", "a={pair}"], "two models are named 'a'"),
    (["{mlp}", "--max-batch", "0"], "--max-batch must be at least 1"),
    (["{mlp}", "--timeout-s", "-1"], "--timeout-s must be positive"),
    (["missing.lep"], "missing.lep"),
])
def test_serve_command_errors_are_one_line(models, capsys, argv, message):
    from leptonc.cli import main

    _, paths = models
    assert main(["serve", *(a.format(**paths) for a in argv)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("leptonc: error:") and message in err and err.count("\n") == 1


def test_large_bodies(models):
    """Bodies past 64 KiB are decoded and encoded on a thread: the answer is the same."""
    x = _x(8192)
    with testclient.TestClient(make_app(models[0], ServeConfig(workers=1))) as client:
        body, headers = _binary_body({"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32",
                                                  "parameters": {"binary_data_size": x.nbytes}}]}, x.tobytes())
        r = client.post("/v2/models/mlp/infer", content=body, headers=headers)
        assert r.status_code == 200, r.text
        (out,) = r.json()["outputs"]
        assert np.array_equal(np.array(out["data"], np.float32).reshape(-1, 3), models[0]["mlp"](x))
