"""The same server on Ray Serve: each replica loads the artifacts once, from bytes that travel through Ray's
object store (no shared filesystem), and runs `make_app` (routes, limits, batching, metrics) as its ASGI ingress.
Ray's HTTP proxy spreads requests over the replicas; /metrics answers for the replica that took the request."""
from __future__ import annotations

import signal
import threading
from dataclasses import replace

from ..ir.errors import LeptoncError, optional_dependency
from .app import ServeConfig, load_models, make_app, model_paths
from .protocol import Signature

APP_NAME = "leptonc"


def _verified(specs: list[str]) -> dict[str, str]:
    """{name: path} of the specs, each artifact loaded and its signature checked here (one-line errors), not
    first in a replica."""
    if not specs:
        raise LeptoncError("leptonc serve on Ray needs at least one model")
    for name, model in load_models(specs).items():
        Signature(name, model.signature)
    return model_paths(specs)


def ray_app(paths_or_named, *, num_replicas: int | str = 1, autoscaling_config: dict | None = None,
            max_batch: int | None = None, max_delay_ms: float | None = None, config: ServeConfig | None = None,
            ray_actor_options: dict | None = None):
    """A Ray Serve application serving the artifacts (`PATH.lep` or `NAME=PATH.lep`, as `leptonc serve` takes
    them): `serve.run(ray_app(["m.lep"], num_replicas=2))`. `autoscaling_config` (Ray Serve's) replaces
    `num_replicas`; `max_batch`/`max_delay_ms` override `config`'s; `ray_actor_options` sets each replica's
    resources (Ray Serve's default: one CPU). The calling process owns the artifacts' bytes in the object
    store: it stays connected to Ray while the application runs, so that replicas started later find them."""
    with optional_dependency("leptonc serve on Ray"):
        from ray import serve

    from ..ray import ship

    config = config or ServeConfig()
    config = replace(config, **{k: v for k, v in (("max_batch", max_batch), ("max_delay_ms", max_delay_ms))
                                if v is not None})
    if config.max_batch < 1 or not config.max_delay_ms >= 0:
        raise LeptoncError(f"ray_app: max_batch must be at least 1 and max_delay_ms 0 or more, got "
                           f"{config.max_batch} and {config.max_delay_ms}")
    if autoscaling_config is None and not (isinstance(num_replicas, int) and num_replicas >= 1):
        raise LeptoncError(f"ray_app: num_replicas must be a positive integer, got {num_replicas!r}")
    shipped = {name: ship(path) for name, path in _verified(list(paths_or_named)).items()}

    @serve.deployment(name="leptonc")
    @serve.ingress()
    class LeptoncReplica:
        """One replica: the models, loaded once, behind make_app's routes."""

        def __init__(self, shipped: dict, config: ServeConfig):
            from ..ray import load_shipped

            self.models_app = make_app({name: load_shipped(ref, name) for name, ref in shipped.items()}, config)

        def __serve_build_asgi_app__(self):
            return self.models_app

    options = {"autoscaling_config": autoscaling_config} if autoscaling_config else {"num_replicas": num_replicas}
    if ray_actor_options is not None:
        options["ray_actor_options"] = ray_actor_options
    return LeptoncReplica.options(**options).bind(shipped, config)


def serve_on_ray(specs: list[str], config: ServeConfig, *, num_replicas: int = 1, address: str | None = None) -> None:
    """`leptonc serve --ray`: start a local Ray instance (or connect to the cluster at `address`, e.g. "auto"),
    run `ray_app` on config.host:config.port until SIGINT/SIGTERM, then remove what this call started: the
    application on a cluster it joined; Serve and Ray too when it started them."""
    with optional_dependency("leptonc serve --ray"):
        import ray
        from ray import serve

    _verified(specs)  # before Ray starts
    try:
        ray.init(address=address or "local", include_dashboard=False if address is None else None)
    except ConnectionError as e:
        raise LeptoncError(f"--address {address}: {e}") from None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": config.host, "port": config.port})
        serve.run(ray_app(specs, num_replicas=num_replicas, config=config), name=APP_NAME, route_prefix="/")
        print(f"leptonc: serving on http://{config.host}:{config.port} with {num_replicas} Ray Serve replica(s); "
              f"ctrl-C or SIGTERM stops", flush=True)
        while not stop.wait(1):
            pass
    finally:
        if address is None:
            serve.shutdown()
        else:
            serve.delete(APP_NAME)
        ray.shutdown()
