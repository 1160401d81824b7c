"""CommitGuard on faust's real consumer: only processed inputs become committable."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any
from weakref import WeakSet

import pytest
from faust.transport.consumer import Consumer as FaustConsumer
from faust.types import TP
from faust.types.tuples import ConsumerMessage
from intervaltree import IntervalTree

from pipeline import metrics
from pipeline.commit_guard import CommitGuard
from pipeline.errors import ConfigError

INPUT = "in.segments"


class Bookkeeping:
    """faust's consumer offset bookkeeping, its own methods, without the service around it
    (a faust App's services open event loops and sockets on construction)."""

    ack = FaustConsumer.ack
    _new_offset = FaustConsumer._new_offset
    _add_gap = FaustConsumer._add_gap

    def __init__(self, acking_topics: set[str]) -> None:
        self.app = SimpleNamespace(
            topics=SimpleNamespace(acks_enabled_for=acking_topics.__contains__)
        )
        self._acked: dict[TP, list[int]] = defaultdict(list)
        self._acked_index: dict[TP, set[int]] = defaultdict(set)
        self._gap: dict[TP, IntervalTree] = defaultdict(IntervalTree)
        self._committed_offset: dict[TP, int | None] = defaultdict(lambda: None)
        self._unacked_messages: WeakSet[Any] = WeakSet()
        self._n_acked = 0
        self._waiting_for_ack = None

    def assignment(self) -> set[TP]:
        return set()

    def highwater(self, tp: TP) -> int | None:
        return None

    async def seek(self, tp: TP, offset: int) -> None:
        raise AssertionError("no seek expected")

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        return  # fetching is the seam the tests drive through CommitGuard.wrap_getmany
        yield


@pytest.fixture
def consumer() -> Bookkeeping:
    return Bookkeeping({INPUT, "sw.control"})


def message(topic: str, offset: int, partition: int = 0) -> ConsumerMessage:
    msg = ConsumerMessage(topic, partition, offset, 0.0, 0, None, b"k", b"v", None)
    msg.incref()  # what the conductor does: one stream subscribes to the topic
    return msg


def count(counter: Any, topic: str) -> float:
    return float(counter.labels(topic)._value.get())


def process(guard: CommitGuard, consumer: Any, *offsets: int) -> None:
    for offset in offsets:
        msg = message(INPUT, offset)
        guard.mark_processed(msg)
        assert msg.ack(consumer)


def test_faust_alone_commits_past_an_unprocessed_offset(consumer: Any) -> None:
    """The bug the guard exists for: committed 10, offsets 11-12 acked, 10 never was."""
    tp = TP(INPUT, 0)
    consumer._committed_offset[tp] = 10
    for offset in (11, 12):
        assert message(INPUT, offset).ack(consumer)
    assert consumer._new_offset(tp) == 13


def test_commit_starts_at_the_committed_offset(consumer: Any) -> None:
    guard = CommitGuard([INPUT])
    guard.install(consumer)
    tp = TP(INPUT, 0)
    consumer._committed_offset[tp] = 10
    process(guard, consumer, 11, 12)
    assert consumer._new_offset(tp) is None
    process(guard, consumer, 10)
    assert consumer._new_offset(tp) == 13


async def fetch(guard: CommitGuard, consumer: Any, offsets: list[int]) -> list[int]:
    async def getmany(timeout: float) -> AsyncIterator[tuple[TP, ConsumerMessage]]:
        for offset in offsets:
            yield TP(INPUT, 0), message(INPUT, offset)

    seen = []
    async for _tp, msg in guard.wrap_getmany(consumer, getmany)(timeout=1.0):
        seen.append(msg.offset)
    return seen


async def test_never_committed_partition_starts_at_the_first_fetched_offset(
    consumer: Any,
) -> None:
    """faust treats a committed offset of 0 or none as "anything goes"."""
    guard = CommitGuard([INPUT])
    guard.install(consumer)
    tp = TP(INPUT, 0)
    assert await fetch(guard, consumer, [0, 1, 2, 3, 4]) == [0, 1, 2, 3, 4]
    process(guard, consumer, 3, 4)
    assert consumer._new_offset(tp) is None
    process(guard, consumer, 0, 1, 2)
    assert consumer._new_offset(tp) == 5


def test_skipped_message_is_not_acked(consumer: Any) -> None:
    guard = CommitGuard([INPUT])
    guard.install(consumer)
    before = count(metrics.UNPROCESSED_ACKS_REFUSED, INPUT)
    skipped = message(INPUT, 7)
    assert skipped.ack(consumer) is False  # what faust's stream does with a skipped message
    assert not skipped.acked, "refused: stays unacked, so it is redelivered, not lost"
    assert count(metrics.UNPROCESSED_ACKS_REFUSED, INPUT) == before + 1
    assert not consumer._acked.get(TP(INPUT, 0))


def test_held_reference_delays_the_ack_until_the_last_one(consumer: Any) -> None:
    """The agents hold one extra reference while a batch is in flight (pipeline.app)."""
    guard = CommitGuard([INPUT])
    guard.install(consumer)
    before = count(metrics.UNPROCESSED_ACKS_REFUSED, INPUT)
    msg = message(INPUT, 4)
    msg.incref()
    assert msg.ack(consumer) is False  # take_events' own ack: one reference left
    assert count(metrics.UNPROCESSED_ACKS_REFUSED, INPUT) == before
    guard.mark_processed(msg)
    assert msg.ack(consumer) is True


def test_other_topics_keep_faust_behaviour(consumer: Any) -> None:
    guard = CommitGuard([INPUT])
    guard.install(consumer)
    tp = TP("sw.control", 0)
    consumer._committed_offset[tp] = 10
    assert message("sw.control", 11).ack(consumer)
    assert consumer._new_offset(tp) == 12


class SeekRecorder:
    """What the fetch-time checks read (assignment, high watermarks, committed offsets) and
    the seeks they make."""

    def __init__(self, assigned: set[TP], highwaters: dict[TP, int] | None = None) -> None:
        self.assigned = assigned
        self.highwaters = highwaters or {}
        self._committed_offset: dict[TP, int] = {}
        self.seeks: list[tuple[TP, int]] = []

    def assignment(self) -> set[TP]:
        return self.assigned

    def highwater(self, tp: TP) -> int | None:
        return self.highwaters.get(tp)

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))


