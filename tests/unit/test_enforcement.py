"""Strikes per user (the strikes agent's handler), verdicts consumed back, the state seam."""

from __future__ import annotations

from typing import Any

import orjson
from faust.streams import current_event
from prometheus_client import REGISTRY

from pipeline import codec
from pipeline.enforcement import StrikeKeeper, VerdictCounter
from pipeline.faust_state import _on_partition
from pipeline.policy import action_id, make_verdict
from pipeline.records import InRecord, Outputs, StateWrite
from pipeline.state import STRIKES, MemoryStateStore
from pipeline.topics import STATE_TABLES, TOPIC_SPECS, TopicNames
from tests.unit.policy_fixtures import POLICY


def action(n: int, *, user: str = "u1", weight: float | None = None) -> dict[str, Any]:
    input_id = f"chat:s1:m{n}"
    doc: dict[str, Any] = {
        "schema": "action.v1",
        "id": action_id(input_id, "test-1", "chat-toxicity", "delete_message"),
        "result_id": "0" * 32,
        "input": {"kind": "chat", "stream_id": "s1", "message_id": f"m{n}", "user_id": user},
        "action": "delete_message",
        "category": "chat_toxicity",
        "rule": "chat-toxicity",
        "scores": {"chat_toxicity": 0.95},
        "evidence": [{"message_id": f"m{n}", "text": "x", "score": 0.95}],
        "models": [{"name": "tox", "version": "1"}],
        "policy_version": "test-1",
        "decided_at": f"2026-11-25T10:00:{n:02d}.000Z",
    }
    if weight is not None:
        doc["strike_weight"] = weight
    codec.validate("action.v1", doc)
    return doc


def feed(docs: list[dict[str, Any]], offset: int = 0) -> list[InRecord]:
    return [
        InRecord(
            "sw.actions-by-user", 2, offset + i, d["input"]["user_id"].encode(), orjson.dumps(d)
        )
        for i, d in enumerate(docs)
    ]


def topics(out: Outputs) -> list[str]:
    return [r.topic for r in out.records]


async def test_strikes_suspend_once_at_the_threshold_and_never_double_count() -> None:
    """suspend_at 5.0 in the test policy, one strike per chat-toxicity action, decaying with
    a half-life of an hour (five strikes within seconds weigh a little under 5)."""
    store = MemoryStateStore()
    keeper = StrikeKeeper(POLICY, store, dead_letter_max_payload_bytes=100)
    four = await keeper.handle(feed([action(n) for n in range(4)]))
    assert four.records == []
    assert [(w.table, w.key, w.partition) for w in four.state] == [(STRIKES, "u1", 2)]
    await store.write(four.state)
    # the same four again (redelivered), a cooled-down repeat (weight 0), a fifth and a sixth
    batch = [action(n) for n in range(4)] + [action(8, weight=0.0), action(9), action(10)]
    out = await keeper.handle(feed(batch, offset=4))
    assert topics(out) == ["actions", "dsa_statements"]
    suspension = codec.decode("action.v1", out.records[0].value)
    assert (suspension["action"], suspension["rule"], suspension["input"]["message_id"]) == (
        "suspend_user",
        "strikes",
        "m10",
    )
    assert suspension["evidence"][0]["details"]["strikes"] >= 5.0
    assert suspension["evidence"][0]["details"]["trigger_action_id"] == batch[-1]["id"]
    assert out.records[0].key == b"s1"  # actions are keyed by stream
    statement = codec.decode("dsa_statement.v1", out.records[1].value)
    assert statement["statement"]["decision_account"] == "DECISION_ACCOUNT_SUSPENDED"
    await store.write(out.state)
    # the trigger redelivered: the same suspension (same id), nothing counted again
    again = await keeper.handle(feed([action(10)], offset=11))
    assert codec.decode("action.v1", again.records[0].value)["id"] == suspension["id"]
    assert again.state == []


async def test_a_malformed_action_or_verdict_is_a_dead_letter() -> None:
    keeper = StrikeKeeper(POLICY, MemoryStateStore(), dead_letter_max_payload_bytes=100)
    bad = InRecord("sw.actions-by-user", 0, 1, b"u1", b"{}")
    assert topics(await keeper.handle([bad])) == ["dead_letters"]
    counter = VerdictCounter(dead_letter_max_payload_bytes=100)
    assert [r.topic for r in await counter.handle([bad])] == ["dead_letters"]


async def test_verdicts_feed_the_live_metrics() -> None:
    def count(verdict: str) -> float:
        labels = {
            "category": "spam",
            "rule": "chat-solicit",
            "subject": "review_band",
            "verdict": verdict,
        }
        return REGISTRY.get_sample_value("sw_review_verdicts_total", labels) or 0.0

    before = count("confirm"), count("overturn")
    docs = [
        make_verdict(f"{i:032x}", v, "rev-1", "2026-11-25T10:05:00.000Z", category="spam",
                     rule="chat-solicit")
        for i, v in enumerate(("confirm", "confirm", "overturn"))
    ]  # fmt: skip
    records = [
        InRecord("sw.review-verdicts", 0, i, None, orjson.dumps(d)) for i, d in enumerate(docs)
    ]
    assert await VerdictCounter(dead_letter_max_payload_bytes=100).handle(records) == []
    assert (count("confirm") - before[0], count("overturn") - before[1]) == (2.0, 1.0)
    precision = REGISTRY.get_sample_value(
        "sw_precision", {"scope": "rule", "name": "chat-solicit", "subject": "review_band"}
    )
    assert precision is not None and 0 < precision < 1


async def test_memory_store_reads_by_partition() -> None:
    store = MemoryStateStore()
    await store.write([StateWrite("video", "s1", b"{}", 3)])
    assert store.get("video", "s1", partition=3) == b"{}"
    assert store.get("video", "s1", partition=None) == b"{}"
    assert store.get("video", "s1", partition=1) is None


def test_faust_stores_see_the_partition_we_name() -> None:
    assert current_event() is None
    with _on_partition(4):
        event = current_event()
        assert event is not None and event.message.partition == 4
        with _on_partition(None):
            assert current_event() is None
    assert current_event() is None


def test_state_changelogs_are_declared_compacted_and_co_partitioned() -> None:
    names = TopicNames.with_prefix("x.")
    assert len(names.declared()) == len(TOPIC_SPECS)
    declared = dict(names.declared("sw-app"))
    partitions = {s.role: s.partitions for s in TOPIC_SPECS}
    for table in STATE_TABLES:
        spec = declared[f"sw-app-{table.name}-changelog"]
        assert spec.partitions == partitions[table.source]
        assert spec.config()["cleanup.policy"] == "compact"
    assert {n for n, _ in names.declared()} >= {
        "x.review-verdicts",
        "x.dsa-statements",
        "x.actions-by-user",
    }
