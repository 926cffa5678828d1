"""`leptonc serve`: compiled models behind HTTP, on the KServe v2 (Open Inference Protocol) and v1 predict APIs,
with dynamic batching, bounded queues and Prometheus metrics.

  protocol.py  request and response bodies of both protocols (JSON and v2's binary tensor extension)
  batching.py  a queue per model that runs requests together along their batch dim, on a thread pool
  app.py       the starlette application: routes, limits, metrics; `serve` runs it under uvicorn
  ray_app.py   the same application as Ray Serve replicas (`ray_app`, `leptonc serve --ray`)
"""
from .app import ServeConfig, make_app, serve
from .ray_app import ray_app

__all__ = ["ServeConfig", "make_app", "ray_app", "serve"]
