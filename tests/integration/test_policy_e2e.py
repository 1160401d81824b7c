"""The policy engine in the worker, on the real broker with the real models: a rule moved to
shadow in the policy file, a phone number burned into the video, and review task -> verdict
-> KPI report. One worker for the module, on a copy of the shipped policy with
``chat-toxicity`` moved to shadow."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline import codec
from pipeline.policy import load_policy, make_verdict
from pipeline.policy.loader import default_policy_file
from pipeline.records import iso_ms
from pipeline.segments import META_HEADER
from pipeline.settings import KafkaSettings
from pipeline.simulate.produce import make_producer
from pipeline.simulate.synth import encode_segment
from pipeline.topics import TopicNames, apply_topics
from tests.integration.test_e2e import Worker
from tests.integration.test_e2e import collect as e2e_collect

pytestmark = [pytest.mark.kafka, pytest.mark.e2e, pytest.mark.models]

Outputs = dict[str, list[dict[str, Any]]]
ROLES = ("results", "actions", "review", "dead_letters", "dsa_statements", "review_verdicts")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def shadow_copy(tmp: Path) -> Path:
    """The shipped policy with chat-toxicity in shadow mode: an edit of the file, nothing else."""
    text = default_policy_file().read_text()
    text = text.replace("version: sw-2026.11.2", "version: sw-2026.11.2-shadow-tox")
    live = "  chat-toxicity:\n    kind: score\n"
    assert live in text
    text = text.replace(live, live + "    mode: shadow\n")
    path = tmp / "policy.yaml"
    path.write_text(text)
    assert load_policy(path).rule("chat-toxicity").shadow
    return path


@pytest.fixture(scope="module")
def module_topics(kafka: KafkaSettings) -> TopicNames:
    names = TopicNames.with_prefix(f"test-{uuid.uuid4().hex[:10]}.")
    apply_topics(kafka, names)
    return names


@pytest.fixture(scope="module")
def shadow_worker(
    kafka: KafkaSettings, module_topics: TopicNames, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    tmp = tmp_path_factory.mktemp("policy-e2e")
    w = Worker(kafka, module_topics, f"sw-test-{uuid.uuid4().hex[:8]}", tmp / "worker.log")
    w.env |= {"SW_POLICY_FILE": str(shadow_copy(tmp)), "SW_METRICS_PORT": str(free_port())}
    w.start()
    yield w
    w.stop()
    print(w.log_path.read_text()[-3000:])  # shown by pytest on failure


def collect(
    kafka: KafkaSettings, names: TopicNames, done: Callable[[Outputs], bool], timeout_s: float = 120
) -> Outputs:
    """``test_e2e.collect`` on this module's roles (verdicts and DSA statements too)."""
    return e2e_collect(kafka, names, done, timeout_s, roles=ROLES)


def of_stream(docs: list[dict[str, Any]], stream_id: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["input"]["stream_id"] == stream_id]


def send_chat(kafka: KafkaSettings, names: TopicNames, stream: str, lines: list[str]) -> None:
    producer = make_producer(kafka)
    for n, text in enumerate(lines):
        doc = {
            "message_id": f"{stream}-m{n}",
            "stream_id": stream,
            "user_id": f"{stream}-viewer-{n}",
            "text": text,
            "sent_at": iso_ms(datetime.now(UTC)),
        }
        producer.produce(names.chat, key=stream.encode(), value=codec.encode("chat.v1", doc))
    assert producer.flush(30) == 0


def test_a_rule_moved_to_shadow_writes_results_only(
    kafka: KafkaSettings, module_topics: TopicNames, shadow_worker: Worker
) -> None:
    send_chat(kafka, module_topics, "shadow-1", ["you are a stupid idiot", "hello everyone"])
    out = collect(kafka, module_topics, lambda o: len(of_stream(o["results"], "shadow-1")) >= 2)
    assert shadow_worker.alive()
    by_message = {r["input"]["message_id"]: r for r in of_stream(out["results"], "shadow-1")}
    abusive, benign = by_message["shadow-1-m0"], by_message["shadow-1-m1"]
    assert abusive["policy_version"] == "sw-2026.11.2-shadow-tox"
    assert abusive["decision"] == "allow" and abusive["scores"]["chat_toxicity"] > 0.9
    shadow = {(o["rule"], o["kind"], o["action"]) for o in abusive["outcomes"] if o["shadow"]}
    assert ("chat-toxicity", "act", "delete_message") in shadow
    assert all(o["shadow"] for o in abusive["outcomes"])
    assert "outcomes" not in benign
    assert of_stream(out["actions"], "shadow-1") == []  # what the live rule would have done


