"""Dynamic batching: a bounded queue per model whose requests run together, on a shared thread pool.

A model whose inputs and outputs all lead with one symbolic dim (its batch dim, `protocol.batch_symbol`) runs
the requests that wait for it together: those of the same non-batch shapes and dtypes, up to `max_batch` rows,
collected for at most `max_delay_s` after the first of them arrived (a request of more rows than
`max_batch` runs alone). Their inputs are concatenated along the
batch dim, the model runs once, and its outputs are split back by rows. Should a batch fail (one request's
sizes the model refuses), each of its requests runs alone, so that only the bad one sees the error. Other
models run one request at a time per worker. At most `workers` batches of a model run at once; while they do,
requests accumulate into the next batch.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import Executor

import numpy as np

from ..ir.errors import LeptoncError
from .protocol import RequestError, batch_symbol


class _Request:
    __slots__ = ("inputs", "key", "rows", "future", "queued_at")

    def __init__(self, inputs: list[np.ndarray], batchable: bool, future: asyncio.Future, queued_at: float):
        self.inputs, self.future, self.queued_at = inputs, future, queued_at
        self.key = tuple((a.dtype.str, a.shape[1:]) for a in inputs) if batchable else None
        self.rows = inputs[0].shape[0] if batchable else 1


class ModelQueue:
    """The requests waiting for one model, and the task that runs them in batches."""

    def __init__(self, name: str, model, pool: Executor, metrics, *, max_batch: int, max_delay_s: float,
                 max_queue: int, workers: int):
        self.name, self.model, self.pool, self.metrics = name, model, pool, metrics
        self.batchable = batch_symbol(model.signature) is not None
        self.max_batch, self.max_delay_s, self.max_queue = max_batch, max_delay_s, max_queue
        self._pending: deque[_Request] = deque()  # not yet in a batch
        self._waiting = 0  # requests accepted and not yet running: the pending ones and the next batch's
        self._arrived = asyncio.Event()
        self._slots = asyncio.Semaphore(workers)
        self._running: set[asyncio.Task] = set()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"batcher {self.name}")

    async def stop(self) -> None:
        """Stop collecting, after the batches that run now have finished."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.gather(*self._running, return_exceptions=True)

    async def submit(self, inputs: list[np.ndarray], timeout_s: float) -> list[np.ndarray]:
        """The model's outputs for these (checked) inputs: 503 when the queue is full, 504 past `timeout_s`."""
        if self._waiting >= self.max_queue:
            self._pending = self._live(self._pending)
            if self._waiting >= self.max_queue:
                raise RequestError(f"model '{self.name}' is overloaded: {self.max_queue} requests wait already",
                                   503, {"retry-after": "1"})
        if self.batchable and len({a.shape[0] for a in inputs}) > 1:
            raise RequestError(f"the inputs of model '{self.name}' must agree on their batch dim (dim 0), got "
                               f"{[a.shape[0] for a in inputs]}")
        loop = asyncio.get_running_loop()
        request = _Request(inputs, self.batchable, loop.create_future(), loop.time())
        self._pending.append(request)
        self._waiting += 1
        self.metrics.queued.labels(self.name).set(self._waiting)
        self._arrived.set()
        try:
            return await asyncio.wait_for(request.future, timeout_s)
        except asyncio.TimeoutError:
            raise RequestError(f"model '{self.name}' did not answer within {timeout_s:g} s", 504) from None

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._slots.acquire()
            try:
                batch = await self._collect(loop)
            except BaseException:
                self._slots.release()
                raise
            self._waiting -= len(batch)
            self.metrics.queued.labels(self.name).set(self._waiting)
            task = loop.create_task(self._run(batch, loop))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _collect(self, loop) -> list[_Request]:
        """The next batch: the oldest live request, and those that can join it."""
        while True:
            self._pending = self._live(self._pending)
            if self._pending:
                break
            self._arrived.clear()
            await self._arrived.wait()
        first = self._pending.popleft()
        batch, rows = [first], first.rows
        if not self.batchable:
            return batch
        deadline = first.queued_at + self.max_delay_s
        while True:
            kept = deque()
            for r in self._live(self._pending):
                if r.key == first.key and rows + r.rows <= self.max_batch:
                    batch.append(r)
                    rows += r.rows
                else:
                    kept.append(r)
            self._pending = kept
            remaining = deadline - loop.time()
            if rows >= self.max_batch or remaining <= 0:
                return batch
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    def _live(self, requests: deque[_Request]) -> deque[_Request]:
        """The requests not timed out yet; the others are no longer waiting."""
        live = deque(r for r in requests if not r.future.done())
        self._waiting -= len(requests) - len(live)
        return live

    async def _run(self, batch: list[_Request], loop) -> None:
        try:
            now = loop.time()
            live = [r for r in batch if not r.future.done()]
            for r in live:
                self.metrics.queue_seconds.labels(self.name).observe(now - r.queued_at)
            if not live:
                return
            start = time.perf_counter()
            try:
                results = await loop.run_in_executor(self.pool, self._compute, [r.inputs for r in live])
            except Exception as e:  # noqa: BLE001 (a bug of ours: these requests fail, the others go on)
                results = [e] * len(live)
            self.metrics.compute_seconds.labels(self.name).observe(time.perf_counter() - start)
            self.metrics.batch_rows.labels(self.name).observe(sum(r.rows for r in live))
            for r, result in zip(live, results):
                if r.future.done():
                    continue
                if isinstance(result, BaseException):
                    r.future.set_exception(result)
                else:
                    r.future.set_result(result)
        finally:
            self._slots.release()

    def _compute(self, requests: list[list[np.ndarray]]) -> list:
        """Each request's outputs (or its exception), running them as one batch when there are several."""
        if len(requests) > 1:
            try:
                outputs = self.model.run(*(np.concatenate(xs) for xs in zip(*requests)))
            except LeptoncError:
                pass  # some request's sizes: run each alone, for its own answer
            else:
                ends = np.cumsum([xs[0].shape[0] for xs in requests])[:-1]
                return [list(parts) for parts in zip(*(np.split(y, ends) for y in outputs))]
        return [self._run_one(xs) for xs in requests]

    def _run_one(self, inputs: list[np.ndarray]):
        try:
            return self.model.run(*inputs)
        except LeptoncError as e:
            return RequestError(f"model '{self.name}': {e}")
        except Exception as e:  # noqa: BLE001 (a bug of the model's: this request fails, the server stays up)
            return e
