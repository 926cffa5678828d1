"""The serving benchmark's load generator counts right and wrong answers from a real leptonc server."""
import numpy as np

from benchmarks import serve
from leptonc.serve import ServeConfig

from .conftest import LiveServer


def test_load_checks_every_answer(models):
    loaded, _ = models
    mlp = loaded["mlp"]
    rng = np.random.default_rng(0)
    cases = [[rng.standard_normal((1, 16), dtype=np.float32)] for _ in range(3)]
    requests = [serve.encode_request([t["name"] for t in mlp.signature["inputs"]], xs) for xs in cases]
    expected = [mlp.run(*xs) for xs in cases]
    wrong = [[y + 1e-2 * max(1.0, float(np.abs(y).max()))] for [y] in expected]
    with LiveServer({"mlp": mlp}, ServeConfig(max_batch=8, max_delay_ms=1)) as server:
        port = int(server.url.rsplit(":", 1)[1])
        right = serve.load(port, "/v2/models/mlp/infer", requests, expected, clients=4, seconds=0.3)
        off = serve.load(port, "/v2/models/mlp/infer", requests, wrong, clients=4, seconds=0.3)
        missing = serve.load(port, "/v2/models/nope/infer", requests, expected, clients=1, seconds=0.1)
    assert right["requests"] > 0 and right["wrong"] == 0 and right["errors"] == 0
    assert off["requests"] > 0 and off["wrong"] == off["requests"]
    assert missing["requests"] == 0 and missing["errors"] > 0
