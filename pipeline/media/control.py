"""Per-stream sampling overrides from the control topic (schema ``control.v1``).

The control topic is compacted and keyed by ``stream_id``: its latest record per stream
is that stream's override; ``"sampling": null`` or a tombstone (no value) clears it.

At start the worker reads the whole topic (:func:`read_to_end`, every partition) into the
map *before* any agent runs, so no segment is sampled without its override after a
restart. The control agent then applies what comes later; its offsets are never
committed, so it re-reads the topic from the start, skipping what the start-up read
applied but still dead-lettering bad records (their ids depend on the offset only: a
re-read yields the same ids).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from pipeline import codec
from pipeline.errors import ConfigError, InputError, SchemaError
from pipeline.media.sampling import SamplingConfig, SamplingOverrides
from pipeline.outputs import logged_dead_letter
from pipeline.records import InRecord, OutRecord
from pipeline.settings import KafkaSettings

__all__ = ["PROCESS_OVERRIDES", "SamplingControl", "parse_control", "read_to_end"]

log = logging.getLogger(__name__)

# The one map a worker process's control agent writes and its segment stage reads
# (both are built from settings alone); tests pass their own instances.
PROCESS_OVERRIDES = SamplingOverrides()


def parse_control(rec: InRecord, base: SamplingConfig) -> tuple[str, SamplingConfig | None]:
    """``(stream_id, config or None to clear)``; SchemaError for a bad record."""
    key = rec.key_text()
    if rec.value is None:  # a tombstone: compaction's way to forget the key
        if not key:
            raise SchemaError("control.v1: a tombstone needs the stream id as its key")
        return key, None
    doc = codec.decode("control.v1", rec.value)
    stream_id = str(doc["stream_id"])
    if key is not None and key != stream_id:
        raise SchemaError(f"control.v1: key {key!r} differs from stream_id {stream_id!r}")
    sampling = doc["sampling"]
    if sampling is None:
        return stream_id, None
    try:
        return stream_id, base.merged(sampling)
    except ValueError as exc:
        raise SchemaError(f"control.v1: at sampling: {exc}") from exc


class SamplingControl:
    """Applies control records to an overrides map; returns dead letters for bad ones."""

    def __init__(
        self,
        overrides: SamplingOverrides,
        base: SamplingConfig,
        *,
        dead_letter_max_payload_bytes: int,
    ) -> None:
        self.overrides = overrides
        self._base = base
        self._dl_max = dead_letter_max_payload_bytes
        self._replayed_to: dict[int, int] = {}  # partition -> first offset not yet applied

    def replay(self, records: Sequence[InRecord]) -> int:
        """Apply a start-up read of the topic (bad records only logged); returns how many."""
        applied = 0
        for rec in records:
            self._replayed_to[rec.partition] = max(
                self._replayed_to.get(rec.partition, 0), rec.offset + 1
            )
            try:
                stream_id, config = parse_control(rec, self._base)
            except InputError as exc:
                log.warning("control record %s ignored (%s): %s", rec.ref, exc.reason, exc)
                continue
            self.overrides.set(stream_id, config)
            applied += 1
        log.info(
            "sampling overrides: %d records replayed, %d streams", applied, len(self.overrides)
        )
        return applied

    async def handle(self, records: Sequence[InRecord]) -> list[OutRecord]:
        out: list[OutRecord] = []
        for rec in records:
            try:
                stream_id, config = parse_control(rec, self._base)
            except InputError as exc:
                out.append(logged_dead_letter(rec, exc, max_payload_bytes=self._dl_max))
                continue
            if rec.offset < self._replayed_to.get(rec.partition, 0):
                continue  # applied at start-up already; applying it again would go back in time
            self.overrides.set(stream_id, config)
            log.info("sampling override %s: %s", stream_id, config or "cleared")
        return out


def read_to_end(kafka: KafkaSettings, topic: str, *, timeout_s: float = 30.0) -> list[InRecord]:
    """Every record of every partition of ``topic`` up to its end now (no consumer group).

    A missing topic reads as empty (logged); an unreachable broker is a ConfigError.
    """
    conf = kafka.confluent_config() | {
        "group.id": f"sw-control-read-{uuid.uuid4().hex[:8]}",  # never joined: assign() only
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    }
    consumer = Consumer(conf)
    deadline = time.monotonic() + timeout_s
    try:
        try:
            meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        except KafkaException as exc:
            raise ConfigError(f"cannot read control topic {topic}: {exc}") from exc
        if meta is None or meta.error is not None:
            log.warning("control topic %s not found: no sampling overrides", topic)
            return []
        ends = {}
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        records: list[InRecord] = []
        while ends and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            partition, offset = msg.partition(), msg.offset()
            error = msg.error()
            if error is not None and error.code() != KafkaError._PARTITION_EOF:
                raise ConfigError(f"cannot read control topic {topic}: {error}")
            if error is None and partition is not None and offset is not None:
                records.append(InRecord(topic, partition, offset, msg.key(), msg.value(), {}, None))
            if partition is not None and (
                error is not None or (offset or 0) + 1 >= ends[partition]
            ):
                ends.pop(partition, None)
        if ends:
            raise ConfigError(f"control topic {topic} not read to its end within {timeout_s} s")
        return records
    finally:
        consumer.close()
