"""pipeline.media.control: control.v1 records -> per-stream sampling overrides."""

from __future__ import annotations

import orjson
import pytest

from pipeline import codec
from pipeline.errors import SchemaError
from pipeline.media.control import SamplingControl, parse_control
from pipeline.media.sampling import SamplingConfig, SamplingOverrides
from pipeline.records import InRecord
from pipeline.topics import TOPIC_SPECS

BASE = SamplingConfig(fps=2.0)


def record(doc: object, key: bytes | None = b"s1", offset: int = 0) -> InRecord:
    value = None if doc is None else orjson.dumps(doc)
    return InRecord("sw.control", 0, offset, key, value)


def doc(sampling: object) -> dict[str, object]:
    return {"stream_id": "s1", "sampling": sampling, "updated_at": "2026-11-25T20:00:00Z"}


def test_an_override_is_laid_over_the_settings() -> None:
    stream, config = parse_control(record(doc({"strategy": "fps"})), BASE)
    assert stream == "s1" and config == SamplingConfig("fps", fps=2.0)
    _, config = parse_control(record(doc({"strategy": "adaptive", "adaptive_fps": 10})), BASE)
    assert config is not None and (config.strategy, config.adaptive_fps) == ("adaptive", 10)


def test_null_sampling_and_tombstones_clear() -> None:
    assert parse_control(record(doc(None)), BASE) == ("s1", None)
    assert parse_control(record(None), BASE) == ("s1", None)


@pytest.mark.parametrize(
    ("rec", "needle"),
    [
        (record(doc({"strategy": "fps", "fps": 100})), "fps"),
        (record(doc({"strategy": "everything"})), "strategy"),
        (record(doc({"fps": 2})), "strategy"),
        (record({"stream_id": "s1", "sampling": None}), "updated_at"),
        (record(doc(None), key=b"other"), "differs"),
        (record(None, key=None), "tombstone"),
    ],
)
def test_bad_control_records_are_schema_errors(rec: InRecord, needle: str) -> None:
    with pytest.raises(SchemaError, match=needle):
        parse_control(rec, BASE)


async def test_handler_applies_overrides_and_dead_letters_bad_records() -> None:
    overrides = SamplingOverrides()
    control = SamplingControl(overrides, BASE, dead_letter_max_payload_bytes=1000)
    out = await control.handle(
        [
            record(doc({"strategy": "scene"})),
            record(doc({"strategy": "warp"}), offset=1),
            record({**doc({"strategy": "fps"}), "stream_id": "s2"}, key=b"s2", offset=2),
        ]
    )
    assert overrides.get("s1") == SamplingConfig("scene", fps=2.0)
    assert overrides.get("s2") == SamplingConfig("fps", fps=2.0)
    assert [r.topic for r in out] == ["dead_letters"]
    dead = codec.decode("dead_letter.v1", out[0].value)
    assert (dead["reason"], dead["source"]["offset"]) == ("schema_invalid", 1)
    assert await control.handle([record(None)]) == []
    assert overrides.get("s1") is None


def test_control_topic_is_compacted_and_copartitioned_with_segments() -> None:
    specs = {s.role: s for s in TOPIC_SPECS}
    control = specs["control"]
    assert control.config()["cleanup.policy"] == "compact"
    assert control.partitions == specs["segments"].partitions
    assert specs["segments"].config()["cleanup.policy"] == "delete"


async def test_start_up_replay_then_the_agent_skips_what_it_applied() -> None:
    overrides = SamplingOverrides()
    control = SamplingControl(overrides, BASE, dead_letter_max_payload_bytes=1000)
    log = [
        record(doc({"strategy": "fps"}), offset=0),
        record(doc({"strategy": "bad"}), offset=1),
        record(doc(None), offset=2),  # the latest: no override
    ]
    assert control.replay(log) == 2
    assert overrides.get("s1") is None
    # The agent re-reads from the start: old records must not bring fps back for a while,
    # but the bad one is still dead-lettered (same id as at its first reading).
    out = await control.handle(log[:2])
    assert overrides.get("s1") is None
    assert [r.topic for r in out] == ["dead_letters"]
    await control.handle([record(doc({"strategy": "scene"}), offset=3)])  # new: applied
    assert overrides.get("s1") == SamplingConfig("scene", fps=2.0)
