"""Micro-batching shared by every stream of a worker: many small calls, few big ones.

:class:`MicroBatcher` wraps an :class:`~inference.backend.InferenceBackend` and
is one itself, so scorers do not know it is there. Per model, requests queue
in a *lane*; a lane's worker takes the oldest request, waits up to
``max_wait_ms`` (from that request's arrival) for more with the same input
shapes and dtypes, until ``max_batch`` samples; concatenates them along the
batch axis; makes ONE backend call; checks that every output's first
dimension equals the samples sent; and gives each caller its slice (a view of
the batch output). A request larger than ``max_batch`` is split and its parts
joined back, so no backend call is ever larger than ``max_batch``.

Backpressure: a lane holds at most ``max_queue`` waiting requests; beyond that
``infer`` waits for room (the agents slow down), nothing is dropped. At most
``max_inflight`` calls per model run at once; while they run the next batch
fills up, which is where the batching comes from under load.

A backend error fails every request of that batch with the same exception; a
caller that is cancelled while queued is skipped. :meth:`MicroBatcher.close`
refuses new requests, runs what is queued, waits for calls in flight, then
closes the wrapped backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

from inference.backend import InferenceBackend
from pipeline.errors import ConfigError, InferenceError

__all__ = ["BatchPolicy", "MicroBatcher"]

log = logging.getLogger(__name__)

BATCH_SAMPLES = Histogram(
    "sw_batcher_batch_samples",
    "Samples per backend call made by the micro-batcher",
    ["model", "backend"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
BATCH_REQUESTS = Histogram(
    "sw_batcher_batch_requests",
    "Caller requests joined into one backend call",
    ["model", "backend"],
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
QUEUE_WAIT = Histogram(
    "sw_batcher_queue_wait_seconds",
    "Time a request waited in the batcher before its backend call started",
    ["model", "backend"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
CALL_SECONDS = Histogram(
    "sw_batcher_call_seconds",
    "Duration of one batched backend call",
    ["model", "backend"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
QUEUED = Gauge(
    "sw_batcher_queued_requests", "Requests waiting in the batcher", ["model", "backend"]
)
FAILED_CALLS = Counter(
    "sw_batcher_failed_calls_total", "Batched backend calls that failed", ["model", "backend"]
)


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """How one model's requests are batched; sizes count samples (rows), queue counts requests."""

    max_batch: int = 16
    max_wait_ms: float = 5.0
    max_queue: int = 256
    max_inflight: int = 1

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.max_queue < 1 or self.max_inflight < 1:
            raise ConfigError(f"batch policy sizes must be >= 1: {self}")
        if self.max_wait_ms < 0:
            raise ConfigError(f"max_wait_ms must be >= 0: {self}")


_Key = tuple[tuple[str, tuple[int, ...], str], ...]


@dataclass(eq=False, slots=True)
class _Request:
    inputs: Mapping[str, np.ndarray]
    size: int
    key: _Key
    enqueued_s: float
    future: asyncio.Future[dict[str, np.ndarray]]


@dataclass(eq=False)
class _Lane:
    model: str
    policy: BatchPolicy
    pending: deque[_Request] = field(default_factory=deque)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    inflight: set[asyncio.Task[None]] = field(default_factory=set)
    worker: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.space = asyncio.Semaphore(self.policy.max_queue)
        self.slots = asyncio.Semaphore(self.policy.max_inflight)


def _batch_size(model: str, inputs: Mapping[str, np.ndarray]) -> int:
    sizes = set()
    for name, array in inputs.items():
        if not isinstance(array, np.ndarray) or array.ndim == 0:
            raise InferenceError(f"model {model!r}: input {name!r} must be a batched numpy array")
        sizes.add(array.shape[0])
    if len(sizes) != 1:
        raise InferenceError(f"model {model!r}: inputs disagree on the batch size {sorted(sizes)}")
    return sizes.pop()


def _key(inputs: Mapping[str, np.ndarray]) -> _Key:
    return tuple(sorted((n, tuple(a.shape[1:]), a.dtype.str) for n, a in inputs.items()))


