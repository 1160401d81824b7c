"""Plain records at the Kafka edge, so the cores never see a client or a Faust event."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

OutTopic = Literal["results", "actions", "review", "dead_letters", "dsa_statements", "strikes"]


@dataclass(frozen=True)
class InRecord:
    """One consumed Kafka record."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Mapping[str, bytes] = field(default_factory=dict)
    timestamp_ms: int | None = None

    @property
    def ref(self) -> str:
        return f"kafka://{self.topic}/{self.partition}/{self.offset}"

    def header_text(self, name: str) -> str | None:
        raw = self.headers.get(name)
        return raw.decode("utf-8", "replace") if raw is not None else None

    def key_text(self) -> str | None:
        if self.key is None:
            return None
        try:
            return self.key.decode("utf-8")
        except UnicodeDecodeError:
            return "b64:" + base64.b64encode(self.key).decode()

    def produced_at(self) -> str | None:
        if self.timestamp_ms is None or self.timestamp_ms < 0:
            return None
        return iso_ms(datetime.fromtimestamp(self.timestamp_ms / 1000, UTC))


@dataclass(frozen=True)
class OutRecord:
    """One record to publish; ``topic`` names a role, resolved to a topic name at the edge."""

    topic: OutTopic
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class StateWrite:
    """A new value for one key of a state table, on the partition of the input it came from."""

    table: str
    key: str
    value: bytes
    partition: int


@dataclass(frozen=True)
class Outputs:
    """What a batch handler returns: records to publish, then state to save (in that order)."""

    records: list[OutRecord]
    state: list[StateWrite] = field(default_factory=list)


def deterministic_id(*parts: object) -> str:
    """A 128-bit hex id that depends only on ``parts``: a redelivery yields the same id."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(str(part).encode())
        h.update(b"\x1f")
    return h.hexdigest()


def iso_ms(ts: datetime) -> str:
    """RFC 3339 with milliseconds and a Z suffix."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def utc_now_iso() -> str:
    return iso_ms(datetime.now(UTC))


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
