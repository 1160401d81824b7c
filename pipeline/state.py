"""The policy engine's state between inputs, behind a one-method seam. No Kafka, no Faust.

A batch handler *reads* state through a :class:`StateStore` and *returns* the new values as
:class:`~pipeline.records.StateWrite` records; the Faust edge (``pipeline.faust_state``)
saves them into tables with changelog topics once the batch's outputs are acknowledged, and
before its input offsets are. A batch that fails is retried from the state as it was.

Tables (``pipeline.topics.STATE_TABLES``) and what they hold, as JSON (``to_json``):

    video         stream id          VideoState       segment agent
    chat-streams  stream id          ChatStreamState  chat agent (raid detection)
    chat-users    stream id|user id  ChatUserState    chat agent (flood, repeats, offences)
    strikes       user id            StrikeLedger     strikes agent (actions re-keyed by user)

Every key of the first three starts with the stream id, the key of their input topics, so a
key's state lives on its input's partition. ``partition=None`` reads a key wherever this
worker holds it: how the segment and chat agents read a user's strike ledger, which lives on
the strikes topic's partitions (exact when this worker holds the user's partition).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from pipeline.policy.state import JsonState
from pipeline.records import StateWrite

log = logging.getLogger(__name__)

VIDEO = "video"
CHAT_STREAMS = "chat-streams"
CHAT_USERS = "chat-users"
STRIKES = "strikes"

S = TypeVar("S", bound=JsonState)


class StateStore(Protocol):
    def get(self, table: str, key: str, *, partition: int | None) -> bytes | None:
        """The value of ``key``, on ``partition`` (None: any partition this worker holds)."""
        ...

    async def write(self, writes: Sequence[StateWrite]) -> None:
        """Save the values and wait until they are durable."""
        ...


def load(
    store: StateStore, table: str, key: str, cls: type[S], *, partition: int | None
) -> S | None:
    """The state object of ``key``, or None when absent (or unreadable: then it starts over)."""
    raw = store.get(table, key, partition=partition)
    if raw is None:
        return None
    try:
        return cls.from_json(raw)
    except Exception:  # an older layout or a corrupt value must not hold the partition
        log.warning("state %s/%s unreadable: starting it over", table, key, exc_info=True)
        return None


@dataclass
class Touched:
    """A key's state during one batch: loaded once, updated in memory, written once."""

    partition: int
    value: JsonState | None
    dirty: bool = False


def state_writes(table: str, touched: Mapping[str, Touched]) -> list[StateWrite]:
    """The writes of the keys a batch changed."""
    return [
        StateWrite(table, key, t.value.to_json(), t.partition)
        for key, t in touched.items()
        if t.dirty and t.value is not None
    ]


class MemoryStateStore:
    """In-process :class:`StateStore` for tests (and the test double of the Faust tables)."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str], tuple[int, bytes]] = {}
        self.writes: list[StateWrite] = []

    def get(self, table: str, key: str, *, partition: int | None) -> bytes | None:
        hit = self.data.get((table, key))
        if hit is None or (partition is not None and hit[0] != partition):
            return None
        return hit[1]

    async def write(self, writes: Sequence[StateWrite]) -> None:
        for w in writes:
            self.data[(w.table, w.key)] = (w.partition, w.value)
        self.writes.extend(writes)
