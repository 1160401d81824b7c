"""The segment stage and moderator with sampling overrides, dedup and the hash bank."""

from __future__ import annotations

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
from pipeline.outputs import ModelRef
from pipeline.policy import Rule, ThresholdPolicy
from pipeline.policy.threshold import default_policy
from pipeline.records import InRecord
from pipeline.segments import META_HEADER, SegmentStage, assess_segment
from pipeline.settings import WorkerSettings
from tests.unit.media_fixtures import segment
from tests.unit.test_media_sampling import cuts

POLICY = default_policy("test-1")
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
    stage: SegmentStage, scorer: FakeScorer, executor: ThreadPoolExecutor
) -> SegmentModerator:
    return SegmentModerator(
        stage, scorer, MODELS, POLICY, executor, dead_letter_max_payload_bytes=1000
    )


def results(out: Sequence[Any]) -> list[dict[str, Any]]:
    return [codec.decode("result.v1", r.value) for r in out if r.topic == "results"]


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
    a = assess_segment(p, [{"nsfw": 0.01}] * 2, models=MODELS, policy=POLICY)
    assert (a.decision.action, a.decision.category, a.decision.rule) == (
        "end_stream",
        "hash_match",
        "hash-match-end",
    )
    assert a.scores == {"nsfw": 0.01, "hash_match": 1.0}
    assert a.evidence == [
        {
            "segment_seq": 3,
            "frame_pts_ms": 2000,
            "frame_time": "2026-11-25T20:00:02.000Z",
            "score": 1.0,
            "hash_id": "known-1",
            "hash_category": "csam",
            "hamming": match.distance,
            "frame_pdq": p.frames[1].pdq.hex,
        }
    ]
    # A policy without a hash rule still gets the match as evidence.
    nsfw_only = ThresholdPolicy("t", (Rule("nsfw-blur", "nsfw", act_at=0.5, action="blur"),))
    b = assess_segment(p, [{"nsfw": 0.9}, {"nsfw": 0.2}], models=MODELS, policy=nsfw_only)
    assert b.decision.category == "nsfw"
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
    assert [r.topic for r in out] == ["results", "dead_letters", "results", "results"]
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
    a = assess_segment(p, [{"nsfw": 0.9}, {"nsfw": 0.1}], models=MODELS, policy=POLICY)
    assert a.decision.action == "blur" and a.evidence[0]["frame_pts_ms"] == 0
    assert orjson.loads(orjson.dumps(a.evidence))[0]["frame_time"] == "2026-11-25T20:00:00.000Z"
