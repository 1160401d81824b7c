"""Topic declarations (declared once, here) and their idempotent application.

Besides the prefixed topics of ``TOPIC_SPECS``, each worker group (app id) has one changelog
topic per state table (``STATE_TABLES``), named as Faust names them:
``<app_id>-<table>-changelog``. They are declared here too, compacted, with exactly as many
partitions as the topic their table is co-partitioned with (as it exists: an input topic grown
beyond its declaration grows its changelogs too), because the worker runs with
``topic_allow_declare=False``: Faust never creates or alters a topic itself. A worker started
with ``--no-apply`` still creates its own missing changelogs (``create_state_topics``, never
altering a topic), checks them (``state_partitions``) and sizes its tables from its inputs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
    # Reviewer verdicts on review tasks (key: task_id), consumed back for the KPIs.
    TopicSpec("review_verdicts", "review-verdicts", 3, 90 * _DAY_MS),
    # DSA statements of reasons, one per enforcement action (key: action_id), when enabled.
    TopicSpec("dsa_statements", "dsa-statements", 3, 30 * _DAY_MS),
    # Live enforcement actions again, keyed by the user they hold against: the strikes agent's
    # input (per-user strike ledgers live on this topic's partitions, not the stream's).
    TopicSpec("strikes", "actions-by-user", 6, 7 * _DAY_MS),
)
_STATE_MAX_MESSAGE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class TableSpec:
    """A Faust table of policy state, co-partitioned with the topic of role ``source``."""

    name: str
    source: str

    def changelog(self, app_id: str) -> str:
        return f"{app_id}-{self.name}-changelog"

    @property
    def source_spec(self) -> TopicSpec:
        return next(s for s in TOPIC_SPECS if s.role == self.source)

    def changelog_spec(self, partitions: int | None = None) -> TopicSpec:
        """``partitions``: the source topic's as it exists (default: as declared)."""
        return TopicSpec(
            f"state:{self.name}",
            "",
            partitions or self.source_spec.partitions,
            -1,
            _STATE_MAX_MESSAGE_BYTES,
            cleanup_policy="compact",
        )


