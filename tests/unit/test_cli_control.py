"""control.v1 records as the operator CLI writes and reads them (pure parts)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from pipeline import codec
from pipeline.cli_control import control_doc, current_overrides
from pipeline.errors import SchemaError
from pipeline.records import InRecord

NOW = datetime(2026, 11, 26, 1, 2, 3, tzinfo=UTC)


def record(offset: int, key: str, value: bytes | None) -> InRecord:
    return InRecord("sw.control", 0, offset, key.encode(), value, {}, None)


def test_set_and_clear_records_are_valid_control_v1() -> None:
    doc = codec.decode(
        "control.v1",
        control_doc("s1", {"strategy": "fps", "fps": 5}, updated_by="ops", reason="raid", now=NOW),
    )
    assert doc == {
        "stream_id": "s1",
        "sampling": {"strategy": "fps", "fps": 5},
        "updated_at": "2026-11-26T01:02:03.000Z",
        "updated_by": "ops",
        "reason": "raid",
    }
    cleared = codec.decode("control.v1", control_doc("s1", None, updated_by="ops", now=NOW))
    assert cleared["sampling"] is None and "reason" not in cleared


def test_an_override_the_workers_would_dead_letter_is_refused() -> None:
    with pytest.raises(SchemaError):
        control_doc("s1", {"strategy": "fps", "fps": 500}, updated_by="ops")
    with pytest.raises(SchemaError):
        control_doc("s1", {"strategy": "sometimes"}, updated_by="ops")


def test_current_overrides_is_the_latest_record_per_stream() -> None:
    fps = control_doc("a", {"strategy": "fps", "fps": 2}, updated_by="x", now=NOW)
    scene = control_doc("a", {"strategy": "scene"}, updated_by="x", now=NOW)
    records = [
        record(0, "a", fps),
        record(1, "b", control_doc("b", {"strategy": "fps", "fps": 1}, updated_by="x", now=NOW)),
        record(2, "c", control_doc("c", {"strategy": "scene"}, updated_by="x", now=NOW)),
        record(3, "a", scene),  # a newer record wins
        record(4, "b", control_doc("b", None, updated_by="x", now=NOW)),  # cleared
        record(5, "c", None),  # a tombstone clears too
        record(6, "d", b"{not json"),  # a worker dead-letters it: it overrides nothing
    ]
    assert current_overrides(records) == {"a": orjson.loads(scene)}
