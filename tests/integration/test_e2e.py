"""The worker end to end on the real broker with the real models, as a separate process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline import codec
from pipeline.records import iso_ms
from pipeline.settings import KafkaSettings
from pipeline.simulate.chat_lines import ABUSIVE, BENIGN
from pipeline.simulate.produce import SimulationPlan, make_producer, run_simulation, segment_meta
from pipeline.tail import OUTPUT_ROLES, iter_outputs
from pipeline.topics import TopicNames

pytestmark = [pytest.mark.kafka, pytest.mark.e2e, pytest.mark.models]


class Worker:
    """``streamwarden worker`` in a subprocess, on the test's own topics and consumer group."""

    def __init__(
        self, kafka: KafkaSettings, names: TopicNames, app_id: str, log_path: Path
    ) -> None:
        prefix = names.segments.removesuffix("segments")
        self.env = os.environ | {
            "SW_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "SW_KAFKA_TOPIC_PREFIX": prefix,
            "SW_APP_ID": app_id,
            "SW_METRICS_PORT": "0",
            "SW_SEGMENT_BATCH_WAIT_MS": "100",
            "SW_CHAT_BATCH_WAIT_MS": "50",
            "SW_COMMIT_INTERVAL_S": "0.5",
            "SW_LOG_LEVEL": "INFO",
            "SW_STATE_DIR": str(log_path.parent / "faust-data"),  # not ./<app_id>-data
        }
        self.app_id = app_id
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pipeline.cli", "worker", "--no-apply"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture
def worker_env() -> dict[str, str]:
    """Extra settings of the ``worker`` fixture (a test overrides it with parametrize)."""
    return {}


@pytest.fixture
def worker(
    kafka: KafkaSettings, topics: TopicNames, tmp_path: Path, worker_env: dict[str, str]
) -> Iterator[Worker]:
    w = Worker(kafka, topics, f"sw-test-{uuid.uuid4().hex[:8]}", tmp_path / "worker.log")
    w.env |= worker_env
    w.start()
    yield w
    w.stop()
    print(w.log_path.read_text()[-3000:])  # shown by pytest on failure


