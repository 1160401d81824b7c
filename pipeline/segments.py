"""Segment stage: metadata + bytes -> sampled, hashed frames; frame scores -> assessment. No Kafka.

``SegmentStage.prepare`` runs in an executor, one segment per call: fetch (by reference),
plan the sampling (settings, the stream's control override, adaptive state), demux and
decode, PDQ-hash every sampled frame and look it up in the hash bank. ``assess_segment``
turns per-frame scores (inferred or reused) and bank matches into one assessment.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from pipeline import codec
from pipeline.errors import ConfigError, SchemaError
from pipeline.media import DecodedSegment, MediaLimits, decode_segment, fetch_segment
from pipeline.media.bank import BankFile, BankMatch
from pipeline.media.control import PROCESS_OVERRIDES
from pipeline.media.dedup import DedupConfig
from pipeline.media.pdq import PdqHash, pdq_hash
from pipeline.media.sampling import SamplePlan, SamplingConfig, SamplingOverrides, StreamSampling
from pipeline.outputs import Assessment, ModelRef
from pipeline.policy import ThresholdPolicy
from pipeline.records import InRecord, OutRecord, iso_ms, parse_iso
from pipeline.settings import WorkerSettings

log = logging.getLogger(__name__)

META_HEADER = "sw-meta"
HASH_MATCH = "hash_match"  # the category of a bank match (schemas/_defs.v1.json)


@dataclass(frozen=True)
class SegmentMeta:
    stream_id: str
    seq: int
    started_at: str
    duration_ms: int
    container: str
    codec: str
    uri: str | None = None
    user_id: str | None = None
    territory: str | None = None

    @classmethod
    def from_record(cls, rec: InRecord) -> SegmentMeta:
        raw = rec.headers.get(META_HEADER)
        if raw is None:
            raise SchemaError(f"segment.v1: header {META_HEADER!r} is missing")
        return cls(**codec.decode("segment.v1", raw))

    @property
    def start_ms(self) -> int:
        """Wall-clock start, epoch milliseconds."""
        return round(parse_iso(self.started_at).timestamp() * 1000)


_EPOCH = parse_iso("1970-01-01T00:00:00Z")


@dataclass(frozen=True)
class FrameSample:
    """One sampled frame and the exact moment it shows."""

    stream_id: str
    segment_seq: int
    pts_ms: int  # from the segment start
    time_ms: int  # wall clock, epoch ms: segment started_at + pts_ms
    image: npt.NDArray[np.uint8]  # BGR, HxWx3
    keyframe: bool
    pdq: PdqHash
    match: BankMatch | None = None

    @property
    def frame_time(self) -> str:
        return iso_ms(_EPOCH + timedelta(milliseconds=self.time_ms))

    def evidence(self, score: float, *, with_match: bool = False) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "segment_seq": self.segment_seq,
            "frame_pts_ms": self.pts_ms,
            "frame_time": self.frame_time,
            "score": round(score, 6),
        }
        if with_match and self.match is not None:
            doc["hash_id"] = self.match.entry.id
            doc["hash_category"] = self.match.entry.category
            doc["hamming"] = self.match.distance
            doc["frame_pdq"] = self.pdq.hex
        return doc


@dataclass(frozen=True)
class PreparedSegment:
    record: InRecord
    meta: SegmentMeta
    media: DecodedSegment
    frames: tuple[FrameSample, ...] = ()
    plan: SamplePlan | None = None


def sampling_config(settings: WorkerSettings) -> SamplingConfig:
    """The settings' default sampling configuration."""
    try:
        return SamplingConfig(
            strategy=settings.sampling,
            fps=settings.sample_fps,
            scene_threshold=settings.scene_threshold,
            scene_check_fps=settings.scene_check_fps,
            adaptive_fps=settings.adaptive_fps,
            adaptive_trigger_score=settings.adaptive_trigger_score,
            adaptive_hold_s=settings.adaptive_hold_s,
        )
    except ValueError as exc:
        raise ConfigError(f"sampling settings: {exc}") from exc


def dedup_config(settings: WorkerSettings) -> DedupConfig:
    return DedupConfig(
        enabled=settings.dedup_enabled,
        max_distance=settings.dedup_max_hamming,
        max_age_ms=round(settings.dedup_max_age_s * 1000),
        min_quality=settings.pdq_min_quality,
    )


def media_limits(settings: WorkerSettings) -> MediaLimits:
    return MediaLimits(
        max_bytes=settings.segment_max_bytes,
        max_width=settings.segment_max_width_px,
        max_height=settings.segment_max_height_px,
        max_duration_ms=settings.segment_max_duration_ms,
        max_decoded_frames=settings.segment_max_decoded_frames,
    )


def hash_frames(
    media: DecodedSegment,
    meta: SegmentMeta,
    bank: BankFile | None,
    *,
    match_max_hamming: int,
    min_quality: int,
) -> tuple[FrameSample, ...]:
    """PDQ-hash every sampled frame; bank-match those whose hash is good enough to trust."""
    snapshot = bank.current() if bank is not None else None
    start_ms = meta.start_ms
    out = []
    for f in media.frames:
        pdq = pdq_hash(f.image)
        match = None
        if snapshot is not None and pdq.quality >= min_quality:
            match = snapshot.match(pdq, max_distance=match_max_hamming)
        at_ms = start_ms + f.pts_ms
        out.append(
            FrameSample(meta.stream_id, meta.seq, f.pts_ms, at_ms, f.image, f.keyframe, pdq, match)
        )
    return tuple(out)


