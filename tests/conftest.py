"""Shared fixtures: the real local Kafka broker (started when not running), per-test topics."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.settings import KafkaSettings
from pipeline.topics import TopicNames, apply_topics

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def kafka() -> KafkaSettings:
    """A reachable broker: ``SW_KAFKA_BOOTSTRAP_SERVERS`` if set, else the project's local one
    (started when it is not running; ``KAFKA_PORT`` picks its port)."""
    if "SW_KAFKA_BOOTSTRAP_SERVERS" in os.environ:
        return KafkaSettings()
    subprocess.run([ROOT / "deploy" / "kafka" / "kafka.sh", "up"], check=True, timeout=600)
    return KafkaSettings(bootstrap_servers=f"127.0.0.1:{os.environ.get('KAFKA_PORT', '9092')}")


@pytest.fixture
def topics(kafka: KafkaSettings) -> Iterator[TopicNames]:
    """Fresh topics for one test (a unique prefix), created with the production declarations."""
    names = TopicNames.with_prefix(f"test-{uuid.uuid4().hex[:10]}.")
    apply_topics(kafka, names)
    yield names
