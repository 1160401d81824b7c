"""Topic declarations applied to the real broker."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from pipeline.errors import ConfigError
from pipeline.settings import KafkaSettings
from pipeline.topics import (
    STATE_TABLES,
    TOPIC_SPECS,
    TopicNames,
    apply_topics,
    create_state_topics,
    state_partitions,
)

pytestmark = pytest.mark.kafka


def test_apply_creates_every_topic_then_is_a_no_op(kafka: KafkaSettings) -> None:
    names = TopicNames.with_prefix(f"test-{uuid.uuid4().hex[:10]}.")
    app_id = f"sw-test-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ConfigError, match="missing"):
        state_partitions(kafka, names, app_id, settle_s=0)
    first = apply_topics(kafka, names)
    assert len(first) == len(TOPIC_SPECS)
    assert apply_topics(kafka, names) == []
    # the worker group's state changelogs, compacted and co-partitioned with their inputs
    assert len(apply_topics(kafka, names, app_id=app_id)) == len(STATE_TABLES)
    assert apply_topics(kafka, names, app_id=app_id) == []
    assert state_partitions(kafka, names, app_id) == {t.name: 6 for t in STATE_TABLES}

    admin = AdminClient(kafka.confluent_config())
    meta = admin.list_topics(timeout=10).topics
    for name, spec in names.declared(app_id):
        assert len(meta[name].partitions) == spec.partitions
        res = ConfigResource(ConfigResource.Type.TOPIC, name)
        configs = admin.describe_configs([res])[res].result(timeout=10)
        for key, value in spec.config().items():
            assert configs[key].value == value, (name, key)


def test_apply_grows_partitions_of_an_existing_topic(kafka: KafkaSettings) -> None:
    from confluent_kafka.admin import NewTopic

    names = TopicNames.with_prefix(f"test-{uuid.uuid4().hex[:10]}.")
    admin = AdminClient(kafka.confluent_config())
    admin.create_topics([NewTopic(names.chat, 1, 1)])[names.chat].result(timeout=10)
    deadline = time.monotonic() + 15  # until the metadata shows the new topic
    while names.chat not in admin.list_topics(timeout=10).topics:
        assert time.monotonic() < deadline, "topic never appeared"
        time.sleep(0.2)
    changes = apply_topics(kafka, names)
    assert f"grow {names.chat} partitions 1->6" in changes
    deadline = time.monotonic() + 15  # metadata catches up with the controller shortly after
    while len(admin.list_topics(names.chat, timeout=10).topics[names.chat].partitions) != 6:
        assert time.monotonic() < deadline, "partitions never grew"
        time.sleep(0.2)


def test_unreachable_broker_is_a_clear_config_error() -> None:
    bad = KafkaSettings(bootstrap_servers="127.0.0.1:1")
    with pytest.raises(ConfigError, match="cannot reach Kafka"):
        apply_topics(bad, TopicNames.with_prefix("x."), timeout_s=2)


def test_changelogs_follow_an_input_topic_grown_beyond_its_declaration(
    kafka: KafkaSettings,
) -> None:
    from confluent_kafka.admin import NewTopic

    names = TopicNames.with_prefix(f"test-{uuid.uuid4().hex[:10]}.")
    app_id = f"sw-test-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(kafka.confluent_config())
    admin.create_topics([NewTopic(names.chat, 8, 1)])[names.chat].result(timeout=10)
    apply_topics(kafka, names, app_id=app_id)
    parts = state_partitions(kafka, names, app_id)
    assert (parts["chat-users"], parts["chat-streams"], parts["video"]) == (8, 8, 6)


def test_a_worker_creates_only_its_own_missing_changelogs(kafka: KafkaSettings) -> None:
    names = TopicNames.with_prefix(f"test-{uuid.uuid4().hex[:10]}.")
    apply_topics(kafka, names)
    app_id = f"sw-test-{uuid.uuid4().hex[:8]}"
    created = create_state_topics(kafka, names, app_id)
    assert created == [
        f"create {t.changelog(app_id)} partitions={t.source_spec.partitions}" for t in STATE_TABLES
    ]
    assert create_state_topics(kafka, names, app_id) == []
    assert state_partitions(kafka, names, app_id) == {t.name: 6 for t in STATE_TABLES}
