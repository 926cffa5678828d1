"""Serving under load: `leptonc serve` with batching on and off, against a FastAPI app calling ONNX Runtime.

A closed loop on loopback: C client threads each send a request, wait for its answer, check it against the
reference output for that request's input (the compiled model called in-process; docs/design.md's tolerance,
max|y - ref| <= 1e-4 * max(1, max|ref|)), and send the next, for T seconds. Every system runs alone in its own
server process (127.0.0.1, a free port), one after the other, and is killed at the end of its window. All
clients speak the same request: KServe v2 with binary tensor data, all outputs asked for as binary.

Systems:
  batched    leptonc serve --max-batch 32 --max-delay-ms 2
  unbatched  leptonc serve --max-batch 1
  fastapi    the baseline users build today: a FastAPI app (uvicorn) calling ONNX Runtime one request at a time
  ort-serve  ONNX Runtime behind leptonc serve's own logic (batching on), to separate server from compiler

Usage: python benchmarks/serve.py [--models bert,resnet50] [--clients 16] [--seconds 10] [--systems ...]
"""

import argparse
import http.client
import inspect
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SYSTEMS = {
    "batched": "leptonc serve, batching on (--max-batch 32 --max-delay-ms 2)",
    "unbatched": "leptonc serve, batching off (--max-batch 1)",
    "fastapi": "FastAPI + ONNX Runtime, one request at a time",
    "ort-serve": "ONNX Runtime behind leptonc serve's logic, batching on",
}
HEADER_LENGTH = "Inference-Header-Content-Length"
DISTINCT_INPUTS = 8


# ---- models -------------------------------------------------------------------------------------------------

class _Pair(nn.Module):
    """A transformers model taking its inputs by name and returning (last hidden state, pooled output)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def pair(self, y):
        return y.last_hidden_state, y.pooler_output


class _Bert(_Pair):
    def forward(self, input_ids, attention_mask):
        return self.pair(self.inner(input_ids=input_ids, attention_mask=attention_mask))


class _ResNet(_Pair):
    def forward(self, pixel_values):
        return self.pair(self.inner(pixel_values=pixel_values))


def build_model(name: str, workdir: Path) -> tuple[Path, Path]:
    """(ONNX path, artifact path): the model (returning its last hidden state and pooled output) exported to ONNX
    and compiled by leptonc (cpu target), both with a symbolic batch dim, both files in `workdir`."""
    import leptonc
    from tests import model_zoo

    batch = torch.export.Dim("batch", min=1, max=64)
    if name == "bert":
        module, example = model_zoo.bert()
        wrapped = _Bert(module).eval()
    elif name == "resnet50":
        module, example = model_zoo.resnet50()
        wrapped = _ResNet(module).eval()
    else:
        raise SystemExit(f"unknown model {name!r}: choose from bert, resnet50")
    onnx_path, lep_path = workdir / f"{name}.onnx", workdir / f"{name}.lep"
    if not onnx_path.exists():
        names, outputs = list(inspect.signature(wrapped.forward).parameters), ["last_hidden_state", "pooler_output"]
        with torch.no_grad():
            torch.onnx.export(wrapped, example, str(onnx_path), input_names=names, output_names=outputs,
                              opset_version=17, dynamo=False, dynamic_axes={n: {0: "batch"} for n in names + outputs})
    if not lep_path.exists():  # (from torch: the ONNX graph's shape arithmetic on the batch dim stays dynamic)
        pair = tuple(torch.cat([x, x]) for x in example)  # (torch.export takes a batch of 1 for a constant)
        leptonc.compile(wrapped, pair, dynamic_shapes=tuple({0: batch} for _ in pair), quiet=True).save(lep_path)
    return onnx_path, lep_path


def request_inputs(name: str, count: int) -> list[list[np.ndarray]]:
    """`count` distinct batch-1 inputs for the model."""
    rng = np.random.default_rng(0)
    if name == "bert":
        cases = []
        for i in range(count):
            ids = rng.integers(0, 30522, (1, 128), dtype=np.int64)
            mask = np.ones((1, 128), np.int64)
            mask[:, 128 - 16 * (i % 4):] = 0  # a different padding per input
            cases.append([ids, mask])
        return cases
    return [[rng.standard_normal((1, 3, 224, 224), dtype=np.float32)] for _ in range(count)]


# ---- the protocol: binary KServe v2 --------------------------------------------------------------------------

_V2 = {np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64"}
_NP = {v: k for k, v in _V2.items()}


def encode_request(names: list[str], arrays: list[np.ndarray]) -> tuple[bytes, dict]:
    header = {"inputs": [{"name": n, "shape": list(a.shape), "datatype": _V2[a.dtype],
                          "parameters": {"binary_data_size": a.nbytes}} for n, a in zip(names, arrays)],
              "parameters": {"binary_data_output": True}}
    text = json.dumps(header).encode()
    return text + b"".join(a.tobytes() for a in arrays), {"Content-Type": "application/octet-stream",
                                                           HEADER_LENGTH: str(len(text))}


def decode_tensors(body: bytes, header_length: str | None, key: str) -> list[np.ndarray]:
    """The arrays of a binary v2 body's `key` ("inputs" or "outputs"), in order."""
    if header_length is None:
        raise ValueError(f"a binary v2 body needs the {HEADER_LENGTH} header")
    n = int(header_length)
    header, offset, arrays = json.loads(body[:n]), n, []
    for t in header[key]:
        size = t["parameters"]["binary_data_size"]
        arrays.append(np.frombuffer(body[offset:offset + size], _NP[t["datatype"]]).reshape(t["shape"]))
        offset += size
    if offset != len(body):
        raise ValueError(f"binary v2 body: {len(body) - offset} bytes past its tensors")
    return arrays