async def test_fetch_jump_is_no_gap_and_seeks_back_before_the_next_fetch(consumer: Any) -> None:
    guard = CommitGuard([INPUT])
    guard.install(consumer)
    tp, changelog = TP(INPUT, 2), TP("app-video-changelog", 0)
    before = count(metrics.FETCH_JUMPS, INPUT)
    await consumer._add_gap(tp, 9, 12)  # faust: last read 8, fetched 12
    await consumer._add_gap(tp, 6, 7)
    await consumer._add_gap(changelog, 3, 5)
    assert not consumer._gap.get(tp), "a jump on an input topic must not become a gap"
    assert consumer._gap.get(changelog), "other topics keep faust's gaps"
    assert count(metrics.FETCH_JUMPS, INPUT) == before + 2

    recorder = SeekRecorder({tp})
    getmany = guard.wrap_getmany(recorder, consumer.getmany)
    async for _ in getmany(timeout=1.0):
        pass
    assert recorder.seeks == [(tp, 5)], "one seek, to the earliest jump's last read offset"
    async for _ in getmany(timeout=1.0):
        pass
    assert recorder.seeks == [(tp, 5)], "done once"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_commit_standing_still_behind_the_log_end_is_sought_back() -> None:
    """faust drops re-fetched messages as already read at the log end: no jump follows, only a
    commit that never moves. After ``stall_after_s`` the partition is sought back to it."""
    tp, idle = TP(INPUT, 0), TP(INPUT, 1)
    clock = Clock()
    guard = CommitGuard([INPUT], stall_after_s=10, clock=clock)
    consumer = SeekRecorder({tp, idle}, {tp: 32, idle: 5})
    consumer._committed_offset.update({tp: 18, idle: 5})  # idle: nothing behind its commit
    getmany = guard.wrap_getmany(consumer, Bookkeeping(set()).getmany)
    before = count(metrics.PARTITION_STALLS, INPUT)

    async def tick(after_s: float) -> None:
        clock.now += after_s
        async for _ in getmany(timeout=1.0):
            pass

    await tick(0)
    await tick(9)
    assert consumer.seeks == []
    consumer._committed_offset[tp] = 20  # progress restarts the clock
    await tick(9)
    await tick(9)
    assert consumer.seeks == []
    await tick(2)  # 11 s at 20: sought back at the next fetch
    await tick(0)
    assert consumer.seeks == [(tp, 20)]
    assert count(metrics.PARTITION_STALLS, INPUT) == before + 1
    await tick(5)
    assert consumer.seeks == [(tp, 20)], "the clock restarts after a seek"


def test_a_consumer_without_faust_internals_is_refused() -> None:
    """The guard wraps faust-streaming 0.15.3 internals; another faust must not run unguarded."""
    with pytest.raises(ConfigError, match="_add_gap"):
        CommitGuard([INPUT]).install(SeekRecorder(set()))
