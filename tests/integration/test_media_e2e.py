"""The media stage in the worker on the real broker: a hash-bank match ends a stream on its
own, a control record changes a stream's sampling at run time, a bad one is a dead letter."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import orjson
import pytest

from pipeline import codec
from pipeline.media.bank import read_bank
from pipeline.media.decode import MediaLimits, decode_segment
from pipeline.policy import load_policy
from pipeline.policy.loader import default_policy_file
from pipeline.records import iso_ms
from pipeline.segments import META_HEADER
from pipeline.settings import KafkaSettings
from pipeline.simulate.produce import make_producer
from pipeline.simulate.synth import encode_segment
from pipeline.topics import TopicNames
from tests.integration.test_e2e import Worker, collect

pytestmark = [pytest.mark.kafka, pytest.mark.e2e, pytest.mark.models]


def synth(stream_id: str) -> bytes:
    return encode_segment(
        stream_id=stream_id, seq=0, width=640, height=360, fps=30, duration_ms=2000
    )


def meta(stream_id: str, seq: int = 0) -> bytes:
    doc = {
        "stream_id": stream_id,
        "seq": seq,
        "started_at": iso_ms(datetime.now(UTC)),
        "duration_ms": 2000,
        "container": "mpegts",
        "codec": "h264",
    }
    return codec.encode("segment.v1", doc)


@pytest.fixture
def bank(tmp_path: Path) -> tuple[Path, bytes]:
    """A bank holding the first frame of a segment (full size PNG, added with the CLI)."""
    data = synth("banned")
    frame = decode_segment(data, "mpegts", limits=MediaLimits()).frames[0].image
    png = tmp_path / "known.png"
    assert cv2.imwrite(str(png), frame)
    path = tmp_path / "bank.jsonl"
    cli = [sys.executable, "-m", "pipeline.cli", "bank", "add", "--bank", str(path)]
    subprocess.run([*cli, "--category", "csam", str(png)], check=True, timeout=60)
    return path, data


@pytest.fixture
def worker(
    kafka: KafkaSettings, topics: TopicNames, tmp_path: Path, bank: tuple[Path, bytes]
) -> Iterator[Worker]:
    w = Worker(kafka, topics, f"sw-test-{uuid.uuid4().hex[:8]}", tmp_path / "worker.log")
    w.env["SW_HASH_BANK_PATH"] = str(bank[0])
    w.start()
    yield w
    w.stop()
    print(w.log_path.read_text()[-3000:])  # shown by pytest on failure


def results_for(out: dict[str, list[dict[str, Any]]], stream_id: str) -> list[dict[str, Any]]:
    return [r for r in out["results"] if r["input"]["stream_id"] == stream_id]


def frames_by_seq(out: dict[str, list[dict[str, Any]]], stream_id: str) -> dict[int, int]:
    """Frames sampled per segment seq: a restarted worker may process its first fetch twice
    (same result id), so results are counted per input, not per record."""
    return {r["input"]["seq"]: r["frames_sampled"] for r in results_for(out, stream_id)}


def test_hash_match_control_override_and_bad_control(
    kafka: KafkaSettings, topics: TopicNames, worker: Worker, bank: tuple[Path, bytes]
) -> None:
    bank_path, banned = bank
    (entry,) = read_bank(bank_path).entries
    producer = make_producer(kafka)
    control = {
        "stream_id": "dense",
        "sampling": {"strategy": "fps", "fps": 5},
        "updated_at": iso_ms(datetime.now(UTC)),
    }
    bad = {**control, "sampling": {"strategy": "fps", "fps": 500}}
    # the operator's way in: streamwarden control set; then a bad record on the same key,
    # whose dead letter shows the control agent got past the override
    streamwarden(worker, "control", "set", "dense", "--strategy", "fps", "--fps", "5")
    listed = streamwarden(worker, "control", "list", "--json").stdout.strip().splitlines()
    assert [orjson.loads(line)["sampling"] for line in listed] == [control["sampling"]]
    producer.produce(topics.control, key=b"dense", value=orjson.dumps(bad))
    producer.produce(
        topics.segments, key=b"banned", value=banned, headers=[(META_HEADER, meta("banned"))]
    )
    assert producer.flush(30) == 0

    first = collect(
        kafka,
        topics,
        lambda o: bool(results_for(o, "banned")) and bool(o["actions"]) and bool(o["dead_letters"]),
    )
    assert worker.alive()
    (result,) = results_for(first, "banned")
    codec.validate("result.v1", result)
    assert (result["decision"], result["category"], result["rule"]) == (
        "end_stream",
        "hash_match",
        "hash-match-end",
    )
    assert result["scores"]["hash_match"] == 1.0 and "nsfw" in result["scores"]
    evidence = result["evidence"][0]
    assert (evidence["hash_id"], evidence["hash_category"]) == (entry.id, "csam")
    assert evidence["hamming"] <= 31 and evidence["frame_pts_ms"] == 0
    assert result["frames_sampled"] == 1 and result["frames_deduplicated"] == 0
    (action,) = first["actions"]
    assert action["result_id"] == result["id"] and action["evidence"][0]["hash_id"] == entry.id
    (dead,) = first["dead_letters"]
    assert (dead["source"]["topic"], dead["reason"]) == (topics.control, "schema_invalid")

    # The bad record after the override did not undo it: the override is in place.
    data = synth("dense")
    producer.produce(
        topics.segments, key=b"dense", value=data, headers=[(META_HEADER, meta("dense"))]
    )
    assert producer.flush(30) == 0
    second = collect(kafka, topics, lambda o: bool(results_for(o, "dense")))
    (dense,) = results_for(second, "dense")
    assert dense["frames_sampled"] == 10  # 5 fps for 2 s, not the default's one key frame
    assert dense["decision"] == "allow" and "hash_match" not in dense["scores"]

    # Control offsets are never committed: a restarted worker re-reads the override.
    worker.stop()
    worker.start()
    producer.produce(
        topics.segments, key=b"dense", value=data, headers=[(META_HEADER, meta("dense", 1))]
    )
    assert producer.flush(30) == 0
    third = collect(kafka, topics, lambda o: 1 in frames_by_seq(o, "dense"))
    assert frames_by_seq(third, "dense") == {0: 10, 1: 10}

    # Cleared: back to the worker's settings (one key frame a segment).
    streamwarden(worker, "control", "clear", "dense", "--reason", "test over")
    assert streamwarden(worker, "control", "list", "--json").stdout.strip() == ""
    # the control agent runs beside the segments agent: a bad record behind the clear (same
    # key, same partition) becomes a second dead letter once the clear is applied (collect
    # counts ids: the restarted worker re-read the first bad record and dead-lettered it again)
    producer.produce(topics.control, key=b"dense", value=orjson.dumps(bad))
    assert producer.flush(30) == 0
    collect(kafka, topics, lambda o: len(o["dead_letters"]) >= 2)
    producer.produce(
        topics.segments, key=b"dense", value=data, headers=[(META_HEADER, meta("dense", 2))]
    )
    assert producer.flush(30) == 0
    fourth = collect(kafka, topics, lambda o: 2 in frames_by_seq(o, "dense"))
    assert frames_by_seq(fourth, "dense") == {0: 10, 1: 10, 2: 1}


def streamwarden(worker: Worker, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI, on the worker's broker and topics."""
    run = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        env=worker.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run