def encode_response(names: list[str], arrays: list[np.ndarray]) -> tuple[bytes, dict]:
    header = {"outputs": [{"name": n, "shape": list(a.shape), "datatype": _V2[a.dtype],
                           "parameters": {"binary_data_size": a.nbytes}} for n, a in zip(names, arrays)]}
    text = json.dumps(header).encode()
    return text + b"".join(np.ascontiguousarray(a).tobytes() for a in arrays), {HEADER_LENGTH: str(len(text))}


def close_enough(y: np.ndarray, ref: np.ndarray) -> bool:
    """docs/design.md's tolerance: max|y - ref| <= 1e-4 * max(1, max|ref|)."""
    return y.shape == ref.shape and float(np.max(np.abs(y - ref))) <= 1e-4 * max(1.0, float(np.max(np.abs(ref))))


# ---- the servers ---------------------------------------------------------------------------------------------

class OrtModel:
    """An ONNX Runtime session with the interface leptonc serve calls: `signature` and `run(*inputs)`."""

    def __init__(self, onnx_path: str, signature: dict):
        import onnxruntime as ort

        self.session, self.signature = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]), signature
        self.inputs = [i.name for i in self.session.get_inputs()]

    def run(self, *arrays):
        return self.session.run(None, dict(zip(self.inputs, arrays)))


def fastapi_app(name: str, onnx_path: str):
    """The baseline: FastAPI, one ONNX Runtime call per request, on FastAPI's thread pool."""
    import onnxruntime as ort
    from fastapi import FastAPI, Request, Response
    from fastapi.concurrency import run_in_threadpool

    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    input_names, outputs = [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]
    app = FastAPI()

    @app.get("/v2/health/ready")
    def ready():
        return {}

    @app.post(f"/v2/models/{name}/infer")
    async def infer(request: Request):
        body = await request.body()
        inputs = decode_tensors(body, request.headers.get(HEADER_LENGTH), "inputs")
        ys = await run_in_threadpool(session.run, None, dict(zip(input_names, inputs)))
        content, headers = encode_response(outputs, ys)
        return Response(content, headers=headers, media_type="application/octet-stream")

    return app


def serve_in_process(args) -> None:
    """The server side of `fastapi` and `ort-serve` (this file run again, as its own process)."""
    import uvicorn

    if args.serve == "fastapi":
        app = fastapi_app(args.name, args.onnx)
    else:
        import leptonc
        from leptonc.serve.app import ServeConfig, make_app

        app = make_app({args.name: OrtModel(args.onnx, leptonc.load(args.lep).signature)},
                       ServeConfig(max_batch=32, max_delay_ms=2.0))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(system: str, name: str, onnx_path: Path, lep_path: Path, port: int) -> list[str]:
    if system in ("batched", "unbatched"):
        batch = ["--max-batch", "32", "--max-delay-ms", "2"] if system == "batched" else ["--max-batch", "1"]
        return [str(Path(sys.executable).with_name("leptonc")), "serve", f"{name}={lep_path}", "--port", str(port), *batch]
    return [sys.executable, __file__, "--serve", system, "--name", name, "--onnx", str(onnx_path),
            "--lep", str(lep_path), "--port", str(port)]


def wait_ready(proc: subprocess.Popen, port: int, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode} before it was ready")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/v2/health/ready")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the server on port {port} was not ready within {timeout_s:g} s")


