"""MicroBatcher on test doubles: joining, slicing, splitting, backpressure, errors, shutdown.

No assertion depends on timing: a gated backend holds a call open until the test
releases it, so what queues up meanwhile is known exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import numpy as np
import pytest
from prometheus_client import REGISTRY

from inference.batcher import BatchPolicy, MicroBatcher
from inference.testing import FakeBackend, two_class_by_mean
from pipeline.errors import ConfigError, InferenceError


class GatedBackend:
    """Answers like ``two_class_by_mean``, but each call waits for ``gate`` first."""

    name = "gated"

    def __init__(self, *, gated: bool = True) -> None:
        self.gate = asyncio.Event()
        if not gated:
            self.gate.set()
        self.sizes: list[int] = []
        self.started = asyncio.Event()
        self.closed = False
        self._respond = two_class_by_mean("y", low=0.0, high=100.0)

    async def infer(self, model: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.sizes.append(int(next(iter(inputs.values())).shape[0]))
        self.started.set()
        await self.gate.wait()
        return self._respond(inputs)

    async def close(self) -> None:
        self.closed = True


def rows(*values: float, width: int = 3) -> dict[str, np.ndarray]:
    """A request of ``len(values)`` samples; sample ``i`` is filled with ``values[i]``."""
    return {"x": np.repeat(np.asarray(values, np.float32)[:, None], width, axis=1)}


def expected(*values: float) -> np.ndarray:
    p = np.clip(np.asarray(values, np.float32) / 100.0, 0, 1)
    return np.stack([1 - p, p], axis=1)


async def spin(times: int = 20) -> None:
    """Let every ready task run (no wall-clock wait)."""
    for _ in range(times):
        await asyncio.sleep(0)


def samples(model: str, metric: str = "sw_batcher_batch_samples_count") -> float:
    """The metric's value for ``model``, over every backend label."""
    return sum(
        s.value
        for family in REGISTRY.collect()
        for s in family.samples
        if s.name == metric and s.labels.get("model") == model
    )


async def test_concurrent_requests_become_one_call_and_each_gets_its_slice() -> None:
    backend = GatedBackend(gated=False)
    batcher = MicroBatcher(backend, BatchPolicy(max_batch=4, max_wait_ms=60_000))
    results = await asyncio.gather(
        batcher.infer("join", rows(10)),
        batcher.infer("join", rows(20, 30)),
        batcher.infer("join", rows(40)),
    )
    assert backend.sizes == [4]  # full at 4 samples: no waiting for max_wait_ms
    np.testing.assert_allclose(results[0]["y"], expected(10))
    np.testing.assert_allclose(results[1]["y"], expected(20, 30))
    np.testing.assert_allclose(results[2]["y"], expected(40))
    assert samples("join") == 1
    assert samples("join", "sw_batcher_batch_requests_sum") == 3
    await batcher.close()


async def test_zero_wait_sends_a_lone_request_at_once() -> None:
    backend = GatedBackend(gated=False)
    batcher = MicroBatcher(backend, BatchPolicy(max_batch=8, max_wait_ms=0))
    out = await batcher.infer("alone", rows(50))
    np.testing.assert_allclose(out["y"], expected(50))
    assert backend.sizes == [1]
    await batcher.close()


async def test_requests_queue_while_a_call_runs_then_go_in_full_batches() -> None:
    backend = GatedBackend()
    batcher = MicroBatcher(backend, BatchPolicy(max_batch=4, max_wait_ms=0, max_inflight=1))
    first = asyncio.ensure_future(batcher.infer("busy", rows(1)))
    await backend.started.wait()
    later = [asyncio.ensure_future(batcher.infer("busy", rows(float(v)))) for v in range(2, 8)]
    await spin()
    assert backend.sizes == [1]  # one call in flight, six requests queued
    backend.gate.set()
    results = await asyncio.gather(first, *later)
    assert backend.sizes == [1, 4, 2]
    for value, result in zip(range(1, 8), results, strict=True):
        np.testing.assert_allclose(result["y"], expected(value))
    await batcher.close()


async def test_full_queue_makes_callers_wait_and_nothing_is_dropped() -> None:
    backend = GatedBackend()
    policy = BatchPolicy(max_batch=1, max_wait_ms=0, max_queue=2, max_inflight=1)
    batcher = MicroBatcher(backend, policy)
    calls = [asyncio.ensure_future(batcher.infer("bp", rows(float(v)))) for v in range(6)]
    await spin()
    # One call in flight, two requests queued: the other three callers wait for room.
    assert backend.sizes == [1]
    assert (
        REGISTRY.get_sample_value("sw_batcher_queued_requests", {"model": "bp", "backend": "gated"})
        == 2
    )
    assert not any(c.done() for c in calls)
    backend.gate.set()
    results = await asyncio.gather(*calls)
    assert backend.sizes == [1] * 6
    for value, result in enumerate(results):
        np.testing.assert_allclose(result["y"], expected(value))
    assert (
        REGISTRY.get_sample_value("sw_batcher_queued_requests", {"model": "bp", "backend": "gated"})
        == 0
    )
    await batcher.close()


async def test_large_request_is_split_and_joined_back() -> None:
    backend = GatedBackend(gated=False)
    batcher = MicroBatcher(backend, BatchPolicy(max_batch=4, max_wait_ms=0))
    values = [float(v) for v in range(10)]
    out = await batcher.infer("split", rows(*values))
    assert backend.sizes == [4, 4, 2]
    np.testing.assert_allclose(out["y"], expected(*values))
    await batcher.close()


