"""The segment stage and moderator with sampling overrides, dedup, the hash bank and OCR."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import orjson
import pytest

from pipeline import codec
from pipeline.errors import InferenceError
from pipeline.media.bank import BankEntry, BankFile, write_bank
from pipeline.media.pdq import pdq_hash
from pipeline.media.sampling import SamplingConfig, SamplingOverrides
from pipeline.moderator import SegmentModerator
from pipeline.outputs import Assessment, ModelRef
from pipeline.policy import Policy, decide_segment, load_policy, parse_policy
from pipeline.policy.loader import default_policy_file
from pipeline.records import InRecord, Outputs
from pipeline.segments import (
    META_HEADER,
    PreparedSegment,
    SegmentStage,
    observe_segment,
    segment_assessment,
)
from pipeline.settings import WorkerSettings
from pipeline.state import MemoryStateStore
from tests.unit.media_fixtures import segment
from tests.unit.test_media_sampling import cuts

POLICY = load_policy(default_policy_file())
NSFW_ONLY = parse_policy(
    """
schema: policy.v1
version: nsfw-only
rules:
  nsfw-blur: {kind: score, category: nsfw, input: segment, act_at: 0.5, ladder: video,
              first_action: blur, last_action: end_stream}
"""
)
MODELS = (ModelRef("fake", "1"),)
STARTED = "2026-11-25T20:00:00.000Z"
STARTED_MS = 1_795_636_800_000


def record(
    data: bytes, *, stream: str = "s1", seq: int = 0, offset: int = 0, **meta: Any
) -> InRecord:
    doc = {
        "stream_id": stream,
        "seq": seq,
        "started_at": meta.pop("started_at", STARTED),
        "duration_ms": 2000,
        "container": "mpegts",
        "codec": "h264",
        **meta,
    }
    headers = {META_HEADER: codec.encode("segment.v1", doc)}
    return InRecord("sw.segments", 0, offset, stream.encode(), data, headers, STARTED_MS)


class FakeScorer:
    def __init__(self, value: float = 0.1) -> None:
        self.value = value
        self.calls: list[int] = []
        self.fail = False

    async def score(self, frames: Sequence[np.ndarray]) -> list[dict[str, float]]:
        if self.fail:
            raise InferenceError("backend down")
        self.calls.append(len(frames))
        return [{"nsfw": self.value} for _ in frames]


@pytest.fixture(scope="module")
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(2) as pool:
        yield pool


@pytest.fixture(scope="module")
def ts() -> bytes:
    return segment(duration_ms=4000)


@pytest.fixture(scope="module")
def static() -> bytes:
    """Two seconds of one detailed still picture (a frozen stream).

    Detail matters: on a very smooth picture the encoder's key-frame/P-frame drift alone
    moves PDQ by 8-16 bits (measured), a photo or fine texture by 0-2.
    """
    rng = np.random.default_rng(11)
    blocks = rng.integers(0, 256, (18, 32, 3), dtype=np.uint8)
    picture = cv2.resize(blocks, (320, 180), interpolation=cv2.INTER_NEAREST)
    return cuts([picture], frames_each=50)


def moderator(
    stage: SegmentStage,
    scorer: FakeScorer,
    executor: ThreadPoolExecutor,
    state: MemoryStateStore | None = None,
) -> SegmentModerator:
    return SegmentModerator(
        stage,
        scorer,
        MODELS,
        POLICY,
        executor,
        state or MemoryStateStore(),
        dead_letter_max_payload_bytes=1000,
    )


def results(out: Outputs) -> list[dict[str, Any]]:
    return [codec.decode("result.v1", r.value) for r in out.records if r.topic == "results"]


def assess(
    p: PreparedSegment, frame_scores: Sequence[dict[str, float]], policy: Policy = POLICY
) -> Assessment:
    """One segment through the policy engine, from no state."""
    obs = observe_segment(p, frame_scores, {}, hash_bank=True)
    _, evaluation = decide_segment(policy, None, obs)
    return segment_assessment(p, frame_scores, evaluation, policy, models=MODELS)


def test_prepare_gives_frames_that_know_their_moment(ts: bytes) -> None:
    stage = SegmentStage(WorkerSettings(), overrides=SamplingOverrides())
    p = stage.prepare(record(ts, seq=5))
    assert p.plan is not None and p.plan.strategy == "keyframes"
    assert [(f.stream_id, f.segment_seq, f.pts_ms) for f in p.frames] == [
        ("s1", 5, 0),
        ("s1", 5, 2000),
    ]
    assert [f.time_ms - STARTED_MS for f in p.frames] == [0, 2000]
    assert p.frames[1].frame_time == "2026-11-25T20:00:02.000Z"
    assert p.frames[0].pdq == pdq_hash(p.frames[0].image) and p.frames[0].match is None


def test_a_control_override_changes_the_sampling_of_that_stream_only(ts: bytes) -> None:
    overrides = SamplingOverrides()
    stage = SegmentStage(WorkerSettings(), overrides=overrides)
    overrides.set("s1", SamplingConfig("fps", fps=2))
    assert len(stage.prepare(record(ts)).frames) == 8
    assert len(stage.prepare(record(ts, stream="s2")).frames) == 2


def bank_with(tmp_path: Path, image: np.ndarray) -> BankFile:
    path = tmp_path / "bank.jsonl"
    write_bank(path, [BankEntry("known-1", "csam", pdq_hash(image))])
    return BankFile(path)


def test_a_bank_match_decides_on_its_own_with_the_hash_id_as_evidence(
    ts: bytes, tmp_path: Path
) -> None:
    full = SegmentStage(WorkerSettings(frame_max_side_px=4000), overrides=SamplingOverrides())
    key_frame = full.prepare(record(ts)).frames[1].image  # full size, as an investigator has it
    stage = SegmentStage(
        WorkerSettings(), overrides=SamplingOverrides(), bank=bank_with(tmp_path, key_frame)
    )
    p = stage.prepare(record(ts, seq=3))
    assert p.frames[0].match is None
    match = p.frames[1].match
    assert match is not None and match.entry.id == "known-1" and match.distance <= 31
    a = assess(p, [{"nsfw": 0.01}] * 2)
    assert (a.decision.action, a.decision.category, a.decision.rule) == (
        "end_stream",
        "hash_match",
        "hash-match-end",
    )
    assert a.scores == {"nsfw": 0.01, "hash_match": 1.0}
    hash_evidence = {
        "segment_seq": 3,
        "frame_pts_ms": 2000,
        "frame_time": "2026-11-25T20:00:02.000Z",
        "score": 1.0,
        "hash_id": "known-1",
        "hash_category": "csam",
        "hamming": match.distance,
        "frame_pdq": p.frames[1].pdq.hex,
        "act_at": 0.95,
        "details": {"window": {"n": 1, "m": 1, "unit": "segments", "hits": 1}},
    }
    assert a.evidence == [hash_evidence]
    (end,) = a.enforcements
    assert (end.outcome.kind, end.outcome.action) == ("act", "end_stream")
    assert end.evidence == (hash_evidence,)
    # A policy without a hash rule still gets the match as evidence.
    b = assess(p, [{"nsfw": 0.9}, {"nsfw": 0.2}], NSFW_ONLY)
    assert (b.decision.category, b.decision.action) == ("nsfw", "blur")
    assert [e.get("hash_id") for e in b.evidence] == [None, "known-1"]
    assert b.evidence[0]["frame_pts_ms"] == 0


async def test_moderator_reuses_scores_of_near_duplicates_and_reports_them(
    static: bytes, ts: bytes, executor: ThreadPoolExecutor
) -> None:
    overrides = SamplingOverrides()
    stage = SegmentStage(WorkerSettings(), overrides=overrides)
    overrides.set("frozen", SamplingConfig("fps", fps=2))
    scorer = FakeScorer(0.2)
    mod = moderator(stage, scorer, executor)
    batch = [
        record(static, stream="frozen", seq=0, offset=0),
        record(b"\x00" * 100, stream="bad", offset=1),
        record(ts, stream="moving", seq=0, offset=2),
        record(static, stream="frozen", seq=1, offset=3, started_at="2026-11-25T20:00:02.000Z"),
    ]
    out = await mod.handle(batch)
    assert [r.topic for r in out.records] == ["results", "dead_letters", "results", "results"]
    docs = results(out)
    assert [
        (d["input"]["stream_id"], d["frames_sampled"], d["frames_deduplicated"]) for d in docs
    ] == [
        ("frozen", 4, 3),  # one inferred, three reuse it
        ("moving", 2, 0),
        ("frozen", 4, 4),  # reuses the first segment's frame
    ]
    assert scorer.calls == [3]  # 1 frozen + 2 moving frames through the model
    assert all(d["scores"] == {"nsfw": 0.2} for d in docs)
    # The next batch reuses the committed anchor: nothing to infer.
    later = record(static, stream="frozen", seq=2, offset=4, started_at="2026-11-25T20:00:04.000Z")
    again = results(await mod.handle([later]))
    assert again[0]["frames_deduplicated"] == 4 and scorer.calls == [3]


async def test_a_failed_batch_is_retried_with_the_same_outputs(
    static: bytes, executor: ThreadPoolExecutor
) -> None:
    stage = SegmentStage(WorkerSettings(), overrides=SamplingOverrides())
    scorer = FakeScorer()
    mod = moderator(stage, scorer, executor)
    batch = [record(static, seq=0), record(static, seq=1, started_at="2026-11-25T20:00:02.000Z")]
    scorer.fail = True
    with pytest.raises(InferenceError):
        await mod.handle(batch)
    scorer.fail = False
    docs = results(await mod.handle(batch))
    assert [d["frames_deduplicated"] for d in docs] == [0, 1]  # as if the failure never was


async def test_adaptive_sampling_densifies_after_a_near_threshold_score(
    ts: bytes, executor: ThreadPoolExecutor
) -> None:
    settings = WorkerSettings(sampling="adaptive", adaptive_fps=2, adaptive_trigger_score=0.3)
    stage = SegmentStage(settings, overrides=SamplingOverrides())
    scorer = FakeScorer(0.4)
    mod = moderator(stage, scorer, executor)
    first = results(await mod.handle([record(ts, seq=0)]))
    assert first[0]["frames_sampled"] == 2  # key frames
    later = record(ts, seq=1, started_at="2026-11-25T20:00:04.000Z")
    assert results(await mod.handle([later]))[0]["frames_sampled"] == 8  # 2 fps for 4 s
    scorer.value = 0.0
    calm = record(ts, seq=9, started_at="2026-11-25T20:05:00.000Z")  # past the 30 s hold
    assert results(await mod.handle([calm]))[0]["frames_sampled"] == 2


def test_result_document_of_the_stage_is_valid(ts: bytes) -> None:
    stage = SegmentStage(WorkerSettings(), overrides=SamplingOverrides())
    p = stage.prepare(record(ts))
    a = assess(p, [{"nsfw": 0.9}, {"nsfw": 0.1}], NSFW_ONLY)
    assert a.decision.action == "blur" and a.evidence[0]["frame_pts_ms"] == 0
    assert orjson.loads(orjson.dumps(a.evidence))[0]["frame_time"] == "2026-11-25T20:00:00.000Z"
    # the default policy wants 2 of 3 frames at 0.8: one frame is a review task
    r = assess(p, [{"nsfw": 0.9}, {"nsfw": 0.1}])
    assert (r.decision.action, r.decision.rule) == ("review", "nsfw-blur")


class FakeOcr:
    def __init__(self, text: str) -> None:
        self.text = text
        self.calls: list[list[tuple[int, int]]] = []

    async def read_text(self, frames: Sequence[np.ndarray]) -> list[str]:
        self.calls.append([f.shape[:2] for f in frames])
        return [self.text for _ in frames]


def test_frames_for_ocr_keep_a_larger_copy() -> None:
    data = segment(width=1280, height=720, duration_ms=2000, gop_frames=30)
    settings = WorkerSettings()
    stage = SegmentStage(settings, overrides=SamplingOverrides(), ocr_pick=lambda n, seq: [0])
    p = stage.prepare(record(data))
    assert [f.image.shape for f in p.frames] == [(252, 448, 3)] * 2
    assert p.frames[0].ocr_image is not None and p.frames[0].ocr_image.shape == (720, 1280, 3)
    assert p.frames[1].ocr_image is None
    # PDQ of the classifier copy, as without OCR
    plain = SegmentStage(settings, overrides=SamplingOverrides()).prepare(record(data))
    assert all(f.ocr_image is None for f in plain.frames)
    assert p.frames[0].pdq.distance(plain.frames[0].pdq) <= 8


async def test_a_burned_in_phone_number_is_reviewed_then_acted_on(
    ts: bytes, executor: ThreadPoolExecutor
) -> None:
    """ocr-solicitation acts on 2 of 3 segments: the first is a review task (thumbnail, OCR
    text, what was found), the second an action; state carries over between batches."""
    stage = SegmentStage(
        WorkerSettings(), overrides=SamplingOverrides(), ocr_pick=lambda n, seq: [0]
    )
    ocr = FakeOcr("live-42 seq 0\nwrite me 8 (912) 345-67-89")
    state = MemoryStateStore()
    mod = SegmentModerator(
        stage,
        FakeScorer(0.01),
        MODELS,
        POLICY,
        executor,
        state,
        dead_letter_max_payload_bytes=1000,
        ocr=ocr,
    )
    first = await mod.handle([record(ts, seq=0)])
    assert ocr.calls == [[(180, 320)]]  # one frame a segment (the fixture is 320x180)
    assert [r.topic for r in first.records] == ["results", "review"]
    (task,) = [codec.decode("review_task.v1", r.value) for r in first.records[1:]]
    assert (task["rule"], task["category"]) == ("ocr-solicitation", "ocr_text")
    (evidence,) = task["evidence"]
    assert evidence["ocr_text"].endswith("8 (912) 345-67-89")
    assert evidence["text_findings"] == {"phones": ["89123456789"], "terms": ["write me"]}
    assert (evidence["frame_pts_ms"], evidence["act_at"], evidence["review_at"]) == (0, 0.9, 0.5)
    thumb = evidence["thumbnail"]
    jpeg = base64.b64decode(thumb["jpeg_b64"])
    assert jpeg[:2] == b"\xff\xd8" and len(jpeg) == thumb["size_bytes"] < 64 * 1024
    assert (thumb["width_px"], thumb["height_px"]) == (320, 180)
    assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (180, 320, 3)
    (result,) = results(first)
    assert result["evidence"][0]["ocr_text"] == evidence["ocr_text"]
    assert {m["name"] for m in result["models"]} == {"fake"}
    assert [(w.table, w.key) for w in first.state] == [("video", "s1")]
    await state.write(first.state)

    later = record(ts, seq=1, offset=1, started_at="2026-11-25T20:00:04.000Z")
    second = await mod.handle([later])
    assert [r.topic for r in second.records] == ["results", "actions", "dsa_statements"]
    action = codec.decode("action.v1", second.records[1].value)
    assert (action["action"], action["rule"], action["policy_version"]) == (
        "warn",
        "ocr-solicitation",
        "sw-2026.11.2",
    )
    assert action["evidence"][0]["details"]["window"] == {
        "n": 2,
        "m": 3,
        "unit": "segments",
        "hits": 2,
    }
    assert "thumbnail" not in action["evidence"][0]
    assert "user_id" not in action["input"]  # no streamer in the metadata: no strike
    # redelivered once its state is saved: the memoised evaluation, the same ids
    await state.write(second.state)
    again = await mod.handle([later])
    assert [orjson.loads(r.value)["id"] for r in again.records] == [
        orjson.loads(r.value)["id"] for r in second.records
    ]
    assert again.state == []


AT_4S, AT_8S = "2026-11-25T20:00:04.000Z", "2026-11-25T20:00:08.000Z"


async def test_a_blur_whose_rule_clears_is_lifted(ts: bytes, executor: ThreadPoolExecutor) -> None:
    """blur and age_restrict can be undone: when the rule clears (hysteresis), a ``lift``
    action tells the enforcement services; it counts no strike and has no DSA statement."""
    stage = SegmentStage(WorkerSettings(dedup_enabled=False), overrides=SamplingOverrides())
    scorer, state = FakeScorer(0.9), MemoryStateStore()
    mod = moderator(stage, scorer, executor, state)

    def actions(out: Outputs) -> list[dict[str, Any]]:
        return [codec.decode("action.v1", r.value) for r in out.records if r.topic == "actions"]

    first = await mod.handle([record(ts, stream="s", seq=0, offset=0)])
    (blur,) = actions(first)
    assert (blur["action"], blur["rule"]) == ("blur", "nsfw-blur")
    await state.write(first.state)  # what the agent does once the outputs are acknowledged
    scorer.value = 0.1  # the default policy lifts after 3 clean frames in a row; 2 a segment
    quiet = await mod.handle([record(ts, stream="s", seq=1, offset=1, started_at=AT_4S)])
    assert actions(quiet) == [] and results(quiet)[0]["decision"] == "blur"  # still held
    await state.write(quiet.state)
    second = await mod.handle([record(ts, stream="s", seq=2, offset=2, started_at=AT_8S)])
    (lift,) = actions(second)
    assert (lift["action"], lift["lifts"], lift["rule"]) == ("lift", "blur", "nsfw-blur")
    assert lift["strike_weight"] == 0 and lift["evidence"][0]["segment_seq"] == 2
    assert {r.topic for r in second.records} == {"results", "actions"}  # no strike, no DSA
    assert results(second)[0]["decision"] == "allow"
    redelivered = await mod.handle([record(ts, stream="s", seq=2, offset=2, started_at=AT_8S)])
    assert [a["id"] for a in actions(redelivered)] == [lift["id"]]