class MicroBatcher:
    """An :class:`InferenceBackend` that joins concurrent requests per model (see module doc).

    ``per_model`` overrides ``default`` for named models. Build it once per
    worker, inside the event loop that will use it, and share it.
    """

    def __init__(
        self,
        backend: InferenceBackend,
        default: BatchPolicy | None = None,
        *,
        per_model: Mapping[str, BatchPolicy] | None = None,
        close_backend: bool = True,
    ) -> None:
        self.backend = backend
        self.default = default or BatchPolicy()
        self.per_model = dict(per_model or {})
        self.name = f"batched:{backend.name}"
        self._close_backend = close_backend
        self._lanes: dict[str, _Lane] = {}
        self._closing = False

    def policy(self, model: str) -> BatchPolicy:
        return self.per_model.get(model, self.default)

    async def infer(self, model: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._closing:
            raise InferenceError(f"backend {self.name} is closed")
        size = _batch_size(model, inputs)
        if size == 0:
            return await self.backend.infer(model, inputs)
        lane = self._lane(model)
        step = lane.policy.max_batch
        futures: list[asyncio.Future[dict[str, np.ndarray]]] = []
        try:
            for start in range(0, size, step):
                part = (
                    inputs
                    if size <= step
                    else {n: a[start : start + step] for n, a in inputs.items()}
                )
                futures.append(await self._enqueue(lane, part, min(step, size - start)))
            results = [await future for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        if len(results) == 1:
            return results[0]
        return {name: np.concatenate([r[name] for r in results]) for name in results[0]}

    def _lane(self, model: str) -> _Lane:
        lane = self._lanes.get(model)
        if lane is None:
            lane = self._lanes[model] = _Lane(model, self.policy(model))
            lane.worker = asyncio.get_running_loop().create_task(
                self._work(lane), name=f"batcher-{model}"
            )
        return lane

    async def _enqueue(
        self, lane: _Lane, inputs: Mapping[str, np.ndarray], size: int
    ) -> asyncio.Future[dict[str, np.ndarray]]:
        await lane.space.acquire()  # backpressure: waits while max_queue requests are queued
        if self._closing:
            lane.space.release()
            raise InferenceError(f"backend {self.name} is closed")
        loop = asyncio.get_running_loop()
        request = _Request(inputs, size, _key(inputs), loop.time(), loop.create_future())
        lane.pending.append(request)
        QUEUED.labels(lane.model, self.backend.name).inc()
        lane.arrived.set()
        return request.future

    def _take(self, lane: _Lane, batch: list[_Request]) -> bool:
        """Move compatible queued requests into ``batch``; True when the batch is full."""
        room = lane.policy.max_batch - sum(r.size for r in batch)
        kept: deque[_Request] = deque()
        full = False
        while lane.pending:
            request = lane.pending.popleft()
            if request.future.done():  # its caller was cancelled: skip it
                self._dequeued(lane)
                continue
            if full or (batch and request.key != batch[0].key):
                kept.append(request)
            elif request.size <= room:
                batch.append(request)
                self._dequeued(lane)
                room -= request.size
                full = room == 0
            else:
                kept.append(request)
                full = True
        lane.pending = kept
        return full

    def _dequeued(self, lane: _Lane) -> None:
        lane.space.release()
        QUEUED.labels(lane.model, self.backend.name).dec()

    async def _collect(self, lane: _Lane) -> list[_Request]:
        loop = asyncio.get_running_loop()
        batch: list[_Request] = []
        while not self._take(lane, batch) and not self._closing:
            if not batch:
                return batch
            remaining = batch[0].enqueued_s + lane.policy.max_wait_ms / 1000 - loop.time()
            if remaining <= 0:
                break
            lane.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lane.arrived.wait(), remaining)
        return batch

    async def _work(self, lane: _Lane) -> None:
        try:
            await self._serve(lane)
        except Exception as exc:  # a bug here must fail the callers, never leave them hanging
            log.exception("batcher lane model=%s crashed", lane.model)
            self._lanes.pop(lane.model, None)  # the next request starts a fresh lane
            crash = InferenceError(f"batcher lane for {lane.model!r} crashed: {exc}")
            while lane.pending:
                request = lane.pending.popleft()
                self._dequeued(lane)
                if not request.future.done():
                    request.future.set_exception(crash)

    async def _serve(self, lane: _Lane) -> None:
        while True:
            while not lane.pending:
                if self._closing:
                    return
                lane.arrived.clear()
                await lane.arrived.wait()
            await lane.slots.acquire()
            batch = await self._collect(lane)
            if not batch:
                lane.slots.release()
                continue
            task = asyncio.get_running_loop().create_task(self._run(lane, batch))
            lane.inflight.add(task)
            task.add_done_callback(lane.inflight.discard)

    async def _run(self, lane: _Lane, batch: list[_Request]) -> None:
        loop = asyncio.get_running_loop()
        total = sum(r.size for r in batch)
        try:
            inputs = batch[0].inputs
            if len(batch) > 1:
                inputs = {n: np.concatenate([r.inputs[n] for r in batch]) for n in inputs}
            started = loop.time()
            for request in batch:
                QUEUE_WAIT.labels(lane.model, self.backend.name).observe(
                    started - request.enqueued_s
                )
            BATCH_SAMPLES.labels(lane.model, self.backend.name).observe(total)
            BATCH_REQUESTS.labels(lane.model, self.backend.name).observe(len(batch))
            outputs = await self.backend.infer(lane.model, inputs)
            CALL_SECONDS.labels(lane.model, self.backend.name).observe(loop.time() - started)
            wrong = {n: a.shape for n, a in outputs.items() if a.ndim == 0 or a.shape[0] != total}
            if wrong:
                raise InferenceError(
                    f"model {lane.model!r}: backend {self.backend.name} returned outputs {wrong} "
                    f"for a batch of {total}; sizes do not add up"
                )
            start = 0
            for request in batch:
                stop = start + request.size
                if not request.future.done():
                    request.future.set_result({n: a[start:stop] for n, a in outputs.items()})
                start = stop
        except asyncio.CancelledError:
            self._fail(lane, batch, InferenceError(f"backend {self.name} closed during the call"))
            raise
        except Exception as exc:
            self._fail(lane, batch, exc)
        finally:
            lane.slots.release()

    def _fail(self, lane: _Lane, batch: list[_Request], exc: Exception) -> None:
        FAILED_CALLS.labels(lane.model, self.backend.name).inc()
        log.warning("batched call model=%s requests=%d failed: %s", lane.model, len(batch), exc)
        for request in batch:
            if not request.future.done():
                request.future.set_exception(exc)

    async def close(self) -> None:
        """Refuse new requests, finish the queued and running ones, close the backend."""
        self._closing = True
        for lane in self._lanes.values():
            lane.arrived.set()
        workers = [lane.worker for lane in self._lanes.values() if lane.worker is not None]
        await asyncio.gather(*workers, return_exceptions=True)
        running = [task for lane in self._lanes.values() for task in lane.inflight]
        await asyncio.gather(*running, return_exceptions=True)
        if self._close_backend:
            await self.backend.close()
