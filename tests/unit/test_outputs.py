"""Output documents from the policy engine's evaluations, through the chat moderator with the
in-memory state store (the Faust tables' test double)."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from pipeline import codec
from pipeline.errors import CorruptMedia
from pipeline.moderator import ChatModerator
from pipeline.outputs import ModelRef, dead_letter_record
from pipeline.policy import action_id, result_id, review_id
from pipeline.records import InRecord, Outputs, deterministic_id, iso_ms, parse_iso
from pipeline.state import MemoryStateStore
from tests.unit.policy_fixtures import POLICY

MODEL = ModelRef("tox", "1")
T0 = parse_iso("2026-11-25T10:00:00Z")


@dataclass(frozen=True)
class Score:
    toxicity: float
    language: str = "en"


class FakeTextScorer:
    """Toxicity by text: ``score_of[text]``, else 0.01."""

    def __init__(self, score_of: dict[str, float]) -> None:
        self.score_of = score_of

    def score(self, texts: Sequence[str]) -> list[Score]:
        return [Score(self.score_of.get(t, 0.01)) for t in texts]


def chat_record(
    n: int, text: str, *, user: str = "u1", offset: int | None = None, at_s: float | None = None
) -> InRecord:
    sent = T0.timestamp() + (n if at_s is None else at_s)
    doc = {
        "message_id": f"m{n}",
        "stream_id": "s1",
        "user_id": user,
        "text": text,
        "sent_at": iso_ms(datetime.fromtimestamp(sent, UTC)),
    }
    off = n if offset is None else offset
    return InRecord("chat", 0, off, b"s1", orjson.dumps(doc), {}, 1_795_600_000_000 + n)


@pytest.fixture(scope="module")
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(1) as pool:
        yield pool


def moderator(
    executor: ThreadPoolExecutor, store: MemoryStateStore, score_of: dict[str, float]
) -> ChatModerator:
    return ChatModerator(
        FakeTextScorer(score_of), MODEL, POLICY, executor, store, dead_letter_max_payload_bytes=100
    )


def docs(out: Outputs, topic: str) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in out.records if r.topic == topic]


async def test_allow_gives_one_result_and_no_action(executor: ThreadPoolExecutor) -> None:
    out = await moderator(executor, MemoryStateStore(), {}).handle([chat_record(1, "hi all")])
    assert [r.topic for r in out.records] == ["results"]
    (result,) = docs(out, "results")
    assert (result["decision"], result["rule"], result["policy_version"]) == (
        "allow",
        None,
        "test-1",
    )
    assert "outcomes" not in result
    assert [w.table for w in out.state] == ["chat-streams", "chat-users"]


async def test_an_action_names_rule_policy_version_and_evidence(
    executor: ThreadPoolExecutor,
) -> None:
    out = await moderator(executor, MemoryStateStore(), {"you idiot": 0.95}).handle(
        [chat_record(1, "you idiot")]
    )
    assert [r.topic for r in out.records] == ["results", "actions", "strikes", "dsa_statements"]
    (result,), (action,), (again,), (statement,) = (
        docs(out, t) for t in ("results", "actions", "strikes", "dsa_statements")
    )
    for topic, doc in (
        ("result.v1", result),
        ("action.v1", action),
        ("dsa_statement.v1", statement),
    ):
        codec.validate(topic, doc)
    assert action["id"] == action_id("chat:s1:m1", "test-1", "chat-toxicity", "delete_message")
    assert action["result_id"] == result["id"] == result_id("chat:s1:m1", "test-1")
    assert (action["rule"], action["policy_version"], action["action"]) == (
        "chat-toxicity",
        "test-1",
        "delete_message",
    )
    assert (action["step"], action["automated"], action["strike_weight"]) == (0, True, 1.0)
    (evidence,) = action["evidence"]
    assert evidence["message_id"] == "m1" and evidence["text"] == "you idiot"
    assert (evidence["score"], evidence["act_at"], evidence["review_at"]) == (0.95, 0.8, 0.5)
    assert evidence["details"]["language"] == "en"
    assert result["outcomes"] == [
        {
            "rule": "chat-toxicity",
            "category": "chat_toxicity",
            "kind": "act",
            "action": "delete_message",
            "score": 0.95,
            "shadow": False,
            "step": 0,
        },
        {
            "rule": "chat-toxicity-shadow",
            "category": "chat_toxicity",
            "kind": "act",
            "action": "delete_message",
            "score": 0.95,
            "shadow": True,
            "step": 0,
        },
    ]
    # the strikes feed is the same action keyed by the user; the DSA statement by the action
    strikes = next(r for r in out.records if r.topic == "strikes")
    assert strikes.key == b"u1" and again == action
    dsa = next(r for r in out.records if r.topic == "dsa_statements")
    assert dsa.key == action["id"].encode() and statement["action_id"] == action["id"]
    assert statement["statement"]["decision_visibility"] == ["DECISION_VISIBILITY_CONTENT_REMOVED"]
    assert statement["statement"]["content_language"] == "EN"


async def test_a_shadow_rule_writes_to_results_only(executor: ThreadPoolExecutor) -> None:
    """chat-toxicity reviews from 0.5; its shadow candidate acts from 0.6."""
    out = await moderator(executor, MemoryStateStore(), {"meh": 0.7}).handle(
        [chat_record(1, "meh")]
    )
    assert [r.topic for r in out.records] == ["results", "review"]
    (result,) = docs(out, "results")
    assert (result["decision"], result["rule"]) == ("review", "chat-toxicity")
    shadow = [o for o in result["outcomes"] if o["shadow"]]
    assert shadow == [
        {
            "rule": "chat-toxicity-shadow",
            "category": "chat_toxicity",
            "kind": "act",
            "action": "delete_message",
            "score": 0.7,
            "shadow": True,
            "step": 0,
        }
    ]
    assert dict(out.records[0].headers)["sw-shadow"] == b"1"


async def test_a_review_task_carries_the_chat_window(executor: ThreadPoolExecutor) -> None:
    lines = [
        chat_record(1, "hello", user="a"),
        chat_record(2, "what game is this", user="b"),
        chat_record(3, "that is kind of dumb", user="c"),
        chat_record(4, "lol", user="d"),  # after it, in the same batch
        chat_record(60, "much later", user="e"),  # outside the window
    ]
    mod = moderator(executor, MemoryStateStore(), {"that is kind of dumb": 0.6})
    out = await mod.handle(lines)
    (task,) = docs(out, "review")
    codec.validate("review_task.v1", task)
    assert task["id"] == review_id("chat:s1:m3", "test-1", "chat-toxicity")
    (evidence,) = task["evidence"]
    window = evidence["chat_window"]
    assert [x["message_id"] for x in window] == ["m1", "m2", "m3", "m4"]
    assert [x.get("flagged", False) for x in window] == [False, False, True, False]
    assert window[0] == {
        "message_id": "m1",
        "user_id": "a",
        "sent_at": "2026-11-25T10:00:01.000Z",
        "text": "hello",
    }


async def test_redelivery_gives_the_same_ids_and_saves_each_key_once(
    executor: ThreadPoolExecutor,
) -> None:
    store = MemoryStateStore()
    batch = [chat_record(1, "you idiot"), chat_record(2, "you idiot again")]
    scores = {"you idiot": 0.95, "you idiot again": 0.99}
    first = await moderator(executor, store, scores).handle(batch)
    assert sorted((w.table, w.key) for w in first.state) == [
        ("chat-streams", "s1"),
        ("chat-users", "s1|u1"),
    ]
    # the second offence within the escalation window climbs a rung
    assert [a["action"] for a in docs(first, "actions")] == ["delete_message", "timeout_user"]
    await store.write(first.state)
    # redelivered (other offsets) after the state was saved: the memo answers, same ids
    again = [chat_record(1, "you idiot", offset=10), chat_record(2, "you idiot again", offset=11)]
    second = await moderator(executor, store, scores).handle(again)
    assert [orjson.loads(r.value)["id"] for r in second.records] == [
        orjson.loads(r.value)["id"] for r in first.records
    ]
    assert second.state == []  # nothing changed
    # and redelivered before the state was saved: recomputed, the same ids all the same
    third = await moderator(executor, MemoryStateStore(), scores).handle(again)
    assert [r.value for r in third.records if r.topic == "strikes"] != []
    assert [orjson.loads(r.value)["id"] for r in third.records] == [
        orjson.loads(r.value)["id"] for r in first.records
    ]


async def test_a_raid_acts_on_the_earlier_messages_too(executor: ThreadPoolExecutor) -> None:
    """chat-raid: 3 first-time chatters with similar lines within 30 s."""
    batch = [
        chat_record(1, "follow my channel now", user="r1"),
        chat_record(2, "follow my channel now!", user="r2"),
        chat_record(3, "follow my channel now!!", user="r3"),
    ]
    out = await moderator(executor, MemoryStateStore(), {}).handle(batch)
    actions = docs(out, "actions")
    assert sorted((a["input"]["message_id"], a["input"]["user_id"]) for a in actions) == [
        ("m1", "r1"),
        ("m2", "r2"),
        ("m3", "r3"),
    ]
    assert {(a["rule"], a["action"]) for a in actions} == {("chat-raid", "timeout_user")}
    for a in actions:
        codec.validate("action.v1", a)
        assert a["result_id"] == result_id(f"chat:s1:{a['input']['message_id']}", "test-1")
        assert a["evidence"][0]["text"].startswith("follow my channel now")
    earlier = next(a for a in actions if a["input"]["message_id"] == "m1")
    assert earlier["evidence"][0]["details"]["raid_with"] == "m3"
    assert sorted(r.key for r in out.records if r.topic == "strikes") == [b"r1", b"r2", b"r3"]


async def test_malformed_chat_is_a_dead_letter_in_its_place(executor: ThreadPoolExecutor) -> None:
    bad = InRecord("chat", 0, 5, b"s1", b'{"message_id": 1}')
    out = await moderator(executor, MemoryStateStore(), {}).handle(
        [chat_record(1, "hi"), bad, chat_record(2, "yo")]
    )
    assert [r.topic for r in out.records] == ["results", "dead_letters", "results"]


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
