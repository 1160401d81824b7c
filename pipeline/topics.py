"""Topic declarations (declared once, here) and their idempotent application."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

from pipeline.errors import ConfigError
from pipeline.settings import KafkaSettings

log = logging.getLogger(__name__)

_DAY_MS = 24 * 3600 * 1000
SEGMENT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class TopicSpec:
    role: str
    suffix: str
    partitions: int
    retention_ms: int
    max_message_bytes: int = 1024 * 1024
    compression: str = "producer"
    cleanup_policy: str = "delete"

    def config(self) -> dict[str, str]:
        return {
            "retention.ms": str(self.retention_ms),
            "max.message.bytes": str(self.max_message_bytes),
            "compression.type": self.compression,
            "cleanup.policy": self.cleanup_policy,
        }


TOPIC_SPECS: tuple[TopicSpec, ...] = (
    TopicSpec("segments", "segments", 6, _DAY_MS, SEGMENT_MAX_MESSAGE_BYTES),
    TopicSpec("chat", "chat", 6, 3 * _DAY_MS),
    TopicSpec("results", "moderation-results", 6, 7 * _DAY_MS, compression="zstd"),
    TopicSpec("actions", "enforcement-actions", 6, 30 * _DAY_MS),
    TopicSpec("review", "review-tasks", 3, 30 * _DAY_MS, 4 * 1024 * 1024),
    TopicSpec("dead_letters", "dead-letters", 3, 14 * _DAY_MS, SEGMENT_MAX_MESSAGE_BYTES),
    # Per-stream overrides, latest per key kept. As many partitions as `segments`: Faust
    # co-partitions topics of equal size, so a worker reads the overrides of its own streams.
    TopicSpec("control", "control", 6, -1, 64 * 1024, cleanup_policy="compact"),
)


@dataclass(frozen=True)
class TopicNames:
    segments: str
    chat: str
    results: str
    actions: str
    review: str
    dead_letters: str
    control: str

    @classmethod
    def with_prefix(cls, prefix: str) -> TopicNames:
        return cls(**{spec.role: prefix + spec.suffix for spec in TOPIC_SPECS})

    def name_of(self, spec: TopicSpec) -> str:
        return str(getattr(self, spec.role))


def apply_topics(kafka: KafkaSettings, names: TopicNames, *, timeout_s: float = 30.0) -> list[str]:
    """Create missing topics, grow partitions, and set configs. Returns what changed."""
    admin = AdminClient(kafka.confluent_config())
    try:
        existing = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        raise ConfigError(f"cannot reach Kafka at {kafka.bootstrap_servers}: {exc}") from exc
    changes: list[str] = []
    new, grow, configs = [], [], []
    for spec in TOPIC_SPECS:
        name = names.name_of(spec)
        if name not in existing:
            new.append(
                NewTopic(name, spec.partitions, kafka.replication_factor, config=spec.config())
            )
            changes.append(f"create {name} partitions={spec.partitions}")
            continue
        have = len(existing[name].partitions)
        if have < spec.partitions:
            grow.append(NewPartitions(name, spec.partitions))
            changes.append(f"grow {name} partitions {have}->{spec.partitions}")
        entries = [
            ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
            for k, v in spec.config().items()
        ]
        configs.append(ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=entries))
    futures = {}
    if new:
        futures.update(admin.create_topics(new, request_timeout=timeout_s))
    if grow:
        futures.update(admin.create_partitions(grow, request_timeout=timeout_s))
    if configs:
        futures.update({str(k): v for k, v in admin.incremental_alter_configs(configs).items()})
    for key, fut in futures.items():
        try:
            fut.result(timeout=timeout_s)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" in str(exc):  # created concurrently: fine
                continue
            raise ConfigError(f"topic change {key} failed: {exc}") from exc
    for change in changes:
        log.info("topics: %s", change)
    return changes
