"""Segment stage: metadata + bytes -> sampled, hashed frames; scores -> observation. No Kafka.

``SegmentStage.prepare`` runs in an executor, one segment per call: fetch (by reference),
plan the sampling (settings, the stream's control override, adaptive state), demux and
decode, PDQ-hash every sampled frame and look it up in the hash bank.

OCR wants text at 720p, the classifiers see 224 px and frames are kept at
``frame_max_side_px`` (448) for them. So with OCR on, sampled frames are decoded at up to
``ocr_max_side_px`` (1280) and scaled down for the classifiers, PDQ and thumbnails; only the
frames the OCR schedule picks (one a segment by default) keep the large copy, as
``ocr_image``. Measured on 2 s H.264 segments (2 CPU cores): +2.5 ms a sampled frame at 720p
or 1080p, against ~250-500 ms for the OCR read itself.

``observe_segment`` turns per-frame scores (inferred or reused), OCR text and bank matches
into the policy engine's observation; ``segment_assessment`` adds the evidence of each
outcome (the frame and its wall-clock time, hash match, OCR text and what the text rules
found, a JPEG thumbnail for review tasks) for ``pipeline.outputs``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from inference.registry import ModelRegistry
from inference.scoring import OcrSchedule
from pipeline import codec
from pipeline.errors import ConfigError, SchemaError
from pipeline.media import DecodedSegment, MediaLimits, decode_segment, fetch_segment
from pipeline.media.bank import BankFile, BankMatch
from pipeline.media.control import PROCESS_OVERRIDES
from pipeline.media.dedup import DedupConfig
from pipeline.media.pdq import PdqHash, pdq_hash
from pipeline.media.sampling import SamplePlan, SamplingConfig, SamplingOverrides, StreamSampling
from pipeline.outputs import Assessment, Enforcement, ModelRef
from pipeline.policy import (
    Evaluation,
    FrameScores,
    Policy,
    RuleOutcome,
    RuleSpec,
    SegmentObservation,
    Thumbnail,
    make_thumbnail,
)
from pipeline.records import InRecord, iso_ms, parse_iso
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
    image: npt.NDArray[np.uint8]  # BGR, HxWx3, longer side <= frame_max_side_px
    keyframe: bool
    pdq: PdqHash
    match: BankMatch | None = None
    ocr_image: npt.NDArray[np.uint8] | None = None  # larger copy, on frames OCR will read

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


def fit(image: npt.NDArray[np.uint8], max_side_px: int) -> npt.NDArray[np.uint8]:
    """``image`` scaled down (area interpolation) so its longer side is at most ``max_side_px``."""
    h, w = image.shape[:2]
    if max(h, w) <= max_side_px:
        return image
    scale = max_side_px / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.ascontiguousarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))


def hash_frames(
    media: DecodedSegment,
    meta: SegmentMeta,
    bank: BankFile | None,
    *,
    match_max_hamming: int,
    min_quality: int,
    max_side_px: int | None = None,
    ocr_frames: Sequence[int] = (),
) -> tuple[FrameSample, ...]:
    """PDQ-hash every sampled frame; bank-match those whose hash is good enough to trust.

    ``max_side_px``: scale decoded frames down to this first (when decoded larger for OCR);
    ``ocr_frames``: indices of the frames that keep the decoded image as ``ocr_image``.
    """
    snapshot = bank.current() if bank is not None else None
    start_ms = meta.start_ms
    keep = set(ocr_frames)
    out = []
    for i, f in enumerate(media.frames):
        image = fit(f.image, max_side_px) if max_side_px is not None else f.image
        pdq = pdq_hash(image)
        match = None
        if snapshot is not None and pdq.quality >= min_quality:
            match = snapshot.match(pdq, max_distance=match_max_hamming)
        at_ms = start_ms + f.pts_ms
        ocr_image = f.image if i in keep else None
        out.append(
            FrameSample(
                meta.stream_id, meta.seq, f.pts_ms, at_ms, image, f.keyframe, pdq, match, ocr_image
            )
        )
    return tuple(out)


def ocr_schedule(settings: WorkerSettings, registry: ModelRegistry) -> OcrSchedule:
    """The registry's OCR schedule with the worker's ``ocr_every_nth_segment`` applied."""
    n = settings.ocr_every_nth_segment
    schedule = registry.ocr_schedule
    return schedule if n is None else dataclasses.replace(schedule, every_nth_segment=n)


class SegmentStage:
    """Fetch (when by reference), demux, sample and hash one segment, within the bounds.

    ``overrides``: the per-stream sampling overrides the control agent fills (default: the
    process's map); ``bank``: the hash bank (default: ``settings.hash_bank_path``, loaded now);
    ``ocr_pick``: which of segment seq's N sampled frames OCR reads (``OcrSchedule.pick``), None
    when OCR is off: those frames keep a copy of up to ``settings.ocr_max_side_px``.
    """

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        overrides: SamplingOverrides | None = None,
        bank: BankFile | None = None,
        ocr_pick: Callable[[int, int], Sequence[int]] | None = None,
    ) -> None:
        self.settings = settings
        self.ocr_pick = ocr_pick
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
        ocr = self.ocr_pick is not None and s.ocr_max_side_px > s.frame_max_side_px
        media = decode_segment(
            data,
            meta.container,
            limits=self._limits,
            strategy=plan.strategy,
            sample_fps=plan.fps,
            max_side_px=s.ocr_max_side_px if ocr else s.frame_max_side_px,
            scene_threshold=plan.scene_threshold,
            scene_check_fps=plan.scene_check_fps,
        )
        picked = self.ocr_pick(len(media.frames), meta.seq) if self.ocr_pick is not None else ()
        frames = hash_frames(
            media,
            meta,
            self.bank,
            match_max_hamming=s.hash_match_max_hamming,
            min_quality=s.pdq_min_quality,
            max_side_px=s.frame_max_side_px if ocr else None,
            ocr_frames=picked,
        )
        return PreparedSegment(rec, meta, media, frames, plan)

    def observe(self, seg: PreparedSegment, frame_scores: Sequence[Mapping[str, float]]) -> bool:
        """Feed the segment's highest score to adaptive sampling; True if it boosted."""
        top = max((max(s.values(), default=0.0) for s in frame_scores), default=0.0)
        if any(f.match is not None for f in seg.frames):
            top = 1.0
        end_ms = seg.meta.start_ms + seg.meta.duration_ms
        return self.sampling.observe(seg.meta.stream_id, end_ms, top)


OCR_TEXT_MAX_CHARS = 2000
_JPEG_QUALITIES = (80, 60, 40)


def segment_input(seg: PreparedSegment) -> dict[str, Any]:
    """The ``input`` object of this segment's output documents."""
    source: dict[str, Any] = {
        "kind": "segment",
        "stream_id": seg.meta.stream_id,
        "seq": seg.meta.seq,
    }
    if seg.meta.user_id:
        source["user_id"] = seg.meta.user_id
    if (produced := seg.record.produced_at()) is not None:
        source["produced_at"] = produced
    return source


def segment_scores(
    seg: PreparedSegment, frame_scores: Sequence[Mapping[str, float]]
) -> dict[str, float]:
    """Per category the worst frame's score; a hash-bank match scores 1.0 in ``hash_match``."""
    worst: dict[str, float] = {}
    for scores in frame_scores:
        for category, score in scores.items():
            worst[category] = max(float(score), worst.get(category, 0.0))
    if any(f.match is not None for f in seg.frames):
        worst[HASH_MATCH] = 1.0
    return worst


def ocr_text_of(ocr_texts: Mapping[int, str]) -> str | None:
    """The text OCR read in the segment's frames (None: OCR read no frame of it)."""
    if not ocr_texts:
        return None
    return "\n".join(t for _, t in sorted(ocr_texts.items()) if t)[:OCR_TEXT_MAX_CHARS]


def observe_segment(
    seg: PreparedSegment,
    frame_scores: Sequence[Mapping[str, float]],
    ocr_texts: Mapping[int, str],
    *,
    hash_bank: bool,
) -> SegmentObservation:
    """What the policy engine sees: per-frame scores, a hash match, the OCR text.

    ``hash_bank``: a bank is loaded, so a segment without a match is a clean sample for the
    hash rule (its hysteresis can clear), not a missing one.
    """
    if len(frame_scores) != len(seg.frames):
        raise ValueError("one score mapping per sampled frame is required")
    matched = any(f.match is not None for f in seg.frames)
    return SegmentObservation(
        stream_id=seg.meta.stream_id,
        seq=seg.meta.seq,
        at_s=(seg.meta.start_ms + seg.meta.duration_ms) / 1000,
        frames=tuple(
            FrameScores(f.pts_ms, {k: float(v) for k, v in s.items()})
            for f, s in zip(seg.frames, frame_scores, strict=True)
        ),
        segment_scores={HASH_MATCH: 1.0 if matched else 0.0} if hash_bank or matched else {},
        ocr_text=ocr_text_of(ocr_texts),
        user_id=seg.meta.user_id,
        territory=seg.meta.territory,
    )


def thumbnail(image: npt.NDArray[np.uint8], max_side_px: int) -> dict[str, Any]:
    """A small JPEG of a frame, inline when it fits (quality lowered if needed), else its hash
    and size only: a review task stays far below the topic's record limit."""
    small = fit(image, max_side_px)
    height, width = small.shape[:2]
    jpeg = b""
    for quality in _JPEG_QUALITIES:
        ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise ValueError("JPEG encoding failed")
        jpeg = buf.tobytes()
        try:
            return make_thumbnail(jpeg, width, height).as_doc()
        except ValueError:  # too large to inline at this quality
            continue
    return Thumbnail(hashlib.sha256(jpeg).hexdigest(), width, height, len(jpeg)).as_doc()


@dataclass(frozen=True)
class _SegmentEvidence:
    """Builds evidence items for one segment's outcomes."""

    seg: PreparedSegment
    frame_scores: Sequence[Mapping[str, float]]
    ocr_texts: Mapping[int, str]
    policy: Policy
    thumbnail_max_side_px: int

    def worst(self, category: str | None) -> int | None:
        if category is None:
            return None
        best: tuple[float, int] | None = None
        for i, scores in enumerate(self.frame_scores):
            if category in scores and (best is None or scores[category] > best[0]):
                best = (scores[category], i)
        return best[1] if best is not None else None

    def matched(self) -> int | None:
        hits = [(f.match.distance, i) for i, f in enumerate(self.seg.frames) if f.match]
        return min(hits)[1] if hits else None

    def ocr_frame(self) -> int | None:
        with_text = [i for i, t in sorted(self.ocr_texts.items()) if t]
        return with_text[0] if with_text else min(self.ocr_texts, default=None)

    def frame_item(self, i: int | None, score: float, *, with_match: bool) -> dict[str, Any]:
        if i is None:
            return {"segment_seq": self.seg.meta.seq, "score": round(score, 6)}
        return self.seg.frames[i].evidence(score, with_match=with_match)

    def rule(self, name: str) -> RuleSpec | None:
        try:
            return self.policy.rule_in(name, self.seg.meta.territory)
        except KeyError:  # e.g. a memoised outcome of a rule the policy no longer has
            return None

    def of_outcome(self, o: RuleOutcome, *, with_thumbnail: bool = False) -> dict[str, Any]:
        ev = o.evidence
        rule = self.rule(o.rule)
        if "frame_pts_ms" in ev:
            i = next(
                (j for j, f in enumerate(self.seg.frames) if f.pts_ms == ev["frame_pts_ms"]), None
            )
        elif o.category == HASH_MATCH:
            i = self.matched()
        elif rule is not None and rule.input == "ocr":
            i = self.ocr_frame()
        else:
            i = self.worst(o.category)
        item = self.frame_item(i, o.score, with_match=o.category == HASH_MATCH)
        if rule is not None:
            item["act_at"] = rule.act_at
            if rule.review_at is not None:
                item["review_at"] = rule.review_at
        if "ocr_text" in ev:
            item["ocr_text"] = ev["ocr_text"]
            findings = {k: list(ev[k]) for k in ("links", "phones", "terms") if ev.get(k)}
            if findings:
                item["text_findings"] = findings
        details: dict[str, Any] = {}
        if "window" in ev:
            details["window"] = dict(ev["window"])
        if o.prior_offences:
            details["prior_offences"] = o.prior_offences
        if o.regional:
            details["regional_override"] = o.territory
        if details:
            item["details"] = details
        if with_thumbnail and i is not None:
            frame = self.seg.frames[i]
            image = frame.ocr_image if frame.ocr_image is not None else frame.image
            item["thumbnail"] = thumbnail(image, self.thumbnail_max_side_px)
        return item


def segment_assessment(
    seg: PreparedSegment,
    frame_scores: Sequence[Mapping[str, float]],
    evaluation: Evaluation,
    policy: Policy,
    *,
    models: Sequence[ModelRef],
    ocr_texts: Mapping[int, str] | None = None,
    frames_deduplicated: int = 0,
    thumbnail_max_side_px: int = 320,
) -> Assessment:
    """The evaluation of one segment with its evidence, ready for ``assessment_records``.

    The result's evidence is the decisive outcome's frame (or the top category's worst frame
    when allowed), a bank match whatever the decision, and the OCR text when OCR read any.
    Each action carries its outcome's evidence; each review task a JPEG thumbnail as well.
    """
    ocr_texts = ocr_texts or {}
    scores = segment_scores(seg, frame_scores)
    for o in evaluation.outcomes:  # OCR text rules score their own category
        if o.category not in scores and o.kind in ("act", "review"):
            scores[o.category] = o.score
    build = _SegmentEvidence(seg, frame_scores, ocr_texts, policy, thumbnail_max_side_px)
    decision = evaluation.result_decision(scores)
    evidence: list[dict[str, Any]] = []
    decisive = next(
        (
            o
            for o in evaluation.outcomes
            if o.rule == decision.rule and not o.shadow and o.kind in ("act", "hold", "review")
        ),
        None,
    )
    if decisive is not None:
        evidence.append(build.of_outcome(decisive))
    elif (i := build.worst(decision.category)) is not None:
        evidence.append(build.frame_item(i, decision.score, with_match=False))
    if decision.category != HASH_MATCH and (m := build.matched()) is not None:
        evidence.append(build.frame_item(m, 1.0, with_match=True))
    text = ocr_text_of(ocr_texts)
    if text and not any("ocr_text" in e for e in evidence):
        i = build.ocr_frame()
        evidence.append({**build.frame_item(i, 0.0, with_match=False), "ocr_text": text})
        evidence[-1].pop("score", None)
    enforcements = tuple(
        Enforcement(o, (build.of_outcome(o, with_thumbnail=o.kind == "review"),))
        for o in (*evaluation.acts, *evaluation.reviews, *evaluation.lifts)
    )
    return Assessment(
        input=segment_input(seg),
        scores=scores,
        evaluation=evaluation,
        evidence=evidence,
        models=models,
        enforcements=enforcements,
        frames_sampled=len(seg.frames),
        frames_deduplicated=frames_deduplicated,
    )
