"""The server on a real loopback socket: tritonclient works unchanged (JSON and binary), concurrent requests are
batched with answers equal per row to unbatched calls, bit for bit, requests of different shapes never mix, a
full queue answers 503 with Retry-After, a slow answer 504, and SIGTERM answers every accepted request."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("starlette")
httpclient = pytest.importorskip("tritonclient.http")

from leptonc.serve import ServeConfig  # noqa: E402

from .conftest import Gate, LiveServer  # noqa: E402


def _post(url: str, path: str, body: dict, timeout: float = 20) -> tuple[int, dict, dict]:
    request = urllib.request.Request(f"http://{url}{path}", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, json.loads(r.read()), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), dict(e.headers)


def _v1(x: np.ndarray) -> dict:
    return {"instances": x.tolist()}


def _metric(url: str, name: str) -> float:
    with urllib.request.urlopen(f"http://{url}/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(float(v) for v in re.findall(rf"^{re.escape(name)} (\S+)$", text, re.M))


def test_tritonclient_json_and_binary(models):
    loaded, _ = models
    with LiveServer(loaded, ServeConfig(workers=2)) as s:
        client = httpclient.InferenceServerClient(s.url)
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("mlp")
        meta = client.get_model_metadata("mlp")
        assert meta["inputs"][0]["shape"] == [-1, 16] and meta["outputs"][0]["datatype"] == "FP32"
        x = np.random.default_rng(2).standard_normal((3, 16)).astype(np.float32)
        for binary in (False, True):
            inp = httpclient.InferInput("x", list(x.shape), "FP32")
            inp.set_data_from_numpy(x, binary_data=binary)
            out = httpclient.InferRequestedOutput("y", binary_data=binary)
            result = client.infer("mlp", [inp], outputs=[out], request_id=f"r{binary}")
            assert np.array_equal(result.as_numpy("y"), loaded["mlp"](x))
            assert result.get_response()["id"] == f"r{binary}"
        a, b = (np.full((2, 3), k, np.float32) for k in (2, 3))
        inputs = [httpclient.InferInput(n, [2, 3], "FP32") for n in "ab"]
        for i, v in zip(inputs, (a, b)):
            i.set_data_from_numpy(v)
        result = client.infer("pair", inputs)  # no outputs named: all, in binary
        assert np.array_equal(result.as_numpy("s"), a + b) and np.array_equal(result.as_numpy("m"), a * b)
        with pytest.raises(Exception, match="no model named 'nope'"):
            client.infer("nope", inputs)
        client.close()


def test_batches_equal_unbatched_calls_per_row(models):
    """Concurrent requests of 1-3 rows to two models at once: some run together (fewer batches than requests),
    every answer equals the model called on that request alone and on each of its rows alone, bit for bit;
    "seq" requests of different S are never mixed."""
    loaded, _ = models
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((1 + i % 3, 16)).astype(np.float32) for i in range(24)]
    seqs = [rng.standard_normal((1 + i % 2, 3 + i % 3)).astype(np.float32) for i in range(12)]
    with LiveServer(loaded, ServeConfig(workers=1, max_batch=8, max_delay_ms=50)) as s:
        with ThreadPoolExecutor(16) as pool:
            mlp = [pool.submit(_post, s.url, "/v1/models/mlp:predict", _v1(x)) for x in xs]
            seq = [pool.submit(_post, s.url, "/v1/models/seq:predict", _v1(x)) for x in seqs]
            mlp, seq = [f.result() for f in mlp], [f.result() for f in seq]
        batches = _metric(s.url, 'leptonc_batch_rows_count{model="mlp"}')
        rows = _metric(s.url, 'leptonc_batch_rows_sum{model="mlp"}')
    assert all(status == 200 for status, _, _ in mlp + seq)
    for x, (_, body, _) in zip(xs, mlp):
        y = np.array(body["predictions"], np.float32)
        assert np.array_equal(y, loaded["mlp"](x))
        assert all(np.array_equal(y[i], loaded["mlp"](x[i:i + 1])[0]) for i in range(len(x)))
    for x, (_, body, _) in zip(seqs, seq):
        assert np.array_equal(np.array(body["predictions"], np.float32), loaded["seq"](x))
    assert rows == sum(len(x) for x in xs) and batches < len(xs)


def test_a_full_queue_answers_503_and_a_slow_answer_504(models):
    loaded, _ = models
    gate = Gate(loaded["mlp"])
    x = np.ones((1, 16), np.float32)
    with LiveServer({"mlp": gate}, ServeConfig(workers=1, max_batch=1, max_queue=2, timeout_s=5)) as s:
        with ThreadPoolExecutor(3) as pool:
            accepted = [pool.submit(_post, s.url, "/v1/models/mlp:predict", _v1(x))]
            _wait(lambda: _metric(s.url, 'leptonc_queued{model="mlp"}') == 0 and
                  _metric(s.url, 'leptonc_queue_seconds_count{model="mlp"}') == 1)  # running, held by the gate
            accepted += [pool.submit(_post, s.url, "/v1/models/mlp:predict", _v1(x)) for _ in range(2)]
            _wait(lambda: _metric(s.url, 'leptonc_queued{model="mlp"}') == 2)
            status, body, headers = _post(s.url, "/v1/models/mlp:predict", _v1(x))
            assert status == 503 and "overloaded" in body["error"] and headers["retry-after"] == "1"
            gate.open.set()
            assert [f.result()[0] for f in accepted] == [200] * 3
            assert all(np.array_equal(np.array(f.result()[1]["predictions"], np.float32), loaded["mlp"](x))
                       for f in accepted)
    gate = Gate(loaded["mlp"])
    with LiveServer({"mlp": gate}, ServeConfig(workers=1, timeout_s=0.2)) as s:
        status, body, _ = _post(s.url, "/v1/models/mlp:predict", _v1(x))
        assert status == 504 and "did not answer within 0.2 s" in body["error"]
        gate.open.set()
        assert _post(s.url, "/v1/models/mlp:predict", _v1(x))[0] == 200


def _wait(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the server"
        time.sleep(0.02)


def test_sigterm_answers_the_accepted_requests(models, tmp_path):
    """`leptonc serve` in a subprocess, SIGTERM while requests wait for their batch: each is answered, and the
    process ends."""
    _, paths = models
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"127.0.0.1:{port}"
    env = dict(os.environ, LEPTONC_CACHE_DIR=str(tmp_path / "cache"), LEPTONC_HOME=str(tmp_path / "home"))
    proc = subprocess.Popen([sys.executable, "-m", "leptonc.cli", "serve", f"m={paths['mlp']}", "--port", str(port),
                             "--max-delay-ms", "1500", "--max-batch", "64", "--workers", "1"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        def ready():
            try:
                return urllib.request.urlopen(f"http://{url}/v2/health/ready", timeout=1).status == 200
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode()
                return False
        _wait(ready, 30)
        x = np.ones((1, 16), np.float32)
        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(_post, url, "/v1/models/m:predict", _v1(x)) for _ in range(6)]
            _wait(lambda: _metric(url, 'leptonc_queued{model="m"}') == 6)
            proc.send_signal(signal.SIGTERM)
            answers = [f.result() for f in futures]
        assert [a[0] for a in answers] == [200] * 6
        assert proc.wait(20) in (0, -signal.SIGTERM)  # (uvicorn re-raises the signal once it has drained)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
