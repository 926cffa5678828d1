"""The HTTP application: KServe v2 and v1 routes over the models' batch queues, with a body limit, a timeout
per request, Prometheus metrics at /metrics, and every refused request answered {"error": "..."}."""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..ir.errors import LeptoncError, optional_dependency
from . import protocol
from .batching import ModelQueue
from .metrics import Metrics
from .protocol import RequestError, Signature

with optional_dependency("leptonc serve"):
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route


_INLINE_BYTES = 1 << 16  # bodies up to this size are decoded and encoded on the event loop; larger ones on a thread


async def _off_loop(size: int, fn, *args):
    """fn(*args): on a thread when it handles more than _INLINE_BYTES, so that the event loop never waits long."""
    return fn(*args) if size <= _INLINE_BYTES else await run_in_threadpool(fn, *args)


@dataclass
class ServeConfig:
    """How the server runs. `workers` threads compute (the models are thread-safe); each model queues at most
    `max_queue` requests (more are answered 503)."""
    host: str = "127.0.0.1"
    port: int = 8000
    max_batch: int = 32
    max_delay_ms: float = 2.0
    max_queue: int = 256
    timeout_s: float = 30.0
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    max_body_mb: float = 64.0


def model_paths(specs: list[str]) -> dict[str, str]:
    """{name: path} for `PATH.lep` (named by its file stem) or `NAME=PATH.lep` specs."""
    paths = {}
    for spec in specs:
        name, _, path = spec.rpartition("=") if "=" in spec else (Path(spec).stem, "", spec)
        if not name or "/" in name:
            raise LeptoncError(f"model spec {spec!r}: a model name is one path segment (NAME=PATH.lep)")
        if name in paths:
            raise LeptoncError(f"two models are named {name!r}; name one of them with NAME=PATH.lep")
        paths[name] = path
    return paths


def load_models(specs: list[str]) -> dict:
    """{name: model} for `PATH.lep` (named by its file stem) or `NAME=PATH.lep` specs."""
    import leptonc

    return {name: leptonc.load(path) for name, path in model_paths(specs).items()}


def make_app(models: dict, config: ServeConfig | None = None) -> "Starlette":
    """The application serving `models` ({name: compiled model}); its queues start and drain with its lifespan."""
    config = config or ServeConfig()
    if not models:
        raise LeptoncError("leptonc serve needs at least one model")
    signatures = {name: Signature(name, m.signature) for name, m in models.items()}
    metrics = Metrics()
    queues: dict[str, ModelQueue] = {}
    max_body = int(config.max_body_mb * 2**20)

    @asynccontextmanager
    async def lifespan(app):
        pool = ThreadPoolExecutor(config.workers, thread_name_prefix="leptonc-serve")
        for name, model in models.items():
            queues[name] = ModelQueue(name, model, pool, metrics, max_batch=config.max_batch,
                                      max_delay_s=config.max_delay_ms / 1000, max_queue=config.max_queue,
                                      workers=config.workers)
            queues[name].start()
        try:
            yield
        finally:  # uvicorn has answered every accepted request by now; let running batches end
            for q in queues.values():
                await q.stop()
            queues.clear()
            pool.shutdown(wait=True)

    def model_of(request: Request) -> str:
        name = request.path_params["name"]
        if name not in signatures:
            raise RequestError(f"no model named {name!r}; this server has {sorted(signatures)}", 404)
        version = request.path_params.get("version")
        if version is not None and version != "1":
            raise RequestError(f"model '{name}' has version 1 only, not {version!r}", 404)
        return name

    async def body(request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_body:
            raise RequestError(f"the request body ({length} bytes) exceeds the limit of {max_body} bytes", 413)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:
                raise RequestError(f"the request body exceeds the limit of {max_body} bytes", 413)
            chunks.append(chunk)
        return b"".join(chunks)

    def refused(e: RequestError) -> Response:
        return JSONResponse({"error": str(e)}, e.status, headers=e.headers)

    def answering(protocol_name: str, infer):
        """A route around `infer(request, model name) -> Response`: metrics, and errors as JSON."""
        async def route(request: Request) -> Response:
            start, name = time.perf_counter(), request.path_params["name"]
            label = name if name in signatures else ""
            metrics.requests.labels(label, protocol_name).inc()
            try:
                response = await infer(request, model_of(request))
            except RequestError as e:
                response = refused(e)
            except Exception as e:  # noqa: BLE001 (a bug: this request fails, the server stays up)
                response = JSONResponse({"error": f"internal error: {type(e).__name__}: {e}"}, 500)
            if response.status_code >= 400:
                metrics.errors.labels(label, protocol_name, str(response.status_code)).inc()
            metrics.request_seconds.labels(label, protocol_name).observe(time.perf_counter() - start)
            return response
        return route

    async def infer_v2(request: Request, name: str) -> Response:
        data, sig = await body(request), signatures[name]
        header, arrays = await _off_loop(len(data), protocol.decode_v2, data,
                                         request.headers.get(protocol.HEADER_LENGTH))
        outputs = await queues[name].submit(sig.check(arrays), config.timeout_s)
        content, headers = await _off_loop(sum(y.nbytes for y in outputs), protocol.encode_v2, name, header, sig,
                                           outputs)
        return Response(content, headers=headers)

    async def predict_v1(request: Request, name: str) -> Response:
        data, sig = await body(request), signatures[name]
        arrays, rows = await _off_loop(len(data), protocol.decode_v1, data, sig)
        outputs = await queues[name].submit(sig.check(arrays), config.timeout_s)
        content = await _off_loop(sum(y.nbytes for y in outputs), protocol.encode_v1, sig, outputs, rows)
        return Response(content, media_type="application/json")

    def simple(handler):
        """A GET route whose RequestError is answered as JSON."""
        async def route(request: Request) -> Response:
            try:
                return handler(request)
            except RequestError as e:
                return refused(e)
        return route

    def ready(request: Request) -> Response:
        ok = len(queues) == len(models)
        return JSONResponse({"ready": ok}, 200 if ok else 503)

    def model_ready(request: Request) -> Response:
        ok = model_of(request) in queues
        return JSONResponse({"name": request.path_params["name"], "ready": ok}, 200 if ok else 503)

    def server_metadata(request: Request) -> Response:
        from .. import __version__

        return JSONResponse({"name": "leptonc", "version": __version__, "extensions": ["binary_tensor_data"]})

    def metrics_text(request: Request) -> Response:
        text, content_type = metrics.text()
        return Response(text, media_type=content_type)

    model_routes = []
    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        model_routes += [
            Route(prefix, simple(lambda r: JSONResponse(signatures[model_of(r)].metadata()))),
            Route(prefix + "/ready", simple(model_ready)),
            Route(prefix + "/infer", answering("v2", infer_v2), methods=["POST"]),
        ]
    routes = [
        Route("/v2/health/live", simple(lambda r: JSONResponse({"live": True}))),
        Route("/v2/health/ready", simple(ready)),
        Route("/v2", simple(server_metadata)),
        *model_routes,
        Route("/v1/models/{name}:predict", answering("v1", predict_v1), methods=["POST"]),
        Route("/metrics", simple(metrics_text)),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.metrics = metrics
    return app


def serve(specs: list[str], config: ServeConfig) -> None:
    """Load the models and serve them until SIGINT/SIGTERM; uvicorn then stops accepting connections and
    answers the accepted requests before the queues stop."""
    with optional_dependency("leptonc serve"):
        import uvicorn

    app = make_app(load_models(specs), config)
    uvicorn.run(app, host=config.host, port=config.port, log_level="info", access_log=False)
