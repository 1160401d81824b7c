from __future__ import annotations

import base64

import orjson

from pipeline import codec
from pipeline.chat import ChatMessage, assess_chat
from pipeline.errors import CorruptMedia
from pipeline.outputs import ModelRef, assessment_records, dead_letter_record
from pipeline.policy import DEFAULT_POLICY
from pipeline.records import InRecord, deterministic_id

MODEL = ModelRef("tox", "1")


def chat_record(text: str, offset: int = 5) -> InRecord:
    doc = {
        "message_id": "m1",
        "stream_id": "s1",
        "user_id": "u1",
        "text": text,
        "sent_at": "2026-11-25T10:00:00Z",
    }
    return InRecord("chat", 0, offset, b"s1", orjson.dumps(doc), {}, 1_795_600_000_000)


def outputs_for(score: float, offset: int = 5) -> list[tuple[str, dict]]:
    rec = chat_record("whatever", offset)
    a = assess_chat(rec, ChatMessage.from_record(rec), score, model=MODEL, policy=DEFAULT_POLICY)
    return [(r.topic, orjson.loads(r.value)) for r in assessment_records(a)]


def test_allow_gives_one_result_and_no_action() -> None:
    out = outputs_for(0.01)
    assert [t for t, _ in out] == ["results"]
    assert out[0][1]["decision"] == "allow"


def test_enforcement_gives_result_and_action_linked_by_id() -> None:
    (_, result), (topic, action) = outputs_for(0.95)
    assert topic == "actions"
    assert action["result_id"] == result["id"]
    assert action["action"] == result["decision"] == "delete_message"
    assert action["evidence"][0]["message_id"] == "m1"
    assert action["input"]["produced_at"].endswith("Z")


def test_review_band_gives_a_review_task() -> None:
    topics = [t for t, _ in outputs_for(0.6)]
    assert topics == ["results", "review"]


def test_ids_are_deterministic_across_redelivery() -> None:
    first = [d["id"] for _, d in outputs_for(0.95, offset=5)]
    again = [d["id"] for _, d in outputs_for(0.95, offset=99)]  # same message, redelivered
    assert first == again
    assert len(set(first)) == 2


def test_deterministic_id_separates_parts() -> None:
    assert deterministic_id("ab", "c") != deterministic_id("a", "bc")
    assert len(deterministic_id("x")) == 32


def test_dead_letter_carries_source_reason_and_payload() -> None:
    rec = InRecord("segs", 2, 7, b"s1", b"\x00garbage", {"sw-meta": b"{}"})
    out = dead_letter_record(rec, CorruptMedia("no frames"), max_payload_bytes=100)
    doc = codec.decode("dead_letter.v1", out.value)
    assert doc["reason"] == "corrupt_media"
    assert doc["source"] == {
        "topic": "segs",
        "partition": 2,
        "offset": 7,
        "key": "s1",
        "headers": {"sw-meta": "{}"},
    }
    assert base64.b64decode(doc["payload_b64"]) == b"\x00garbage"
    assert doc["payload_ref"] == "kafka://segs/2/7"
    assert dict(out.headers)["sw-reason"] == b"corrupt_media"


def test_dead_letter_of_a_big_payload_keeps_a_reference_only() -> None:
    rec = InRecord("segs", 0, 1, b"\xff\xfe", b"x" * 1000)
    doc = orjson.loads(dead_letter_record(rec, CorruptMedia("x"), max_payload_bytes=10).value)
    assert "payload_b64" not in doc
    assert doc["payload_bytes"] == 1000
    assert doc["source"]["key"].startswith("b64:")
