"""The policy state in Faust tables: the Faust side of :class:`pipeline.state.StateStore`.

One table per ``pipeline.topics.STATE_TABLES`` entry, raw bytes in and out (keys are the
UTF-8 keys, values the state's JSON), in the store ``SW_TABLE_STORE`` names: ``memory://``
(rebuilt from the changelog at every start) or ``rocksdb://`` (kept on disk, the changelog
read only from where the local copy stops; needs rocksdict).

Faust chooses a key's partition from the *current event*: the changelog record goes to that
event's partition, and the RocksDB store keeps one database per partition. Our batches hold
events of several partitions, and state is saved after the batch's outputs are published,
outside any one event; so each read and write here names its partition explicitly (the
partition of the input the key belongs to) and sets Faust's current-event context to it for
the store. Writes wait for the changelog's broker acknowledgements: the batch's offsets are
acked only once its state is durable.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import faust
from faust import streams as faust_streams

from pipeline import metrics
from pipeline.records import StateWrite
from pipeline.topics import STATE_TABLES, TableSpec


class _OnPartition:
    """Stands for an event of ``partition`` for the stores (they read ``message.partition``)."""

    __slots__ = ("__weakref__", "message")

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition, topic=None)


@contextmanager
def _on_partition(partition: int | None) -> Iterator[None]:
    """Faust's current event set to one of ``partition`` (None: no event, every partition).

    faust-streaming has no public setter for it (``faust.streams.current_event`` only reads).
    """
    holder = _OnPartition(partition) if partition is not None else None
    var: Any = faust_streams._current_event
    token = var.set(weakref.ref(holder) if holder is not None else None)
    try:
        yield
    finally:
        var.reset(token)


class FaustState:
    """The state tables of one app; reads and writes by explicit partition."""

    def __init__(
        self,
        app: faust.App,
        tables: Sequence[TableSpec] = STATE_TABLES,
        *,
        partitions: Mapping[str, int] | None = None,
    ) -> None:
        """``partitions``: per table, its source topic's (default: as declared)."""
        sized = partitions or {}
        self.tables: dict[str, Any] = {
            t.name: app.Table(
                t.name,
                default=None,
                key_type=bytes,
                value_type=bytes,
                partitions=sized.get(t.name, t.source_spec.partitions),
                help=f"policy state co-partitioned with the {t.source} topic",
            )
            for t in tables
        }

    def get(self, table: str, key: str, *, partition: int | None) -> bytes | None:
        with _on_partition(partition):
            value = self.tables[table].data.get(key.encode())
        return bytes(value) if value is not None else None

    async def write(self, writes: Sequence[StateWrite]) -> None:
        pending = []
        for w in writes:
            table = self.tables[w.table]
            key = w.key.encode()
            with _on_partition(w.partition):
                table.data[key] = w.value
            pending.append(table.send_changelog(w.partition, key, w.value))
        await asyncio.gather(*pending)  # raises if the broker refused any changelog record
        for w in writes:
            metrics.STATE_WRITES.labels(w.table).inc()