async def test_different_shapes_are_never_joined() -> None:
    backend = GatedBackend()
    batcher = MicroBatcher(backend, BatchPolicy(max_batch=8, max_wait_ms=0))
    first = asyncio.ensure_future(batcher.infer("shapes", rows(1)))
    await backend.started.wait()
    narrow = [asyncio.ensure_future(batcher.infer("shapes", rows(2, width=3))) for _ in range(2)]
    wide = [asyncio.ensure_future(batcher.infer("shapes", rows(3, width=5))) for _ in range(2)]
    await spin()
    backend.gate.set()
    await asyncio.gather(first, *narrow, *wide)
    assert backend.sizes == [1, 2, 2]
    await batcher.close()


async def test_per_model_policy_overrides_the_default() -> None:
    backend = GatedBackend(gated=False)
    batcher = MicroBatcher(
        backend, BatchPolicy(max_batch=8, max_wait_ms=0), per_model={"small": BatchPolicy(2, 0)}
    )
    await batcher.infer("small", rows(1, 2, 3))
    await batcher.infer("big", rows(1, 2, 3))
    assert backend.sizes == [2, 1, 3]
    assert batcher.policy("small").max_batch == 2
    await batcher.close()


async def test_outputs_that_do_not_add_up_fail_every_caller() -> None:
    backend = FakeBackend({"bad": lambda inputs: {"y": np.zeros((1, 2), np.float32)}})
    batcher = MicroBatcher(backend, BatchPolicy(max_batch=4, max_wait_ms=60_000))
    results = await asyncio.gather(
        batcher.infer("bad", rows(1, 2)),
        batcher.infer("bad", rows(3, 4)),
        return_exceptions=True,
    )
    assert len(backend.calls) == 1
    for result in results:
        assert isinstance(result, InferenceError)
        assert "sizes do not add up" in str(result)
    assert samples("bad", "sw_batcher_failed_calls_total") == 1
    await batcher.close()


async def test_backend_error_reaches_the_batch_and_the_batcher_recovers() -> None:
    backend = FakeBackend({"m": two_class_by_mean("y")})
    batcher = MicroBatcher(backend, BatchPolicy(max_batch=2, max_wait_ms=60_000))
    backend.fail_next(InferenceError("backend down"))
    results = await asyncio.gather(
        batcher.infer("m", rows(1)), batcher.infer("m", rows(2)), return_exceptions=True
    )
    assert [str(r) for r in results] == ["backend down", "backend down"]
    ok = await asyncio.gather(batcher.infer("m", rows(1)), batcher.infer("m", rows(2)))
    assert [r["y"].shape for r in ok] == [(1, 2), (1, 2)]
    await batcher.close()


async def test_cancelled_caller_is_not_sent() -> None:
    backend = GatedBackend()
    batcher = MicroBatcher(backend, BatchPolicy(max_batch=8, max_wait_ms=0))
    first = asyncio.ensure_future(batcher.infer("cancel", rows(1)))
    await backend.started.wait()
    doomed = asyncio.ensure_future(batcher.infer("cancel", rows(2)))
    kept = asyncio.ensure_future(batcher.infer("cancel", rows(3)))
    await spin()
    doomed.cancel()
    backend.gate.set()
    await asyncio.gather(first, kept)
    assert backend.sizes == [1, 1]
    assert doomed.cancelled()
    await batcher.close()


async def test_close_finishes_queued_work_then_refuses_and_closes_the_backend() -> None:
    backend = GatedBackend()
    batcher = MicroBatcher(backend, BatchPolicy(max_batch=1, max_wait_ms=0))
    calls = [asyncio.ensure_future(batcher.infer("close", rows(float(v)))) for v in range(3)]
    await backend.started.wait()
    closing = asyncio.ensure_future(batcher.close())
    await spin()
    assert not closing.done()
    with pytest.raises(InferenceError, match="closed"):
        await batcher.infer("close", rows(9))
    backend.gate.set()
    await closing
    assert [c.result()["y"].shape for c in calls] == [(1, 2)] * 3
    assert backend.closed


async def test_close_can_leave_the_backend_open() -> None:
    backend = GatedBackend(gated=False)
    batcher = MicroBatcher(backend, close_backend=False)
    await batcher.close()
    assert not backend.closed


async def test_bad_requests_are_refused_before_queueing() -> None:
    batcher = MicroBatcher(GatedBackend(gated=False))
    with pytest.raises(InferenceError, match="disagree on the batch size"):
        await batcher.infer("m", {"a": np.zeros((2, 3)), "b": np.zeros((3, 3))})
    with pytest.raises(InferenceError, match="batched numpy array"):
        await batcher.infer("m", {"a": np.float32(1.0)})  # type: ignore[dict-item]
    await batcher.close()


def test_policy_validation() -> None:
    with pytest.raises(ConfigError):
        BatchPolicy(max_batch=0)
    with pytest.raises(ConfigError):
        BatchPolicy(max_wait_ms=-1)
    with pytest.raises(ConfigError):
        BatchPolicy(max_queue=0)


async def test_a_crashed_lane_fails_its_callers_and_is_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = GatedBackend(gated=False)
    batcher = MicroBatcher(backend, BatchPolicy(max_batch=4, max_wait_ms=0))

    def broken(lane: object, batch: object) -> bool:
        raise RuntimeError("bug")

    monkeypatch.setattr(batcher, "_take", broken)
    with pytest.raises(InferenceError, match="crashed: bug"):
        await batcher.infer("crash", rows(1))
    monkeypatch.undo()
    out = await batcher.infer("crash", rows(2))
    np.testing.assert_allclose(out["y"], expected(2))
    await batcher.close()