def test_a_blur_is_lifted_when_its_rule_clears(
    kafka: KafkaSettings, topics: TopicNames, tmp_path: Path, bank: tuple[Path, bytes]
) -> None:
    """A policy whose hash-match rule blurs and clears after one clean segment: the banned
    picture gives blur, the next, clean, segment of the stream a lift of it."""
    end = "    first_action: end_stream\n    last_action: suspend_user\n    strike_weight: 6.0\n"
    text = default_policy_file().read_text()
    assert text.count(end) == 1
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        text.replace(end, end.replace("end_stream", "blur") + "    clear_at: 0.5\n").replace(
            "  hash-match-end:\n", "  hash-match-end:\n    clear_after: 1\n"
        )
    )
    assert load_policy(policy).rule("hash-match-end").first_action == "blur"
    w = Worker(kafka, topics, f"sw-test-{uuid.uuid4().hex[:8]}", tmp_path / "worker.log")
    w.env |= {"SW_HASH_BANK_PATH": str(bank[0]), "SW_POLICY_FILE": str(policy)}
    w.start()
    try:
        producer = make_producer(kafka)
        for seq, data in enumerate((bank[1], synth("dense"))):
            producer.produce(
                topics.segments,
                key=b"banned",
                value=data,
                headers=[(META_HEADER, meta("banned", seq))],
            )
        assert producer.flush(30) == 0
        roles = ("actions", "dsa_statements")
        # until both actions and the blur's statement are in, then all again (5 s): a stray one
        collect(
            kafka,
            topics,
            lambda o: len(o["actions"]) >= 2 and bool(o["dsa_statements"]),
            timeout_s=120,
            roles=roles,
        )
        out = collect(kafka, topics, lambda o: False, timeout_s=5, roles=roles)
    finally:
        w.stop()
    blur, lift = out["actions"]
    assert (blur["action"], blur["rule"], blur["input"]["seq"]) == ("blur", "hash-match-end", 0)
    assert (lift["action"], lift["lifts"], lift["input"]["seq"]) == ("lift", "blur", 1)
    assert lift["strike_weight"] == 0 and lift["id"] != blur["id"]
    assert [d["action_id"] for d in out["dsa_statements"]] == [blur["id"]]  # none for a lift
