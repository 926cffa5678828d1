"""`leptonc serve`: compiled models behind HTTP, on the KServe v2 (Open Inference Protocol) and v1 predict APIs,
with dynamic batching, bounded queues and Prometheus metrics.

  protocol.py  request and response bodies of both protocols (JSON and v2's binary tensor extension)
  batching.py  a queue per model that runs requests together along their batch dim, on a thread pool
  app.py       the starlette application: routes, limits, metrics; `serve` runs it under uvicorn
"""
from .app import ServeConfig, make_app, serve

__all__ = ["ServeConfig", "make_app", "serve"]
