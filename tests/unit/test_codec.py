from __future__ import annotations

import orjson
import pytest

from pipeline import codec
from pipeline.errors import SchemaError
from schemas import SCHEMA_DIR, SCHEMA_NAMES


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_every_schema_has_a_valid_example(name: str) -> None:
    example = (SCHEMA_DIR / "examples" / f"{name}.json").read_bytes()
    assert codec.decode(name, example) == orjson.loads(example)


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schemas_are_2020_12(name: str) -> None:
    doc = orjson.loads((SCHEMA_DIR / f"{name}.json").read_bytes())
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"", "empty"),
        (b"not json", "not JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (
            b'{"message_id": "m", "stream_id": "s", "user_id": "u", "text": 42, '
            b'"sent_at": "2026-11-25T10:00:00Z"}',
            "at text",
        ),
        (
            b'{"message_id": "m", "stream_id": "s", "user_id": "u", "text": "hi", '
            b'"sent_at": "yesterday"}',
            "at sent_at",
        ),
        (
            b'{"message_id": "m", "stream_id": "s", "user_id": "u", "text": "hi", '
            b'"sent_at": "2026-11-25T10:00:00Z", "extra": 1}',
            "extra",
        ),
    ],
)
def test_bad_chat_is_a_schema_error_naming_the_place(raw: bytes, needle: str) -> None:
    with pytest.raises(SchemaError, match=needle):
        codec.decode("chat.v1", raw)


def test_encode_refuses_an_invalid_output() -> None:
    doc = orjson.loads((SCHEMA_DIR / "examples" / "action.v1.json").read_bytes())
    doc["action"] = "allow"  # an action is never "allow"
    with pytest.raises(SchemaError):
        codec.encode("action.v1", doc)


def test_segment_container_is_allow_listed() -> None:
    doc = orjson.loads((SCHEMA_DIR / "examples" / "segment.v1.json").read_bytes())
    doc["container"] = "hls"
    with pytest.raises(SchemaError, match="container"):
        codec.validate("segment.v1", doc)


def test_a_lift_names_the_restriction_it_ends_and_only_a_lift_does() -> None:
    doc = orjson.loads((SCHEMA_DIR / "examples" / "action.v1.json").read_bytes())
    lift = doc | {"action": "lift", "lifts": "blur"}
    codec.validate("action.v1", lift)
    with pytest.raises(SchemaError):
        codec.validate("action.v1", doc | {"action": "lift"})  # lifting what?
    with pytest.raises(SchemaError):
        codec.validate("action.v1", lift | {"lifts": "end_stream"})  # not undoable
    with pytest.raises(SchemaError):
        codec.validate("action.v1", doc | {"lifts": "blur"})  # only on a lift
