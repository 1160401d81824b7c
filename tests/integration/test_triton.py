"""TritonBackend against the real Triton server (deploy/triton/triton.sh) on loopback.

The module fixture starts a server of its own (free ports, a temporary data dir;
the venv is shared) and stops it at the end.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
import tritonclient.http.aio as http_aio

from inference.frames import FrameModel, FrameScorer, open_nsfw
from inference.onnx_backend import EmbeddedOnnxBackend
from inference.triton_backend import CircuitBreaker, TritonBackend
from pipeline.errors import (
    BackendUnavailable,
    CircuitOpen,
    InferenceTimeout,
    ModelNotFound,
    SignatureMismatch,
)

pytestmark = [
    pytest.mark.triton,
    # tritonclient's HTTP aio client posts tensors as raw bytes; aiohttp warns above 1 MiB.
    pytest.mark.filterwarnings("ignore:Sending a large body directly:ResourceWarning"),
]

ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-4
VARIANTS = [("grpc", False), ("http", False), ("http", True)]


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@dataclass
class TritonServer:
    env: dict[str, str]
    data: Path
    http_port: int
    grpc_port: int

    def script(self, *args: str, timeout_s: float = 300) -> None:
        cmd = [str(ROOT / "deploy" / "triton" / "triton.sh"), *args]
        subprocess.run(cmd, env=self.env, check=True, timeout=timeout_s)

    @property
    def pid(self) -> int:
        return int((self.data / "triton.pid").read_text())

    def url(self, protocol: str) -> str:
        return f"127.0.0.1:{self.grpc_port if protocol == 'grpc' else self.http_port}"

    def backend(self, protocol: str, shared_memory: bool = False, **kw: Any) -> TritonBackend:
        kind: Literal["grpc", "http"] = "grpc" if protocol == "grpc" else "http"
        return TritonBackend(self.url(protocol), kind, shared_memory=shared_memory, **kw)

    async def counts(self, model: str) -> tuple[int, int]:
        """(inference_count, execution_count) from the server's statistics."""
        client = http_aio.InferenceServerClient(self.url("http"))
        try:
            (stats,) = (await client.get_inference_statistics(model))["model_stats"]
        finally:
            await client.close()
        return int(stats["inference_count"]), int(stats["execution_count"])


def serve_triton(
    tmp_path_factory: pytest.TempPathFactory, **extra_env: str
) -> Iterator[TritonServer]:
    """A Triton server of its own (free ports, a temporary data dir) for a module's fixture."""
    http, grpc, metrics = free_ports(3)
    data = tmp_path_factory.mktemp("triton")
    env = os.environ | {
        "TRITON_HTTP_PORT": str(http),
        "TRITON_GRPC_PORT": str(grpc),
        "TRITON_METRICS_PORT": str(metrics),
        "TRITON_DATA_DIR": str(data),
        **extra_env,
    }
    server = TritonServer(env, data, http, grpc)
    server.script("up")
    yield server
    server.script("down", timeout_s=60)


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    yield from serve_triton(tmp_path_factory, TRITON_MODELS="open_nsfw")


@pytest.fixture(scope="module")
def model() -> FrameModel:
    return open_nsfw()


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """Noise, gradients and flat colours: scores spread over the range."""
    rng = np.random.default_rng(7)
    out = [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(4)]
    ramp = np.linspace(0, 255, 320, dtype=np.float32)[None, :, None]
    out += [np.broadcast_to(ramp * c, (240, 320, 3)).astype(np.uint8) for c in (0.3, 1.0)]
    out += [np.full((180, 320, 3), value, dtype=np.uint8) for value in ((40, 80, 200), 230)]
    return out


@pytest.fixture(scope="module")
def expected(model: FrameModel, frames: list[np.ndarray]) -> list[float]:
    async def score() -> list[float]:
        backend = EmbeddedOnnxBackend({model.name: model.onnx_path})
        try:
            return [s["nsfw"] for s in await FrameScorer(backend, model).score(frames)]
        finally:
            await backend.close()

    return asyncio.run(score())


def our_shm_segments() -> set[str]:
    return {name for name in os.listdir("/dev/shm") if name.startswith(f"sw{os.getpid()}_")}