class SegmentStage:
    """Fetch (when by reference), demux, sample and hash one segment, within the bounds.

    ``overrides``: the per-stream sampling overrides the control agent fills (default: the
    process's map); ``bank``: the hash bank (default: ``settings.hash_bank_path``, loaded now).
    """

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        overrides: SamplingOverrides | None = None,
        bank: BankFile | None = None,
    ) -> None:
        self.settings = settings
        self._limits = media_limits(settings)
        self.sampling = StreamSampling(
            sampling_config(settings),
            overrides if overrides is not None else PROCESS_OVERRIDES,
            max_streams=settings.stream_state_max,
        )
        if bank is None and settings.hash_bank_path is not None:
            bank = BankFile(settings.hash_bank_path)
        self.bank = bank

    def prepare(self, rec: InRecord) -> PreparedSegment:
        """Raises an ``InputError`` subclass for anything that should become a dead letter."""
        s = self.settings
        meta = SegmentMeta.from_record(rec)
        if meta.uri is not None:
            data = fetch_segment(
                meta.uri,
                max_bytes=s.segment_max_bytes,
                file_roots=s.fetch_file_roots,
                timeout_s=s.fetch_timeout_s,
            )
        else:
            data = rec.value or b""
        plan = self.sampling.plan(meta.stream_id, meta.start_ms)
        media = decode_segment(
            data,
            meta.container,
            limits=self._limits,
            strategy=plan.strategy,
            sample_fps=plan.fps,
            max_side_px=s.frame_max_side_px,
            scene_threshold=plan.scene_threshold,
            scene_check_fps=plan.scene_check_fps,
        )
        frames = hash_frames(
            media,
            meta,
            self.bank,
            match_max_hamming=s.hash_match_max_hamming,
            min_quality=s.pdq_min_quality,
        )
        return PreparedSegment(rec, meta, media, frames, plan)

    def observe(self, seg: PreparedSegment, frame_scores: Sequence[Mapping[str, float]]) -> bool:
        """Feed the segment's highest score to adaptive sampling; True if it boosted."""
        top = max((max(s.values(), default=0.0) for s in frame_scores), default=0.0)
        if any(f.match is not None for f in seg.frames):
            top = 1.0
        end_ms = seg.meta.start_ms + seg.meta.duration_ms
        return self.sampling.observe(seg.meta.stream_id, end_ms, top)


def assess_segment(
    seg: PreparedSegment,
    frame_scores: Sequence[Mapping[str, float]],
    *,
    models: Sequence[ModelRef],
    policy: ThresholdPolicy,
) -> Assessment:
    """Per category the worst frame counts; the evidence is that frame, with its exact time.

    A hash-bank match scores 1.0 in category ``hash_match`` whatever the models say; its
    evidence names the bank entry and the Hamming distance (closest match first).
    """
    if len(frame_scores) != len(seg.frames):
        raise ValueError("one score mapping per sampled frame is required")
    worst: dict[str, tuple[float, int]] = {}
    for i, scores in enumerate(frame_scores):
        for category, score in scores.items():
            if category not in worst or score > worst[category][0]:
                worst[category] = (float(score), i)
    matched = [(f.match.distance, i) for i, f in enumerate(seg.frames) if f.match is not None]
    if matched:
        worst[HASH_MATCH] = (1.0, min(matched)[1])
    scores_by_category = {c: s for c, (s, _) in worst.items()}
    decision = policy.decide(scores_by_category)
    evidence = []
    if decision.category in worst:
        frame = seg.frames[worst[decision.category][1]]
        with_match = decision.category == HASH_MATCH
        evidence.append(frame.evidence(decision.score, with_match=with_match))
    if matched and decision.category != HASH_MATCH:  # the match is evidence all the same
        evidence.append(seg.frames[worst[HASH_MATCH][1]].evidence(1.0, with_match=True))
    source = {"kind": "segment", "stream_id": seg.meta.stream_id, "seq": seg.meta.seq}
    if seg.meta.user_id:
        source["user_id"] = seg.meta.user_id
    if (produced := seg.record.produced_at()) is not None:
        source["produced_at"] = produced
    return Assessment(
        input=source,
        scores=scores_by_category,
        evidence=evidence,
        models=models,
        decision=decision,
        policy_version=policy.version,
        frames_sampled=len(seg.frames),
    )


def with_frames_deduplicated(records: Sequence[OutRecord], count: int) -> list[OutRecord]:
    """Add ``frames_deduplicated`` to the result record.

    A stop-gap until :class:`pipeline.outputs.Assessment` carries the count itself (owned
    by another change): re-encoding validates the document against result.v1 again.
    """
    out = []
    for r in records:
        if r.topic != "results":
            out.append(r)
            continue
        doc = orjson.loads(r.value)
        doc["frames_deduplicated"] = count
        out.append(OutRecord(r.topic, r.key, codec.encode("result.v1", doc), r.headers))
    return out