STATE_TABLES: tuple[TableSpec, ...] = (
    TableSpec("video", "segments"),  # VideoState by stream id
    TableSpec("chat-streams", "chat"),  # ChatStreamState by stream id
    TableSpec("chat-users", "chat"),  # ChatUserState by "stream|user"
    TableSpec("strikes", "strikes"),  # StrikeLedger by user id
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
    review_verdicts: str
    dsa_statements: str
    strikes: str

    @classmethod
    def with_prefix(cls, prefix: str) -> TopicNames:
        return cls(**{spec.role: prefix + spec.suffix for spec in TOPIC_SPECS})

    def name_of(self, spec: TopicSpec) -> str:
        return str(getattr(self, spec.role))

    def declared(
        self, app_id: str | None = None, state_partitions: Mapping[str, int] | None = None
    ) -> list[tuple[str, TopicSpec]]:
        """(topic name, spec) of every topic; with ``app_id`` its state changelogs too, with
        ``state_partitions[table]`` partitions (default: their source's declared count)."""
        out = [(self.name_of(spec), spec) for spec in TOPIC_SPECS]
        if app_id is not None:
            parts = state_partitions or {}
            out += [
                (t.changelog(app_id), t.changelog_spec(parts.get(t.name))) for t in STATE_TABLES
            ]
        return out

    def changelog_partitions(self, existing: Mapping[str, Any]) -> dict[str, int]:
        """Partitions of each state table's changelog: its source topic's, as it exists in
        ``existing`` (broker metadata) when it has more than declared, else as declared."""
        out = {}
        for t in STATE_TABLES:
            topic = existing.get(self.name_of(t.source_spec))
            have = len(topic.partitions) if topic is not None else 0
            out[t.name] = max(t.source_spec.partitions, have)
        return out


def _admin(kafka: KafkaSettings, timeout_s: float) -> tuple[AdminClient, dict[str, Any]]:
    admin = AdminClient(kafka.confluent_config())
    try:
        existing = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        raise ConfigError(f"cannot reach Kafka at {kafka.bootstrap_servers}: {exc}") from exc
    return admin, existing


def state_partitions(
    kafka: KafkaSettings,
    names: TopicNames,
    app_id: str,
    *,
    timeout_s: float = 30.0,
    settle_s: float = 10.0,
) -> dict[str, int]:
    """Partitions of each state table, as the worker must declare it: its source topic's.

    Raises ``ConfigError`` naming every missing topic and every changelog whose partitions
    differ from its source's (``streamwarden topics apply`` fixes both), after waiting up to
    ``settle_s`` for metadata to catch up with topics just created.
    """
    deadline = time.monotonic() + settle_s
    while True:
        _, existing = _admin(kafka, timeout_s)
        problems = [f"missing {n}" for n, _ in names.declared(app_id) if n not in existing]
        out = {}
        for t in STATE_TABLES:
            source = existing.get(names.name_of(t.source_spec))
            changelog = existing.get(t.changelog(app_id))
            if source is None or changelog is None:
                continue
            out[t.name] = len(source.partitions)
            if len(changelog.partitions) != len(source.partitions):
                problems.append(
                    f"{t.changelog(app_id)} has {len(changelog.partitions)} partitions, its "
                    f"source {names.name_of(t.source_spec)} {len(source.partitions)}"
                )
        if not problems:
            return out
        if time.monotonic() > deadline:
            raise ConfigError(f"topics (run `streamwarden topics apply`): {'; '.join(problems)}")
        time.sleep(0.5)


def create_state_topics(
    kafka: KafkaSettings, names: TopicNames, app_id: str, *, timeout_s: float = 30.0
) -> list[str]:
    """Create the missing state changelogs of worker group ``app_id``; alter nothing.

    What a worker started with ``--no-apply`` still does: its changelogs are its own internal
    topics (as Kafka Streams creates its internal topics), named after its group, sized after
    the input topics as they exist. Returns what changed.
    """
    admin, existing = _admin(kafka, timeout_s)
    parts = names.changelog_partitions(existing)
    state = {t.changelog(app_id) for t in STATE_TABLES}
    new = [
        NewTopic(name, spec.partitions, kafka.replication_factor, config=spec.config())
        for name, spec in names.declared(app_id, parts)
        if name in state and name not in existing
    ]
    existed = (
        _wait(dict(admin.create_topics(new, request_timeout=timeout_s)), timeout_s)
        if new
        else set()
    )
    changes = [
        f"create {t.topic} partitions={t.num_partitions}" for t in new if t.topic not in existed
    ]
    for change in changes:
        log.info("topics: %s", change)
    return changes


def _wait(futures: Mapping[str, Any], timeout_s: float) -> set[str]:
    """Wait for every admin future; returns the topics that turned out to exist already."""
    existed = set()
    for key, fut in futures.items():
        try:
            fut.result(timeout=timeout_s)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" in str(exc):  # created concurrently, or stale metadata
                existed.add(key)
                continue
            raise ConfigError(f"topic change {key} failed: {exc}") from exc
    return existed


def apply_topics(
    kafka: KafkaSettings,
    names: TopicNames,
    *,
    app_id: str | None = None,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create missing topics, grow partitions, and set configs. Returns what changed.

    ``app_id``: also the state changelogs of that worker group (``STATE_TABLES``).
    """
    admin, existing = _admin(kafka, timeout_s)
    changes: list[str] = []
    new, grow, configs = [], [], []
    for name, spec in names.declared(app_id, names.changelog_partitions(existing)):
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
    existed = _wait(futures, timeout_s)
    changes = [c for c in changes if not (c.startswith("create ") and c.split()[1] in existed)]
    for change in changes:
        log.info("topics: %s", change)
    return changes
