"""Segment stage: metadata + bytes -> sampled frames; frame scores -> assessment. No Kafka."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from pipeline import codec
from pipeline.errors import SchemaError
from pipeline.media import DecodedSegment, MediaLimits, decode_segment, fetch_segment
from pipeline.outputs import Assessment, ModelRef
from pipeline.policy import ThresholdPolicy
from pipeline.records import InRecord, iso_ms, parse_iso
from pipeline.settings import WorkerSettings

META_HEADER = "sw-meta"


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


@dataclass(frozen=True)
class PreparedSegment:
    record: InRecord
    meta: SegmentMeta
    media: DecodedSegment


class SegmentStage:
    """Fetch (when by reference), demux and sample one segment, within the configured bounds."""

    def __init__(self, settings: WorkerSettings) -> None:
        self._settings = settings
        self._limits = MediaLimits(
            max_bytes=settings.segment_max_bytes,
            max_width=settings.segment_max_width_px,
            max_height=settings.segment_max_height_px,
            max_duration_ms=settings.segment_max_duration_ms,
            max_decoded_frames=settings.segment_max_decoded_frames,
        )

    def prepare(self, rec: InRecord) -> PreparedSegment:
        """Raises an ``InputError`` subclass for anything that should become a dead letter."""
        s = self._settings
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
        media = decode_segment(
            data,
            meta.container,
            limits=self._limits,
            strategy=s.sampling,
            sample_fps=s.sample_fps,
            max_side_px=s.frame_max_side_px,
        )
        return PreparedSegment(rec, meta, media)


def assess_segment(
    seg: PreparedSegment,
    frame_scores: Sequence[Mapping[str, float]],
    *,
    models: Sequence[ModelRef],
    policy: ThresholdPolicy,
) -> Assessment:
    """Per category the worst frame counts; the evidence is that frame, with its exact time."""
    if len(frame_scores) != len(seg.media.frames):
        raise ValueError("one score mapping per sampled frame is required")
    worst: dict[str, tuple[float, int]] = {}
    for i, scores in enumerate(frame_scores):
        for category, score in scores.items():
            if category not in worst or score > worst[category][0]:
                worst[category] = (float(score), i)
    scores_by_category = {c: s for c, (s, _) in worst.items()}
    decision = policy.decide(scores_by_category)
    evidence = []
    if decision.category in worst:
        frame = seg.media.frames[worst[decision.category][1]]
        started = parse_iso(seg.meta.started_at)
        evidence.append(
            {
                "segment_seq": seg.meta.seq,
                "frame_pts_ms": frame.pts_ms,
                "frame_time": iso_ms(started + timedelta(milliseconds=frame.pts_ms)),
                "score": round(decision.score, 6),
            }
        )
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
        frames_sampled=len(seg.media.frames),
    )