@pytest.mark.parametrize(("protocol", "shared_memory"), VARIANTS)
@pytest.mark.parametrize("max_batch", [1, 8])
async def test_same_scores_as_embedded(
    triton: TritonServer,
    model: FrameModel,
    frames: list[np.ndarray],
    expected: list[float],
    protocol: str,
    shared_memory: bool,
    max_batch: int,
) -> None:
    backend = triton.backend(protocol, shared_memory)
    try:
        scores = await FrameScorer(backend, model, max_batch=max_batch).score(frames)
        again = await FrameScorer(backend, model, max_batch=max_batch).score(frames[::-1])
    finally:
        await backend.close()
    got = [s["nsfw"] for s in scores]
    assert np.allclose(got, expected, rtol=0, atol=TOLERANCE), (got, expected)
    assert np.allclose([s["nsfw"] for s in again], expected[::-1], rtol=0, atol=TOLERANCE)
    assert not our_shm_segments()  # close() unlinked every region


@pytest.mark.parametrize(("protocol", "shared_memory"), VARIANTS)
async def test_concurrent_calls_are_batched_and_kept_apart(
    triton: TritonServer,
    model: FrameModel,
    frames: list[np.ndarray],
    expected: list[float],
    protocol: str,
    shared_memory: bool,
) -> None:
    """One frame per call, all at once: the server joins them; each gets its own score."""
    backend = triton.backend(protocol, shared_memory)
    scorer = FrameScorer(backend, model, max_batch=1)
    before = await triton.counts(model.name)
    try:
        results = await asyncio.gather(*(scorer.score([frame]) for frame in frames * 2))
    finally:
        await backend.close()
    got = [scores["nsfw"] for (scores,) in results]
    assert np.allclose(got, expected * 2, rtol=0, atol=TOLERANCE)
    deadline = time.monotonic() + 5  # the server updates its statistics just after replying
    while True:
        after = await triton.counts(model.name)
        inferences, executions = after[0] - before[0], after[1] - before[1]
        if inferences >= len(got) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert inferences == len(got)
    assert executions < inferences  # dynamic batches: several requests per session.run


@pytest.mark.parametrize(("protocol", "shared_memory"), VARIANTS)
async def test_bad_requests_fail_fast(
    triton: TritonServer, model: FrameModel, protocol: str, shared_memory: bool
) -> None:
    backend = triton.backend(protocol, shared_memory, timeout_s=5)
    good = model.input.empty_batch(2)
    try:
        for name, inputs, error in [
            ("no_such_model", {model.input.name: good}, ModelNotFound),
            (model.name, {model.input.name: good[:, :100]}, SignatureMismatch),
            (model.name, {model.input.name: good.astype(np.float64)}, SignatureMismatch),
            (model.name, {"image": good}, SignatureMismatch),
            (model.name, {model.input.name: model.input.empty_batch(33)}, SignatureMismatch),
        ]:
            started = time.monotonic()
            with pytest.raises(error):
                await backend.infer(name, inputs)
            assert time.monotonic() - started < 1.0, name
        outputs = await backend.infer(model.name, {model.input.name: np.zeros_like(good)})
        assert outputs[model.output_name].shape == (2, 2)
    finally:
        await backend.close()


