"""Remote backend: a Triton Inference Server over gRPC or HTTP (asyncio clients).

Each model's config is fetched once and cached; requests are checked against
it with :func:`~inference.backend.check_inputs` before anything is sent. Every
server call has a timeout (``timeout_s``); UNAVAILABLE / connection errors
are retried with exponential backoff; a circuit breaker fails fast after
``circuit_failures`` consecutive failures and lets one probe through after
``circuit_reset_s``. With ``shared_memory=True`` (server on this host) tensors
travel through system shared memory regions (see :mod:`inference._triton_shm`).

Errors (all :class:`~pipeline.errors.InferenceError`): ``ModelNotFound``,
``SignatureMismatch``, ``InferenceTimeout``, ``BackendUnavailable`` and its
subclass ``CircuitOpen``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import aiohttp
import numpy as np
import tritonclient.grpc.aio as grpc_aio
import tritonclient.http.aio as http_aio
from tritonclient.utils import InferenceServerException, np_to_triton_dtype, triton_to_np_dtype

from inference._circuit import CircuitBreaker
from inference._triton_shm import ShmPool, ShmRegion, capacity_for
from inference.backend import TensorSpec, check_inputs
from pipeline.errors import (
    BackendUnavailable,
    ConfigError,
    InferenceError,
    InferenceTimeout,
    ModelNotFound,
    SignatureMismatch,
)

__all__ = ["CircuitBreaker", "ServedModel", "TritonBackend"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_INT32_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class ServedModel:
    """A model's signature as the server declares it (``max_batch_size`` 0: no batch dim)."""

    max_batch_size: int
    inputs: tuple[TensorSpec, ...]
    outputs: dict[str, tuple[tuple[int, ...], np.dtype]]  # dims without batch; -1 = any


def _parse_config(model: str, config: Mapping[str, Any]) -> ServedModel:
    def tensors(key: str) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        return {
            t["name"]: (
                tuple(int(d) for d in t.get("dims", [])),
                np.dtype(triton_to_np_dtype(t["data_type"].removeprefix("TYPE_"))),
            )
            for t in config.get(key, [])
        }

    batch = int(config.get("max_batch_size", 0))
    lead: tuple[None, ...] = (None,) if batch > 0 else ()
    inputs = tuple(
        TensorSpec(name, (*lead, *(None if d < 0 else d for d in dims)), dtype)
        for name, (dims, dtype) in tensors("input").items()
    )
    return ServedModel(batch, inputs, tensors("output"))


def _classify(exc: Exception, model: str) -> InferenceError:
    """Map a client exception to the narrowest InferenceError."""
    if isinstance(exc, InferenceError):
        return exc
    if isinstance(exc, TimeoutError):  # asyncio.timeout, aiohttp.ServerTimeoutError
        return InferenceTimeout(f"model {model!r}: no answer in time ({exc!r})")
    if isinstance(exc, aiohttp.ClientConnectionError | ConnectionError):
        return BackendUnavailable(f"model {model!r}: connection failed: {exc!r}")
    if not isinstance(exc, InferenceServerException):
        return InferenceError(f"model {model!r}: {type(exc).__name__}: {exc}")
    status, message = str(exc.status() or ""), str(exc.message() or "")
    text = f"model {model!r}: Triton said [{status}] {message}"
    if status == "StatusCode.DEADLINE_EXCEEDED":
        return InferenceTimeout(text)
    if status in ("StatusCode.UNAVAILABLE", "502", "503", "504"):
        return BackendUnavailable(text)
    if "find shared memory region" in message:  # registrations lost: the server restarted
        return BackendUnavailable(text)
    if "shared memory" in message:
        return InferenceError(f"{text} (shared_memory=True needs the server on this host)")
    if status in ("StatusCode.NOT_FOUND", "404") or "unknown model" in message:
        return ModelNotFound(text)
    if "unexpected shape" in message or "datatype" in message:
        return SignatureMismatch(text)
    return InferenceError(text)