# ---- the load ------------------------------------------------------------------------------------------------

def load(port: int, path: str, requests: list[tuple[bytes, dict]], expected: list[list[np.ndarray]],
         clients: int, seconds: float) -> dict:
    """A closed loop of `clients` threads for `seconds`: throughput, latency percentiles, errors, wrong answers."""
    latencies, errors, wrong, lock = [], [0], [0], threading.Lock()
    start = time.monotonic()
    deadline = start + seconds

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        i = k
        while time.monotonic() < deadline:
            body, headers = requests[i % len(requests)]
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body, headers)
                response = conn.getresponse()
                data = response.read()
                elapsed = time.perf_counter() - t0
                ok = response.status == 200
                got = decode_tensors(data, response.getheader(HEADER_LENGTH), "outputs") if ok else None
            except (OSError, http.client.HTTPException, ValueError, KeyError):
                conn.close()
                conn, ok = http.client.HTTPConnection("127.0.0.1", port, timeout=120), False
            if not ok:
                with lock:
                    errors[0] += 1
                i += clients
                continue
            ref = expected[i % len(expected)]
            right = len(got) == len(ref) and all(close_enough(y, r) for y, r in zip(got, ref))
            with lock:
                latencies.append(elapsed)
                wrong[0] += not right
            i += clients
        conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    ms = np.array(latencies) * 1e3 if latencies else np.array([np.nan])
    return {"requests": len(latencies), "rps": len(latencies) / wall, "p50": float(np.percentile(ms, 50)),
            "p99": float(np.percentile(ms, 99)), "errors": errors[0], "wrong": wrong[0]}


def run_system(system: str, name: str, files, requests, expected, clients: int, seconds: float) -> dict:
    onnx_path, lep_path = files
    port = free_port()
    proc = subprocess.Popen(server_command(system, name, onnx_path, lep_path, port), cwd=ROOT,
                            stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_ready(proc, port)
        path = f"/v2/models/{name}/infer"
        warm = load(port, path, requests, expected, clients, min(2.0, seconds))  # (first calls, thread pools)
        if warm["requests"] == 0:
            raise SystemExit(f"{system}/{name}: no request succeeded while warming up ({warm['errors']} errors)")
        return load(port, path, requests, expected, clients, seconds)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="bert,resnet50")
    p.add_argument("--systems", default=",".join(SYSTEMS), help=f"from {', '.join(SYSTEMS)}")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--workdir", help="where the ONNX files and artifacts are kept (default: a temp dir)")
    p.add_argument("--out", help="write the markdown table here")
    for hidden in ("--serve", "--name", "--onnx", "--lep"):
        p.add_argument(hidden, help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        return serve_in_process(args)

    import leptonc

    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    for s in systems:
        if s not in SYSTEMS:
            raise SystemExit(f"unknown system {s!r}: choose from {', '.join(SYSTEMS)}")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="leptonc-serve-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    rows = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        onnx_path, lep_path = build_model(name, workdir)
        cm = leptonc.load(lep_path)
        cases = request_inputs(name, DISTINCT_INPUTS)
        expected = [cm.run(*xs) for xs in cases]
        requests = [encode_request([t["name"] for t in cm.signature["inputs"]], xs) for xs in cases]
        del cm
        for system in systems:
            r = run_system(system, name, (onnx_path, lep_path), requests, expected, args.clients, args.seconds)
            r.update(model=name, system=system, load=os.getloadavg()[0])
            rows.append(r)
            print(f"{name:9s} {system:10s} {r['rps']:7.1f} req/s  p50 {r['p50']:7.1f} ms  p99 {r['p99']:7.1f} ms  "
                  f"errors {r['errors']}  wrong {r['wrong']}  (load {r['load']:.2f})", flush=True)
    table = markdown(rows)
    print(table)
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}; "
          f"after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.out:
        Path(args.out).write_text(table + "\n")


def markdown(rows: list[dict]) -> str:
    base = {r["model"]: r for r in rows if r["system"] == "fastapi"}
    lines = ["| model | system | req/s | vs FastAPI+ORT | p50 ms | p99 ms | requests | errors | wrong | load (1 min) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        b = base.get(r["model"])
        ratio = f"{r['rps'] / b['rps']:.2f}x" if b and b["rps"] else "-"
        lines.append(f"| {r['model']} | {SYSTEMS[r['system']]} | {r['rps']:.1f} | {ratio} | {r['p50']:.1f} | "
                     f"{r['p99']:.1f} | {r['requests']} | {r['errors']} | {r['wrong']} | {r['load']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
