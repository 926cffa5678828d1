"""The server's Prometheus metrics, in a registry of its own (two apps in one process never share counts)."""
from __future__ import annotations

from ..ir.errors import optional_dependency

with optional_dependency("leptonc serve"):
    import prometheus_client as prom

_ROWS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    """Requests and errors per model and protocol; requests waiting, time in the queue and in compute, and rows
    per batch."""

    def __init__(self):
        self.registry = prom.CollectorRegistry()
        r = self.registry
        self.requests = prom.Counter("leptonc_requests", "inference requests received", ["model", "protocol"],
                                     registry=r)
        self.errors = prom.Counter("leptonc_errors", "inference requests answered with an error",
                                   ["model", "protocol", "status"], registry=r)
        self.request_seconds = prom.Histogram("leptonc_request_seconds", "time from request to response",
                                              ["model", "protocol"], registry=r)
        self.queued = prom.Gauge("leptonc_queued", "requests waiting for their batch", ["model"], registry=r)
        self.queue_seconds = prom.Histogram("leptonc_queue_seconds", "time a request waited for its batch",
                                            ["model"], registry=r)
        self.compute_seconds = prom.Histogram("leptonc_compute_seconds", "time a batch ran", ["model"], registry=r)
        self.batch_rows = prom.Histogram("leptonc_batch_rows", "rows (requests' batch sizes summed) per batch",
                                         ["model"], buckets=_ROWS, registry=r)

    def text(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return prom.generate_latest(self.registry), prom.CONTENT_TYPE_LATEST