class TritonBackend:
    """:class:`~inference.backend.InferenceBackend` on a Triton server at ``url`` (host:port)."""

    name = "triton"

    def __init__(
        self,
        url: str,
        protocol: Literal["grpc", "http"] = "grpc",
        *,
        timeout_s: float = 10,
        retries: int = 3,
        backoff_ms: int = 100,
        backoff_max_ms: int = 2000,
        shared_memory: bool = False,
        circuit_failures: int = 5,
        circuit_reset_s: float = 10,
    ) -> None:
        if "://" in url or ":" not in url:
            raise ConfigError(f"Triton url must be host:port without a scheme, got {url!r}")
        if protocol not in ("grpc", "http"):
            raise ConfigError(f"protocol must be 'grpc' or 'http', got {protocol!r}")
        if timeout_s <= 0 or retries < 0 or backoff_ms < 0 or backoff_max_ms < backoff_ms:
            raise ConfigError("need timeout_s > 0, retries >= 0, 0 <= backoff_ms <= backoff_max_ms")
        self.url, self.protocol, self.timeout_s = url, protocol, timeout_s
        self.retries, self.backoff_ms, self.backoff_max_ms = retries, backoff_ms, backoff_max_ms
        self.shared_memory = shared_memory
        self.breaker = CircuitBreaker(circuit_failures, circuit_reset_s)
        self._api: Any = grpc_aio if protocol == "grpc" else http_aio
        self._client: Any = None
        self._models: dict[str, ServedModel] = {}
        self._pool = ShmPool()
        self._closed = False

    def _connect(self) -> Any:  # lazily: both clients must be made inside a running loop
        if self._client is None:
            if self.protocol == "http":
                self._client = http_aio.InferenceServerClient(self.url, conn_timeout=self.timeout_s)
            else:
                backoff = [("grpc.initial_reconnect_backoff_ms", max(self.backoff_ms, 10))]
                backoff += [("grpc.min_reconnect_backoff_ms", max(self.backoff_ms, 10))]
                backoff += [("grpc.max_reconnect_backoff_ms", max(self.backoff_max_ms, 10))]
                sizes = [("grpc.max_send_message_length", _INT32_MAX)]
                sizes += [("grpc.max_receive_message_length", _INT32_MAX)]
                self._client = grpc_aio.InferenceServerClient(
                    self.url, channel_args=sizes + backoff
                )
        return self._client

    def _kw(self) -> dict[str, Any]:
        return {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}

    async def _call(self, model: str, fn: Callable[[Any], Awaitable[T]]) -> T:
        """``fn(client)`` under the timeout, the retry policy and the circuit breaker."""
        attempt = 0
        while True:
            if self._closed:
                raise InferenceError(f"backend {self.name} ({self.url}) is closed")
            probe = self.breaker.before_call()
            try:
                async with asyncio.timeout(self.timeout_s):
                    result = await fn(self._connect())
            except Exception as exc:
                error = _classify(exc, model)
                down = isinstance(error, BackendUnavailable | InferenceTimeout)
                self.breaker.record(ok=not down, probe=probe)  # an answer means the server is up
                if isinstance(error, ModelNotFound):
                    self._models.pop(model, None)  # unloaded since: fetch its config again
                if isinstance(error, BackendUnavailable):
                    self._pool.invalidate()
                    if attempt < self.retries and self.breaker.state == "closed":
                        delay_ms = min(self.backoff_ms * 2**attempt, self.backoff_max_ms)
                        log.warning(
                            "triton retry model=%s attempt=%d delay_ms=%d error=%s",
                            model, attempt + 1, delay_ms, error,
                        )  # fmt: skip
                        attempt += 1
                        await asyncio.sleep(delay_ms / 1000)
                        continue
                raise error from exc
            except BaseException:  # cancelled: free the half-open probe slot, count nothing
                self.breaker.record(ok=None, probe=probe)
                raise
            self.breaker.record(ok=True, probe=probe)
            return result

    async def served_model(self, model: str) -> ServedModel:
        """The served model's signature, fetched once (ModelNotFound if not served)."""
        info = self._models.get(model)
        if info is None:

            async def fetch(client: Any) -> Any:
                if self.protocol == "grpc":
                    response = await client.get_model_config(model, as_json=True, **self._kw())
                    return response["config"]
                return await client.get_model_config(model)

            info = self._models[model] = _parse_config(model, await self._call(model, fetch))
            log.info(
                "triton model=%s max_batch=%d inputs=%s", model, info.max_batch_size, info.inputs
            )
        return info

    async def infer(self, model: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        info = await self.served_model(model)
        try:
            check_inputs(model, info.inputs, inputs)
        except InferenceError as exc:
            raise SignatureMismatch(str(exc)) from exc
        batch = int(next(iter(inputs.values())).shape[0]) if info.max_batch_size else 1
        if info.max_batch_size and not 1 <= batch <= info.max_batch_size:
            raise SignatureMismatch(
                f"model {model!r}: batch of {batch}, the server takes 1..{info.max_batch_size}"
            )
        if not self.shared_memory or not info.max_batch_size:
            return await self._call(model, lambda c: self._infer(c, model, info, inputs, None))
        # Regions are keyed by capacity and per-sample input shapes (fixed for image models).
        shapes = {name: (tuple(array.shape[1:]), array.dtype) for name, array in inputs.items()}
        fixed = {name: out for name, out in info.outputs.items() if min(out[0], default=0) >= 0}
        capacity = capacity_for(batch, info.max_batch_size)
        key = (model, capacity, tuple((n, s, str(d)) for n, (s, d) in sorted(shapes.items())))
        region = self._pool.acquire(key, lambda name: ShmRegion(name, capacity, shapes, fixed))
        try:
            region.write(inputs)
            return await self._call(model, lambda c: self._infer(c, model, info, inputs, region))
        finally:
            self._pool.release(key, region)

    async def _infer(
        self,
        client: Any,
        model: str,
        info: ServedModel,
        inputs: Mapping[str, np.ndarray],
        region: ShmRegion | None,
    ) -> dict[str, np.ndarray]:
        batch = int(next(iter(inputs.values())).shape[0]) if info.max_batch_size else 1
        if region is not None and not region.registered:
            # a stale registration from before a restart would make register fail
            with contextlib.suppress(InferenceServerException):
                await client.unregister_system_shared_memory(region.name, **self._kw())
            await client.register_system_shared_memory(
                region.name, region.key, region.byte_size, **self._kw()
            )
            region.registered = True
        requests = []
        for name, array in inputs.items():
            tensor = self._api.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
            if region is None:
                tensor.set_data_from_numpy(array)
            else:
                tensor.set_shared_memory(region.name, array.nbytes, region.inputs[name].offset)
            requests.append(tensor)
        wanted = []
        for name in info.outputs:
            output = self._api.InferRequestedOutput(name)
            if region is not None and name in region.outputs:
                slot = region.outputs[name]
                output.set_shared_memory(region.name, slot.nbytes(batch), slot.offset)
            wanted.append(output)
        result = await client.infer(model, requests, outputs=wanted, **self._kw())
        return {
            name: region.read(name, batch)
            if region is not None and name in region.outputs
            else np.asarray(result.as_numpy(name))
            for name in info.outputs
        }

    async def close(self) -> None:
        """Unregister and unlink shared memory (best effort), then close the client."""
        if self._closed:
            return
        self._closed = True
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        while self._pool.in_use and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)  # calls in flight still read their regions
        client, self._client = self._client, None
        for region in self._pool.drain():
            if region.registered and client is not None:
                try:
                    async with asyncio.timeout(min(self.timeout_s, 2.0)):
                        await client.unregister_system_shared_memory(region.name, **self._kw())
                except Exception as exc:  # server gone: nothing left to unregister
                    log.info("triton unregister region=%s failed: %r", region.name, exc)
            region.destroy()
        if client is not None:
            await client.close()
