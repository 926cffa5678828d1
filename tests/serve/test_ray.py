"""Scale-out on Ray: ray_app's replicas answer v2 and v1 over Ray Serve's HTTP proxy, and Ray Data map_batches,
both equal to in-process calls. One local Ray instance (2 CPUs) for the module, shut down at its end."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from leptonc.ir.errors import LeptoncError


def test_bad_arguments_are_refused_before_ray_starts(models, tmp_path):
    pytest.importorskip("ray.serve")
    import leptonc.ray
    from leptonc.serve import ray_app

    _, paths = models
    with pytest.raises(LeptoncError, match="num_replicas must be a positive integer, got 0"):
        ray_app([str(paths["mlp"])], num_replicas=0)
    with pytest.raises(LeptoncError, match="max_batch must be at least 1"):
        ray_app([str(paths["mlp"])], max_batch=0)
    with pytest.raises(LeptoncError, match="two models are named 'mlp'"):
        ray_app([str(paths["mlp"]), f"mlp={paths['seq']}"])
    bad = tmp_path / "bad.lep"
    bad.write_bytes(paths["mlp"].read_bytes()[:300])
    with pytest.raises(LeptoncError, match="bad.lep: not a leptonc artifact"):  # here, not in a replica
        ray_app([str(bad)])
    with pytest.raises(LeptoncError, match="has no batch dim"):
        leptonc.ray.map_batches(None, paths["pair"])
    with pytest.raises(LeptoncError, match="batch_size must be at least 1, got 0"):
        leptonc.ray.map_batches(None, paths["mlp"], batch_size=0)


def test_missing_ray_is_one_line(models, monkeypatch):
    import leptonc.ray
    from leptonc.ir.errors import MissingDependencyError
    from leptonc.serve import ray_app

    _, paths = models
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if it were not installed
    for call in (lambda: ray_app([str(paths["mlp"])]), lambda: leptonc.ray.map_batches([], paths["mlp"])):
        with pytest.raises(MissingDependencyError, match=r"needs the 'ray' package.*pip install 'leptonc\[ray\]'"):
            call()


def test_cli_ray_flags_need_ray(models, capsys):
    from leptonc.cli import main

    _, paths = models
    assert main(["serve", "--replicas", "2", str(paths["mlp"])]) == 2
    assert "--replicas and --address need --ray" in capsys.readouterr().err
    assert main(["serve", "--ray", "--replicas", "0", str(paths["mlp"])]) == 2
    assert "--replicas must be at least 1, got 0" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(base: str, alive=lambda: True) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{base}/v2/health/ready", timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        assert alive() and time.monotonic() < deadline, "the Ray Serve application did not become ready"
        time.sleep(0.2)


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.loads(r.read())


@pytest.mark.slow
def test_cli_serve_ray_answers_then_stops_on_sigterm(models):
    """`leptonc serve --ray` in its own process (its own local Ray instance, run before this module's)."""
    pytest.importorskip("ray.serve")
    loaded, paths = models
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "leptonc.cli", "serve", "--ray", "--replicas", "1",
                             "--port", str(port), str(paths["mlp"])],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_ready(f"http://127.0.0.1:{port}", alive=lambda: proc.poll() is None)
        x = np.random.default_rng(7).standard_normal((2, 16)).astype(np.float32)
        got = _post(f"http://127.0.0.1:{port}/v1/models/mlp:predict", {"instances": x.tolist()})["predictions"]
        np.testing.assert_array_equal(np.float32(got), loaded["mlp"].run(x)[0])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray instance for this module; Serve and Ray are shut down at its end."""
    ray = pytest.importorskip("ray")
    serve = pytest.importorskip("ray.serve")
    if ray.is_initialized():
        pytest.skip("a Ray instance is already connected in this process")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.mark.slow
def test_ray_serve_answers_v2_and_v1(models, ray_local):
    from ray import serve

    from leptonc.serve import ray_app

    loaded, paths = models
    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    app = ray_app([str(paths["mlp"]), f"twin={paths['pair']}"], num_replicas=2, max_batch=8,
                  ray_actor_options={"num_cpus": 0.5})
    serve.run(app, name="leptonc", route_prefix="/")
    base = f"http://127.0.0.1:{port}"
    _wait_ready(base)

    x = np.random.default_rng(5).standard_normal((4, 16)).astype(np.float32)
    (want,) = loaded["mlp"].run(x)
    v2 = _post(f"{base}/v2/models/mlp/infer",
               {"inputs": [{"name": "x", "shape": [4, 16], "datatype": "FP32", "data": x.ravel().tolist()}]})
    assert v2["outputs"][0]["shape"] == [4, 3]
    np.testing.assert_array_equal(np.float32(v2["outputs"][0]["data"]).reshape(4, 3), want)
    for _ in range(4):  # requests spread over both replicas
        v1 = _post(f"{base}/v1/models/mlp:predict", {"instances": x.tolist()})
        np.testing.assert_array_equal(np.float32(v1["predictions"]), want)

    a, b = np.ones((2, 3), np.float32), np.full((2, 3), 2.5, np.float32)
    sums, products = loaded["pair"].run(a, b)
    out = _post(f"{base}/v2/models/twin/infer", {"inputs": [
        {"name": "a", "shape": [2, 3], "datatype": "FP32", "data": a.ravel().tolist()},
        {"name": "b", "shape": [2, 3], "datatype": "FP32", "data": b.ravel().tolist()}]})["outputs"]
    np.testing.assert_array_equal(np.float32(out[0]["data"]).reshape(2, 3), sums)
    np.testing.assert_array_equal(np.float32(out[1]["data"]).reshape(2, 3), products)
    serve.delete("leptonc")


@pytest.mark.slow
def test_ray_data_map_batches_equal_in_process(models, ray_local):
    import leptonc.ray

    loaded, paths = models
    x = np.random.default_rng(6).standard_normal((50, 16)).astype(np.float32)
    ds = ray_local.data.from_items([{"id": i, "x": row} for i, row in enumerate(x)])
    rows = leptonc.ray.map_batches(ds, paths["mlp"], batch_size=16, num_cpus=0.5).take_all()
    assert sorted(rows[0]) == ["id", "y"]  # the input column is replaced by the output, other columns kept
    got = np.stack([r["y"] for r in sorted(rows, key=lambda r: r["id"])])
    (want,) = loaded["mlp"].run(x)
    np.testing.assert_array_equal(got, want)  # each row as computed alone, bit for bit
    wrong = ray_local.data.from_items([{"id": i, "z": row} for i, row in enumerate(x)])
    with pytest.raises(LeptoncError, match=r"needs a column 'x'; the dataset has \['id', 'z'\]"):
        leptonc.ray.map_batches(wrong, paths["mlp"], batch_size=16)  # refused here, before any worker starts
