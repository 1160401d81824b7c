"""Only processed inputs become committable: guards around faust's offset bookkeeping.

Measured here (``tests/integration/test_e2e.py``, SIGTERM and SIGKILL mid-run): faust 0.15.3
committed the input topics past messages that no agent had processed, losing 4-13 of 80
inputs in 3 runs of 4. Three faust behaviours combine:

1. At the end of table recovery faust resumes the input partitions and *then* seeks them to
   the committed offsets while the fetcher is already delivering a batch; the batch then sets
   the read offset past the seek, the re-fetched messages are dropped as already read, and the
   next one looks like a jump in offsets.
2. The fetcher records such a jump as a "gap" (meant for compacted topics and transaction
   markers) and the commit moves over it.
3. A stream acks a message it *skips* (fetched under an older generation, or while flow
   control is suspended for a rebalance) as though it had been processed; and the commit
   accepts acked offsets that start one past the committed offset, or anywhere when the
   committed offset is 0 or unknown.

``CommitGuard`` wraps the consumer's methods on the input topics (others are untouched):

- ``ack``: only messages passed to ``mark_processed`` (outputs durable) are acked;
- ``_add_gap``: a jump is never a gap; it is logged, counted, and the partition is sought
  back to where the jump began, at the start of the next fetch (no batch is in flight
  then, so the seek cannot be overwritten), so the dropped messages are delivered again;
- ``_new_offset``: a commit must start exactly at the committed offset (or, for a partition
  never committed, at the first offset fetched from it) and run without holes.
- ``getmany`` (each fetch, at least once a second): besides the seeks above, a watchdog. A
  partition whose committed offset is behind its high watermark and has not moved for
  ``stall_after_s`` is sought back to it: messages faust dropped as "already read" at the end
  of the log leave no jump behind (nothing comes after them), only a commit that never moves.
  A partition that is merely slow (one long batch) gets its uncommitted inputs once more.

A redelivered input is processed again and yields the same ids (``pipeline.outputs``).
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from pipeline import metrics
from pipeline.errors import ConfigError

log = logging.getLogger(__name__)

_FAUST_INTERNALS = (
    "ack",
    "_add_gap",
    "getmany",
    "_new_offset",
    "_acked",
    "_committed_offset",
    "assignment",
    "highwater",
    "seek",
)


class CommitGuard:
    def __init__(
        self,
        topics: Iterable[str],
        stall_after_s: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._topics = frozenset(topics)
        self._stall_after_s = stall_after_s
        self._clock = clock
        self._processed: weakref.WeakSet[Any] = weakref.WeakSet()
        self._first_fetched: dict[Any, int] = {}
        self._seek_back: dict[Any, int] = {}
        self._commit_seen: dict[Any, tuple[int, float]] = {}  # tp -> (committed, since)

    def mark_processed(self, message: Any) -> None:
        self._processed.add(message)

    def guards(self, topic: str) -> bool:
        return topic in self._topics

    # --- the wrappers -------------------------------------------------------------------

    def wrap_ack(self, ack: Callable[[Any], bool]) -> Callable[[Any], bool]:
        def guarded_ack(message: Any) -> bool:
            if not self.guards(message.topic):
                return ack(message)
            if message not in self._processed:
                metrics.UNPROCESSED_ACKS_REFUSED.labels(message.topic).inc()
                log.info(
                    "refused faust's ack of unprocessed %s[%d]@%d (skipped in a rebalance; "
                    "it will be redelivered)",
                    message.topic,
                    message.partition,
                    message.offset,
                )
                return False
            self._processed.discard(message)
            return ack(message)

        return guarded_ack

    def wrap_add_gap(
        self, add_gap: Callable[[Any, int, int], Awaitable[None]]
    ) -> Callable[[Any, int, int], Awaitable[None]]:
        async def guarded_add_gap(tp: Any, offset_from: int, offset_to: int) -> None:
            if not self.guards(tp.topic):
                await add_gap(tp, offset_from, offset_to)
                return
            # faust passes (last read offset + 1, offset just fetched); seek to the last read
            # one too: after a seek, faust's "last read" is the committed, unread, offset.
            back_to = offset_from - 1
            self._seek_back[tp] = min(back_to, self._seek_back.get(tp, back_to))
            metrics.FETCH_JUMPS.labels(tp.topic).inc()
            log.warning(
                "fetch of %s[%d] jumped from %d to %d: messages between were dropped; "
                "their commit is held and the partition is sought back to %d",
                tp.topic,
                tp.partition,
                back_to,
                offset_to,
                back_to,
            )

        return guarded_add_gap

    def wrap_getmany(
        self, consumer: Any, getmany: Callable[..., AsyncIterator[tuple[Any, Any]]]
    ) -> Callable[..., AsyncIterator[tuple[Any, Any]]]:
        async def guarded_getmany(*args: Any, **kwargs: Any) -> AsyncIterator[tuple[Any, Any]]:
            # between fetches: no delivery is in flight, so a seek cannot be overwritten
            assigned = consumer.assignment()
            self._watch_commits(consumer, assigned)
            if self._seek_back:
                pending, self._seek_back = self._seek_back, {}
                for tp, offset in pending.items():
                    if tp in assigned:
                        await consumer.seek(tp, offset)
            async for tp, message in getmany(*args, **kwargs):
                if self.guards(tp.topic) and message.offset < self._first_fetched.get(
                    tp, message.offset + 1
                ):
                    self._first_fetched[tp] = message.offset
                yield tp, message

        return guarded_getmany

    def _committed(self, consumer: Any, tp: Any) -> int | None:
        return consumer._committed_offset.get(tp) or self._first_fetched.get(tp)

    def _watch_commits(self, consumer: Any, assigned: Iterable[Any]) -> None:
        now = self._clock()
        for tp in assigned:
            if not self.guards(tp.topic):
                continue
            committed, highwater = self._committed(consumer, tp), consumer.highwater(tp)
            if committed is None or highwater is None or highwater <= committed:
                self._commit_seen.pop(tp, None)
                continue
            seen, since = self._commit_seen.setdefault(tp, (committed, now))
            if seen != committed:
                self._commit_seen[tp] = (committed, now)
            elif now - since >= self._stall_after_s:
                self._commit_seen[tp] = (committed, now)
                self._seek_back[tp] = min(committed, self._seek_back.get(tp, committed))
                metrics.PARTITION_STALLS.labels(tp.topic).inc()
                log.warning(
                    "%s[%d]: committed offset %d has not moved for %.0fs with %d inputs "
                    "behind it; seeking back to it",
                    tp.topic,
                    tp.partition,
                    committed,
                    now - since,
                    highwater - committed,
                )

    def wrap_new_offset(
        self, consumer: Any, new_offset: Callable[[Any], int | None]
    ) -> Callable[[Any], int | None]:
        def guarded_new_offset(tp: Any) -> int | None:
            if not self.guards(tp.topic):
                return new_offset(tp)
            acked = consumer._acked.get(tp)
            if not acked:
                return None
            # faust keeps 0 as "unknown" and accepts a start one past the committed offset
            base = self._committed(consumer, tp)
            if base is None or min(acked) != base:
                return None
            return new_offset(tp)

        return guarded_new_offset

    def install(self, consumer: Any) -> None:
        """Wrap the consumer's methods (instance attributes shadow the class's; faust looks
        them up on the instance when it fetches, acks and commits). Written against
        faust-streaming 0.15.3 (pinned): a consumer without these internals is refused."""
        missing = [name for name in _FAUST_INTERNALS if not hasattr(consumer, name)]
        if missing:
            raise ConfigError(
                f"faust consumer {type(consumer).__name__} lacks {missing}: the commit guard "
                "was written against faust-streaming 0.15.3"
            )
        consumer.ack = self.wrap_ack(consumer.ack)
        consumer._add_gap = self.wrap_add_gap(consumer._add_gap)
        consumer.getmany = self.wrap_getmany(consumer, consumer.getmany)
        consumer._new_offset = self.wrap_new_offset(consumer, consumer._new_offset)
