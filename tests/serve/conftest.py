"""Models for the serving tests, compiled once per session (cpu target) into temp dirs; and a real uvicorn
server on a free loopback port, stopped by the test that started it."""
from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

import leptonc

MLP = """graph @mlp(%x: f32[B, 16]) -> (f32[B, 3]) {
  %w1 = const @w1 : f32[16, 32]
  %b1 = const @b1 : f32[32]
  %w2 = const @w2 : f32[32, 3]
  %h = matmul(%x, %w1) : f32[B, 32]
  %hb = add(%h, %b1) : f32[B, 32]
  %r = relu(%hb) : f32[B, 32]
  %y = matmul(%r, %w2) : f32[B, 3]
  return %y
}
"""

# no batch dim (static shapes), two inputs and two outputs
PAIR = """graph @pair(%a: f32[2, 3], %b: f32[2, 3]) -> (f32[2, 3], f32[2, 3]) {
  %s = add(%a, %b) : f32[2, 3]
  %m = mul(%a, %b) : f32[2, 3]
  return %s, %m
}
"""

# a batch dim B and a second symbolic dim S: requests of different S must never share a batch
SEQ = """graph @seq(%x: f32[B, S]) -> (f32[B, S]) {
  %y = mul(%x, %x) : f32[B, S]
  return %y
}
"""


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """({name: model}, {name: path}): "mlp" (batchable), "pair" (static shapes, two inputs and outputs) and "seq"
    (batchable, a second symbolic dim), compiled, saved and loaded."""
    home = tmp_path_factory.mktemp("serve_home")
    mp = pytest.MonkeyPatch()
    mp.setenv("LEPTONC_CACHE_DIR", str(home / "cache"))
    mp.setenv("LEPTONC_HOME", str(home / "home"))
    rng = np.random.default_rng(0)
    weights = {"w1": rng.standard_normal((16, 32)).astype(np.float32),
               "b1": rng.standard_normal(32).astype(np.float32),
               "w2": rng.standard_normal((32, 3)).astype(np.float32)}
    paths = {name: home / f"{name}.lep" for name in ("mlp", "pair", "seq")}
    leptonc.compile(leptonc.parse_ir(MLP, weights), quiet=True).save(paths["mlp"])
    leptonc.compile(leptonc.parse_ir(PAIR), quiet=True).save(paths["pair"])
    leptonc.compile(leptonc.parse_ir(SEQ), quiet=True).save(paths["seq"])
    yield {name: leptonc.load(p) for name, p in paths.items()}, paths
    mp.undo()


class Gate:
    """A model whose runs wait until the test opens the gate (to hold requests in flight)."""

    def __init__(self, model):
        self.model, self.signature, self.open = model, model.signature, threading.Event()

    def run(self, *inputs):
        self.open.wait(10)
        return self.model.run(*inputs)


class LiveServer:
    """`make_app(models, config)` under uvicorn in a thread, on a free loopback port."""

    def __init__(self, models: dict, config):
        import uvicorn

        from leptonc.serve import make_app

        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"127.0.0.1:{self.socket.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(make_app(models, config), log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)
        self.socket.close()
        assert not self.thread.is_alive(), "the server did not stop"
