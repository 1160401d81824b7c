"""KPI maths: precision, time-to-action percentiles, automated share; the kpi command."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from prometheus_client import REGISTRY
from typer.testing import CliRunner

from pipeline import cli_policy, kpi
from pipeline.kpi import compute_kpis, percentile, summarize
from pipeline.policy import make_verdict


def ts(seconds: float) -> str:
    whole = int(seconds)
    ms = round((seconds - whole) * 1000)
    return f"2026-11-25T10:{whole // 60:02d}:{whole % 60:02d}.{ms:03d}Z"


def action(i: int, category: str, rule: str, *, frame_s: float, decided_s: float) -> dict:
    return {
        "id": f"a{i:031d}",
        "input": {"kind": "segment", "stream_id": "s", "seq": i, "produced_at": ts(frame_s + 1)},
        "action": "blur",
        "category": category,
        "rule": rule,
        "scores": {category: 0.9},
        "evidence": [{"segment_seq": i, "frame_time": ts(frame_s)}],
        "decided_at": ts(decided_s),
    }


def task(
    i: int, category: str, rule: str, *, produced_s: float, action_id: str | None = None
) -> dict:
    doc = {
        "id": f"t{i:031d}",
        "input": {
            "kind": "chat",
            "stream_id": "s",
            "message_id": f"m{i}",
            "produced_at": ts(produced_s),
        },
        "category": category,
        "rule": rule,
        "evidence": [{"message_id": f"m{i}", "text": "x", "score": 0.6}],
        "created_at": ts(produced_s + 1),
    }
    if action_id:
        doc["action_id"] = action_id
    return doc


def verdict(task_id: str, v: str, at_s: float, **kw: Any) -> dict:
    return {"task_id": task_id, "verdict": v, "reviewer": "r1", "decided_at": ts(at_s), **kw}


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([1.0], 50, 1.0), ([1, 2, 3, 4], 50, 2.5), ([1, 2, 3, 4, 5], 90, 4.6), ([0, 10], 99, 9.9)],
)
def test_percentile_interpolates_like_numpy(values: list[float], q: float, expected: float) -> None:
    assert percentile(sorted(values), q) == pytest.approx(expected)


def test_summarize() -> None:
    p = summarize([3.0, 1.0, 2.0])
    assert p is not None
    assert (p.count, p.p50_s, p.max_s) == (3, 2.0, 3.0)
    assert summarize([]) is None


def test_report() -> None:
    actions = [
        action(1, "nsfw", "nsfw-blur", frame_s=0, decided_s=1.5),
        action(2, "nsfw", "nsfw-blur", frame_s=10, decided_s=12.5),
        action(3, "nsfw", "nsfw-end", frame_s=20, decided_s=21.0),
        action(4, "graphic", "graphic-warn", frame_s=30, decided_s=34.0),
    ]
    tasks = [
        # audits of automated actions
        task(1, "nsfw", "nsfw-blur", produced_s=0, action_id=actions[0]["id"]),
        task(2, "nsfw", "nsfw-blur", produced_s=0, action_id=actions[1]["id"]),
        task(3, "nsfw", "nsfw-end", produced_s=0, action_id=actions[2]["id"]),
        # review-band tasks
        task(4, "chat_toxicity", "chat-toxicity", produced_s=100),
        task(5, "chat_toxicity", "chat-toxicity", produced_s=100),
        task(6, "chat_toxicity", "chat-toxicity", produced_s=100),
    ]
    verdicts = [
        verdict(tasks[0]["id"], "confirm", 200),
        verdict(tasks[1]["id"], "confirm", 200),
        verdict(tasks[1]["id"], "overturn", 300),  # a later verdict replaces the earlier
        verdict(tasks[2]["id"], "confirm", 200),
        verdict(tasks[3]["id"], "confirm", 130),  # 30 s after the message: a human action
        verdict(tasks[4]["id"], "overturn", 140),
    ]
    r = compute_kpis(actions, tasks, verdicts)
    assert r.action_precision_by_rule["nsfw-blur"].value == 0.5
    assert r.action_precision_by_rule["nsfw-end"].value == 1.0
    by_cat = r.action_precision_by_category["nsfw"]
    assert (by_cat.confirmed, by_cat.overturned, by_cat.value) == (2, 1, pytest.approx(2 / 3))
    assert r.review_precision_by_rule["chat-toxicity"].value == 0.5
    assert r.tasks_open == 1
    assert (r.automated_actions, r.human_actions) == (4, 1)
    assert r.automated_share == pytest.approx(0.8)
    nsfw = r.time_to_action["nsfw/automated"]
    assert (nsfw.count, nsfw.p50_s, nsfw.max_s) == (3, 1.5, 2.5)
    assert r.time_to_action["graphic/automated"].p99_s == 4.0
    assert r.time_to_action["chat_toxicity/human"].p50_s == 30.0
    assert r.review_latency is not None and r.review_latency.count == 2
    doc = r.to_doc()
    assert doc["automated_share"] == pytest.approx(0.8)
    assert doc["action_precision_by_rule"]["nsfw-blur"]["precision"] == 0.5
    json.dumps(doc)


def test_time_to_action_falls_back_to_the_record_time() -> None:
    a = action(1, "nsfw", "r", frame_s=0, decided_s=5)
    a["evidence"] = [{"segment_seq": 1}]
    assert compute_kpis([a], [], []).time_to_action["nsfw/automated"].p50_s == 4.0


def test_verdict_may_name_the_audited_action_itself() -> None:
    a = action(1, "nsfw", "nsfw-blur", frame_s=0, decided_s=1)
    t = task(1, "nsfw", "nsfw-blur", produced_s=0)
    r = compute_kpis([a], [t], [verdict(t["id"], "overturn", 50, action_id=a["id"])])
    assert r.action_precision_by_rule["nsfw-blur"].value == 0.0
    assert r.review_precision_by_rule == {}


def test_a_lift_is_neither_an_action_nor_a_time_to_action() -> None:
    blur = action(1, "nsfw", "nsfw-blur", frame_s=0, decided_s=2)
    lift = action(2, "nsfw", "nsfw-blur", frame_s=30, decided_s=90) | {
        "action": "lift",
        "lifts": "blur",
    }
    r = compute_kpis([blur, lift], [], [])
    assert r.automated_actions == 1
    assert r.time_to_action["nsfw/automated"].count == 1  # the blur's only


def test_empty_inputs() -> None:
    r = compute_kpis([], [], [])
    assert r.automated_share is None and r.time_to_action == {} and r.tasks_open == 0


def test_make_verdict_is_schema_valid_and_deterministic() -> None:
    a = make_verdict("a" * 32, "confirm", "rev-1", "2026-11-25T10:00:00.000Z", rule="r", note=None)
    b = make_verdict("a" * 32, "confirm", "rev-1", "2026-11-25T10:00:00.000Z", rule="r")
    assert a == b and "note" not in a


def test_prometheus_helpers_observe_and_export() -> None:
    a = action(1, "nsfw", "nsfw-blur", frame_s=0, decided_s=2)
    kpi.observe_action(a)
    kpi.observe_verdict(verdict("t", "confirm", 5), {"category": "nsfw", "rule": "nsfw-blur"})
    kpi.export_report(compute_kpis([a], [], []))
    labels = {"category": "nsfw", "rule": "nsfw-blur", "action": "blur", "automated": "yes"}
    assert (REGISTRY.get_sample_value("sw_enforcement_actions_total", labels) or 0) >= 1
    assert REGISTRY.get_sample_value("sw_automated_action_share") == 1.0


def test_kpi_command_reads_topics_and_prints(monkeypatch: pytest.MonkeyPatch) -> None:
    a = action(1, "nsfw", "nsfw-blur", frame_s=0, decided_s=2)
    t = task(1, "nsfw", "nsfw-blur", produced_s=0, action_id=a["id"])

    def fake(from_beginning: bool, idle_timeout_s: float) -> Iterator[tuple[str, dict]]:
        assert from_beginning
        yield "actions", a
        yield "review", t
        yield cli_policy.VERDICTS_ROLE, verdict(t["id"], "confirm", 10)

    monkeypatch.setattr(cli_policy, "read_topics", fake)
    app = typer.Typer()
    app.command()(cli_policy.kpi)
    app.command("other")(lambda: None)
    runner = CliRunner()
    out = runner.invoke(app, ["kpi", "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["action_precision_by_rule"]["nsfw-blur"]["precision"] == 1.0
    text = runner.invoke(app, ["kpi"])
    assert text.exit_code == 0, text.output
    assert "precision by rule" in text.output and "nsfw/automated" in text.output
