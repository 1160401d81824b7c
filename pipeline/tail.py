"""Read the output topics (results, actions, review tasks, dead letters) as they arrive."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, TopicPartition

from pipeline.settings import KafkaSettings
from pipeline.topics import TopicNames

OUTPUT_ROLES = ("results", "actions", "review", "dead_letters")


def iter_outputs(
    kafka: KafkaSettings,
    names: TopicNames,
    *,
    from_beginning: bool = False,
    idle_timeout_s: float | None = None,
    roles: tuple[str, ...] = OUTPUT_ROLES,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(role, document)``; stops after ``idle_timeout_s`` without a record (None: never).

    Uses manual assignment, no consumer group: tailing never disturbs anyone's offsets.
    """
    by_topic = {getattr(names, r): r for r in roles}
    consumer = Consumer(
        kafka.confluent_config()
        | {"group.id": f"sw-tail-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False}
    )
    start = OFFSET_BEGINNING if from_beginning else OFFSET_END
    meta = consumer.list_topics(timeout=10)
    parts = [
        TopicPartition(t, p, start)
        for t in by_topic
        if t in meta.topics
        for p in meta.topics[t].partitions
    ]
    consumer.assign(parts)
    last = time.monotonic()
    try:
        while idle_timeout_s is None or time.monotonic() - last < idle_timeout_s:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(str(err))
            last = time.monotonic()
            yield by_topic[str(msg.topic())], orjson.loads(msg.value() or b"null")
    finally:
        consumer.close()