def collect(
    kafka: KafkaSettings,
    names: TopicNames,
    done: Any,
    timeout_s: float = 150,
    roles: tuple[str, ...] = OUTPUT_ROLES,
) -> dict[str, list[dict[str, Any]]]:
    """Read every output topic from the start until ``done(outputs)`` or the deadline; each
    output once, as consumers de-duplicate on ``id`` (a redelivered input, e.g. the first fetch
    of a starting worker, is published again with the same ids; a changed id shows up twice)."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    ids: set[str] = set()
    deadline = time.monotonic() + timeout_s
    for role, doc in iter_outputs(
        kafka, names, from_beginning=True, idle_timeout_s=timeout_s, roles=roles
    ):
        if doc["id"] in ids:
            continue
        ids.add(doc["id"])
        out[role].append(doc)
        if done(out) or time.monotonic() > deadline:
            break
    return out


def produce_chat(kafka: KafkaSettings, names: TopicNames, lines: list[tuple[str, str]]) -> None:
    producer = make_producer(kafka)
    for n, (locale, text) in enumerate(lines):
        doc = {
            "message_id": f"m{n:03d}",
            "stream_id": f"stream-{n % 2}",
            "user_id": f"viewer-{n}",
            "text": text,
            "sent_at": iso_ms(datetime.now(UTC)),
            "locale": locale,
        }
        producer.produce(
            names.chat, key=doc["stream_id"].encode(), value=codec.encode("chat.v1", doc)
        )
    assert producer.flush(30) == 0


def produce_bad_inputs(kafka: KafkaSettings, names: TopicNames, plan: SimulationPlan) -> None:
    producer = make_producer(kafka)
    meta = segment_meta(plan, 0, 999, datetime.now(UTC))
    producer.produce(
        names.segments, key=b"bad", value=b"\x47" + os.urandom(5000), headers=[("sw-meta", meta)]
    )
    producer.produce(names.chat, key=b"bad", value=b'{"message_id": "m-bad", "text": 42')
    assert producer.flush(30) == 0


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


METRICS_PORT = _free_port()


@pytest.mark.parametrize("worker_env", [{"SW_METRICS_PORT": str(METRICS_PORT)}])
def test_segments_and_chat_give_results_actions_and_dead_letters(
    kafka: KafkaSettings, topics: TopicNames, worker: Worker
) -> None:
    plan = SimulationPlan(streams=2, duration_s=6, segment_ms=2000, chat_per_min=0, realtime=False)
    # bad inputs first: the worker must keep going after them
    produce_bad_inputs(kafka, topics, plan)
    lines = list(BENIGN) + list(ABUSIVE) + list(BENIGN[:3])
    assert len(lines) == 20
    produce_chat(kafka, topics, lines)
    summary = run_simulation(kafka, topics, plan)
    assert summary.segments == 6 and not summary.errors

    def done(o: dict[str, list[dict[str, Any]]]) -> bool:
        return (
            len(o["results"]) >= 26
            and len(o["dead_letters"]) >= 2
            and len(o["actions"]) >= len(ABUSIVE)
        )

    out = collect(kafka, topics, done)
    assert worker.alive()

    results = out["results"]
    seg_results = Counter(
        (r["input"]["stream_id"], r["input"]["seq"])
        for r in results
        if r["input"]["kind"] == "segment"
    )
    chat_results = Counter(
        r["input"]["message_id"] for r in results if r["input"]["kind"] == "chat"
    )
    assert seg_results == {(plan.stream_id(s), q): 1 for s in range(2) for q in range(3)}
    assert chat_results == {f"m{n:03d}": 1 for n in range(20)}
    for r in results:
        codec.validate("result.v1", r)
        if r["input"]["kind"] == "segment":
            assert r["frames_sampled"] >= 1
            assert r["models"][0]["name"] == "open_nsfw"
            assert r["evidence"][0]["segment_seq"] == r["input"]["seq"]

    abusive_ids = {f"m{n:03d}" for n in range(len(BENIGN), len(BENIGN) + len(ABUSIVE))}
    acted = {a["input"]["message_id"] for a in out["actions"]}
    assert acted == abusive_ids
    for a in out["actions"]:
        codec.validate("action.v1", a)
        assert a["action"] in ("delete_message", "timeout_user")
        assert a["rule"] and a["policy_version"]

    reasons = {d["source"]["topic"]: d["reason"] for d in out["dead_letters"]}
    assert reasons == {topics.segments: "corrupt_media", topics.chat: "schema_invalid"}
    for d in out["dead_letters"]:
        codec.validate("dead_letter.v1", d)
        assert d["payload_b64"]

    # every input processed -> the group's committed offsets reach the end of both input topics
    assert_committed_to_end(kafka, worker.app_id, [topics.segments, topics.chat])
    assert_metrics_served(METRICS_PORT)


def assert_metrics_served(port: int) -> None:
    """The worker's HTTP side door during the run: ready, alive, and the SRE metrics counted."""
    import urllib.request

    base = f"http://127.0.0.1:{port}"
    for path in ("/livez", "/readyz"):
        with urllib.request.urlopen(base + path, timeout=5) as resp:
            assert resp.status == 200, path
    with urllib.request.urlopen(base + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    # at least: a rebalance under load may redeliver a batch (at-least-once)
    assert samples['sw_records_in_total{kind="segment"}'] >= 7
    assert samples['sw_records_in_total{kind="chat"}'] >= 21
    assert samples['sw_dead_letters_total{reason="corrupt_media"}'] >= 1
    assert samples['sw_dead_letters_total{reason="schema_invalid"}'] >= 1
    for needle in (
        "sw_frames_sampled_total",
        "sw_batcher_call_seconds_bucket",
        "sw_batch_seconds_bucket",
        "sw_decisions_total",
        "sw_consumer_lag_records",
        "sw_event_loop_heartbeat_age_seconds",
    ):
        assert needle in text, needle


def assert_committed_to_end(kafka: KafkaSettings, group: str, topic_names: list[str]) -> None:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(kafka.confluent_config() | {"group.id": group})
    try:
        meta = consumer.list_topics(timeout=10).topics
        parts = [TopicPartition(t, p) for t in topic_names for p in meta[t].partitions]
        ends = {(tp.topic, tp.partition): consumer.get_watermark_offsets(tp)[1] for tp in parts}
        deadline = time.monotonic() + 20
        while True:
            committed = {
                (tp.topic, tp.partition): tp.offset for tp in consumer.committed(parts, timeout=10)
            }
            lagging = {
                k: (committed[k], end) for k, end in ends.items() if max(committed[k], 0) < end
            }
            if not lagging or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert not lagging, f"offsets not committed to the end: {lagging}"
    finally:
        consumer.close()


# Delivery, not OCR, is under test: OCR (~0.3-0.5 s of CPU a segment on 2 cores) would make
# the backlog after the SIGKILL restart race the deadline on a loaded machine.
@pytest.mark.timeout(420)  # a hang guard, not a speed check
@pytest.mark.parametrize("worker_env", [{"SW_OCR_ENABLED": "false", "SW_PARTITION_STALL_S": "10"}])
def test_killed_worker_restarts_without_losing_any_input(
    kafka: KafkaSettings, topics: TopicNames, worker: Worker
) -> None:
    """SIGTERM then SIGKILL mid-run, each followed by a restart: every input gets a result and
    redeliveries reuse the same ids."""
    plan = SimulationPlan(streams=2, duration_s=16, segment_ms=1000, chat_per_min=90, realtime=True)
    import threading

    produced: dict[str, Any] = {}
    producer_thread = threading.Thread(
        target=lambda: produced.setdefault("summary", run_simulation(kafka, topics, plan))
    )
    producer_thread.start()
    time.sleep(6)
    worker.stop(signal.SIGTERM)  # graceful stop mid-batch: must not commit unpublished inputs
    worker.start()
    time.sleep(6)
    worker.stop(signal.SIGKILL)
    worker.start()
    producer_thread.join(120)
    summary = produced["summary"]
    expected = summary.segments + summary.chat

    def done(o: dict[str, list[dict[str, Any]]]) -> bool:
        return len({r["id"] for r in o["results"]}) >= expected

    # The worker must heal on its own: faust can drop messages in the rebalances around a
    # restart, and pipeline.commit_guard seeks back (at a jump, or after SW_PARTITION_STALL_S).
    out = collect(kafka, topics, done, timeout_s=180)
    ids_by_input: dict[str, set[str]] = defaultdict(set)
    for r in out["results"]:
        src = r["input"]
        ids_by_input[f"{src['stream_id']}/{src.get('seq', src.get('message_id'))}"].add(r["id"])
    assert len(ids_by_input) == expected == plan.streams * plan.segments_per_stream + summary.chat
    assert all(len(ids) == 1 for ids in ids_by_input.values()), "a redelivery changed an id"
    # and no hole is left behind: the group's commits reach the end of every input partition
    assert_committed_to_end(kafka, worker.app_id, [topics.segments, topics.chat])