async def test_hung_server_times_out(triton: TritonServer, model: FrameModel) -> None:
    backend = triton.backend("grpc", timeout_s=0.5)
    batch = {model.input.name: np.zeros(model.input.batch_shape(1), dtype=np.float32)}
    try:
        await backend.infer(model.name, batch)  # config cached while the server answers
        os.kill(triton.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(InferenceTimeout):
                await backend.infer(model.name, batch)
            assert time.monotonic() - started < 1.5
        finally:
            os.kill(triton.pid, signal.SIGCONT)
        await backend.infer(model.name, batch)
    finally:
        await backend.close()


@pytest.mark.parametrize(("protocol", "shared_memory"), [("grpc", False), ("http", True)])
async def test_server_killed_and_restarted_loses_nothing(
    triton: TritonServer,
    model: FrameModel,
    frames: list[np.ndarray],
    expected: list[float],
    protocol: str,
    shared_memory: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="inference.triton_backend")
    backend = triton.backend(
        protocol,
        shared_memory,
        retries=60,
        backoff_ms=50,
        backoff_max_ms=250,
        circuit_failures=1000,
        timeout_s=10,
    )
    scorer = FrameScorer(backend, model, max_batch=2)
    order = [i % len(frames) for i in range(40)]
    done = 0

    async def calls() -> list[float]:
        nonlocal done
        scores = []
        for start in range(0, len(order), 2):
            chunk = [frames[i] for i in order[start : start + 2]]
            scores += [s["nsfw"] for s in await scorer.score(chunk)]
            done += 1
        return scores

    async def kill_and_restart() -> None:
        while done < 3:
            await asyncio.sleep(0.005)
        old = triton.pid
        os.kill(old, signal.SIGKILL)
        await asyncio.sleep(0.3)  # calls fail meanwhile
        await asyncio.to_thread(triton.script, "up")
        assert triton.pid != old

    try:
        scores, _ = await asyncio.wait_for(asyncio.gather(calls(), kill_and_restart()), 90)
    finally:
        await backend.close()
    assert len(scores) == len(order)
    assert np.allclose(scores, [expected[i] for i in order], rtol=0, atol=TOLERANCE)
    assert any("triton retry" in r.getMessage() for r in caplog.records)  # it did retry
    assert not our_shm_segments()


async def test_shared_memory_is_registered_again_after_a_restart(
    triton: TritonServer, model: FrameModel, frames: list[np.ndarray], expected: list[float]
) -> None:
    """The server forgets registrations when it restarts between two calls."""
    backend = triton.backend("grpc", shared_memory=True, retries=10, backoff_ms=50)
    scorer = FrameScorer(backend, model, max_batch=4)
    try:
        first = await scorer.score(frames)
        os.kill(triton.pid, signal.SIGKILL)
        await asyncio.to_thread(triton.script, "up")
        second = await scorer.score(frames)
    finally:
        await backend.close()
    for scores in (first, second):
        assert np.allclose([s["nsfw"] for s in scores], expected, rtol=0, atol=TOLERANCE)
    assert not our_shm_segments()


@pytest.mark.parametrize("protocol", ["grpc", "http"])
async def test_circuit_opens_on_a_dead_port(model: FrameModel, protocol: str) -> None:
    (port,) = free_ports(1)
    backend = TritonBackend(
        f"127.0.0.1:{port}",
        "grpc" if protocol == "grpc" else "http",
        retries=1,
        backoff_ms=10,
        circuit_failures=3,
        circuit_reset_s=0.3,
    )
    batch = {model.input.name: model.input.empty_batch(1)}
    try:
        for _ in range(2):  # 2 attempts, then 1 more: the third failure opens the circuit
            with pytest.raises(BackendUnavailable) as info:
                await backend.infer(model.name, batch)
            assert not isinstance(info.value, CircuitOpen)
        assert backend.breaker.state == "open"
        started = time.monotonic()
        for _ in range(20):
            with pytest.raises(CircuitOpen):
                await backend.infer(model.name, batch)
        assert time.monotonic() - started < 0.05  # no connection attempted
        await asyncio.sleep(0.35)
        assert backend.breaker.state == "half-open"
        with pytest.raises(BackendUnavailable) as info:  # the probe goes out, fails
            await backend.infer(model.name, batch)
        assert not isinstance(info.value, CircuitOpen)
        with pytest.raises(CircuitOpen):
            await backend.infer(model.name, batch)
    finally:
        await backend.close()


def test_circuit_breaker_states() -> None:
    now = [0.0]
    breaker = CircuitBreaker(2, 5.0, clock=lambda: now[0])
    breaker.record(ok=False, probe=breaker.before_call())
    breaker.record(ok=True, probe=breaker.before_call())  # success resets the count
    for _ in range(2):
        breaker.record(ok=False, probe=breaker.before_call())
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    now[0] = 5.0
    assert breaker.before_call() is True  # the one half-open probe
    with pytest.raises(CircuitOpen):
        breaker.before_call()  # others still fail fast while it is out
    breaker.record(ok=True, probe=True)
    assert breaker.state == "closed"