def test_a_burned_in_phone_number_is_reviewed_then_acted_on(
    kafka: KafkaSettings, module_topics: TopicNames, shadow_worker: Worker
) -> None:
    """ocr-solicitation: on screen in 2 of 3 segments. The first is a review task with the
    frame's thumbnail and the OCR text, the second a warning with a DSA statement; the worker
    restarts in between: the rule's window is state, rebuilt from its changelog."""
    start = datetime.now(UTC) - timedelta(seconds=4)

    def send(seq: int) -> None:
        producer = make_producer(kafka)
        data = encode_segment(
            stream_id="ocr-1", seq=seq, width=1280, height=720, fps=30, duration_ms=2000,
            text="write 8 (912) 345-67-89",
        )  # fmt: skip
        meta = {
            "stream_id": "ocr-1",
            "seq": seq,
            "started_at": iso_ms(start + timedelta(seconds=2 * seq)),
            "duration_ms": 2000,
            "container": "mpegts",
            "codec": "h264",
            "user_id": "streamer-ocr",
            "territory": "FR",
        }
        headers = [(META_HEADER, codec.encode("segment.v1", meta))]
        producer.produce(module_topics.segments, key=b"ocr-1", value=data, headers=headers)
        assert producer.flush(30) == 0

    send(0)
    collect(kafka, module_topics, lambda o: bool(of_stream(o["review"], "ocr-1")))
    shadow_worker.stop()
    shadow_worker.start()
    send(1)

    def done(o: Outputs) -> bool:
        return bool(of_stream(o["actions"], "ocr-1")) and bool(o["dsa_statements"])

    out = collect(kafka, module_topics, done, timeout_s=150)
    results = sorted(of_stream(out["results"], "ocr-1"), key=lambda r: r["input"]["seq"])
    assert [(r["decision"], r["rule"]) for r in results] == [
        ("review", "ocr-solicitation"),
        ("warn", "ocr-solicitation"),
    ]
    assert all("ocr" in {m["name"] for m in r["models"]} for r in results)
    (task,) = of_stream(out["review"], "ocr-1")
    (evidence,) = task["evidence"]
    assert "345-67-89" in evidence["ocr_text"]
    assert evidence["text_findings"]["phones"] == ["89123456789"]
    assert evidence["thumbnail"]["width_px"] == 320 and evidence["thumbnail"]["jpeg_b64"]
    (action,) = of_stream(out["actions"], "ocr-1")
    assert (action["action"], action["category"], action["rule"]) == (
        "warn",
        "ocr_text",
        "ocr-solicitation",
    )
    assert action["policy_version"] == "sw-2026.11.2-shadow-tox"
    assert action["input"]["user_id"] == "streamer-ocr" and action["territory"] == "FR"
    assert action["evidence"][0]["details"]["window"]["hits"] == 2
    statement = next(s for s in out["dsa_statements"] if s["action_id"] == action["id"])
    codec.validate("dsa_statement.v1", statement)
    assert statement["statement"]["decision_visibility"] == ["DECISION_VISIBILITY_CONTENT_LABELLED"]
    assert statement["statement"]["content_type"] == ["CONTENT_TYPE_VIDEO"]


def test_review_task_to_verdict_to_kpi_report(
    kafka: KafkaSettings, module_topics: TopicNames, shadow_worker: Worker
) -> None:
    """chat-solicitation: a weak cue ("dm me") is a review task, a phone number an action.
    A reviewer confirms the task and audits the action; the worker consumes the verdicts
    (metrics) and ``streamwarden kpi`` computes precision, time to action, automated share."""
    send_chat(kafka, module_topics, "kpi-1", ["dm me for more", "call me 8 912 345 67 89"])

    def done(o: Outputs) -> bool:
        return bool(of_stream(o["review"], "kpi-1")) and bool(of_stream(o["actions"], "kpi-1"))

    out = collect(kafka, module_topics, done)
    (task,) = of_stream(out["review"], "kpi-1")
    (action,) = of_stream(out["actions"], "kpi-1")
    assert (task["rule"], task["category"], task["input"]["message_id"]) == (
        "chat-solicitation",
        "spam",
        "kpi-1-m0",
    )
    window = task["evidence"][0]["chat_window"]
    assert [line["message_id"] for line in window] == ["kpi-1-m0", "kpi-1-m1"]
    assert (action["rule"], action["action"]) == ("chat-solicitation", "delete_message")

    now = iso_ms(datetime.now(UTC))
    producer = make_producer(kafka)
    verdicts = [
        make_verdict(task["id"], "confirm", "rev-1", now, enforced_action="delete_message",
                     category=task["category"], rule=task["rule"]),
        # an audit of the automated action: a task of the reviewing tool, naming the action
        make_verdict("a" * 32, "confirm", "rev-2", now, action_id=action["id"],
                     category=action["category"], rule=action["rule"]),
    ]  # fmt: skip
    for v in verdicts:
        producer.produce(
            module_topics.review_verdicts,
            key=v["task_id"].encode(),
            value=codec.encode("review_verdict.v1", v),
        )
    assert producer.flush(30) == 0

    # consumed back by the worker: the verdict counters
    url = f"http://127.0.0.1:{shadow_worker.env['SW_METRICS_PORT']}/metrics"
    want = (
        'sw_review_verdicts_total{category="spam",rule="chat-solicitation",'
        'subject="review_band",verdict="confirm"} 1.0'
    )
    deadline = time.monotonic() + 60
    while want not in (metrics := urllib.request.urlopen(url, timeout=5).read().decode()):
        assert time.monotonic() < deadline, "the worker never counted the verdict"
        time.sleep(0.5)
    assert 'sw_enforcement_actions_total{action="delete_message",automated="yes",' in metrics

    env = os.environ | {
        "SW_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "SW_KAFKA_TOPIC_PREFIX": module_topics.segments.removesuffix("segments"),
    }
    run = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "kpi", "--json", "--idle-timeout-s", "3"],
        env=env,
        capture_output=True,
        timeout=120,
        check=True,
    )
    report = json.loads(run.stdout)
    band = report["review_precision_by_rule"]["chat-solicitation"]
    assert (band["confirmed"], band["overturned"], band["precision"]) == (1, 0, 1.0)
    audited = report["action_precision_by_rule"]["chat-solicitation"]
    assert (audited["confirmed"], audited["precision"]) == (1, 1.0)
    assert report["action_precision_by_category"]["spam"]["precision"] == 1.0
    automated = report["time_to_action"]["spam/automated"]
    human = report["time_to_action"]["spam/human"]
    assert automated["count"] >= 1 and 0 <= automated["p50_s"] < 60
    assert human["count"] == 1 and 0 <= human["p50_s"] < 300
    assert report["human_actions"] == 1 and report["automated_actions"] >= 1
    assert 0 < report["automated_share"] < 1
