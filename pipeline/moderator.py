"""Batch handlers: a batch of input records in, the records to publish out.

They hold the CPU work off the event loop (an executor) and batch inference across every
segment and stream of the batch. Bad input becomes a dead letter here; it never raises.
Errors that are not the input's fault (``InferenceError``) propagate: the caller retries the
whole batch, whose outputs have deterministic ids.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Protocol, TypeVar

import numpy as np

from pipeline import metrics
from pipeline.chat import ChatMessage, assess_chat
from pipeline.errors import InputError, UnexpectedInputError
from pipeline.media.dedup import Deduplicator, FrameAssignment
from pipeline.outputs import ModelRef, assessment_records, dead_letter_record
from pipeline.policy import ThresholdPolicy
from pipeline.records import InRecord, OutRecord
from pipeline.segments import (
    PreparedSegment,
    SegmentStage,
    assess_segment,
    dedup_config,
    with_frames_deduplicated,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


class FrameScoring(Protocol):
    async def score(self, frames: Sequence[np.ndarray]) -> list[dict[str, float]]: ...


class TextScore(Protocol):
    @property
    def toxicity(self) -> float: ...


class TextScoring(Protocol):
    def score(self, texts: Sequence[str]) -> Sequence[TextScore]: ...


def _guard(fn: Callable[[InRecord], T], rec: InRecord) -> T | InputError:
    try:
        return fn(rec)
    except InputError as exc:
        return exc
    except Exception as exc:  # a parser bug must not kill the worker: dead-letter it
        log.exception("unexpected error on %s", rec.ref)
        return UnexpectedInputError(f"{type(exc).__name__}: {exc}")


class SegmentModerator:
    """Segments in, results out: sampled frames are PDQ-hashed in ``prepare``; a frame close
    to its stream's last inferred one reuses that frame's scores (``dedup``), the rest go
    through the models in one batch; hash-bank matches decide on their own."""

    def __init__(
        self,
        stage: SegmentStage,
        scorer: FrameScoring,
        models: Sequence[ModelRef],
        policy: ThresholdPolicy,
        executor: Executor,
        *,
        dead_letter_max_payload_bytes: int,
        dedup: Deduplicator | None = None,
    ) -> None:
        self._stage = stage
        self._scorer = scorer
        self._models = tuple(models)
        self._policy = policy
        self._executor = executor
        self._dl_max = dead_letter_max_payload_bytes
        self._dedup = dedup or Deduplicator(
            dedup_config(stage.settings), max_streams=stage.settings.stream_state_max
        )

    async def handle(self, records: Sequence[InRecord]) -> list[OutRecord]:
        loop = asyncio.get_running_loop()
        prepared = await asyncio.gather(
            *(loop.run_in_executor(self._executor, _guard, self._stage.prepare, r) for r in records)
        )
        # Frames in batch order; one that is not a near-duplicate gets the next inference slot.
        batch = self._dedup.batch()
        to_infer: list[np.ndarray] = []
        assigned: list[list[FrameAssignment]] = []
        for p in prepared:
            frames = p.frames if isinstance(p, PreparedSegment) else ()
            plan = [batch.assign(f.stream_id, f.pdq, f.time_ms) for f in frames]
            to_infer.extend(f.image for f, a in zip(frames, plan, strict=True) if not a.duplicate)
            assigned.append(plan)
        scores = await self._scorer.score(to_infer) if to_infer else []
        batch.commit(scores)  # only now: a failed batch leaves the anchors as they were
        out: list[OutRecord] = []
        for rec, p, plan in zip(records, prepared, assigned, strict=True):
            if isinstance(p, InputError):
                log.warning("dead letter %s reason=%s: %s", rec.ref, p.reason, p)
                out.append(dead_letter_record(rec, p, max_payload_bytes=self._dl_max))
                continue
            frame_scores = [batch.scores_of(a, scores) for a in plan]
            a = assess_segment(p, frame_scores, models=self._models, policy=self._policy)
            duplicates = sum(x.duplicate for x in plan)
            out.extend(with_frames_deduplicated(assessment_records(a), duplicates))
            self._count(p, duplicates, boosted=self._stage.observe(p, frame_scores))
        if self._stage.bank is not None:
            metrics.HASH_BANK_ENTRIES.set(len(self._stage.bank.current()))
        metrics.SAMPLING_OVERRIDES.set(len(self._stage.sampling.overrides))
        return out

    @staticmethod
    def _count(p: PreparedSegment, duplicates: int, *, boosted: bool) -> None:
        if p.plan is not None:
            overridden = "yes" if p.plan.overridden else "no"
            metrics.FRAMES_SAMPLED.labels(p.plan.label, overridden).inc(len(p.frames))
        metrics.FRAMES_INFERRED.inc(len(p.frames) - duplicates)
        metrics.FRAMES_DEDUPLICATED.inc(duplicates)
        for f in p.frames:
            if f.match is not None:
                metrics.HASH_MATCHES.labels(f.match.entry.category).inc()
        if boosted:
            metrics.SAMPLING_BOOSTS.inc()


class ChatModerator:
    def __init__(
        self,
        scorer: TextScoring,
        model: ModelRef,
        policy: ThresholdPolicy,
        executor: Executor,
        *,
        dead_letter_max_payload_bytes: int,
    ) -> None:
        self._scorer = scorer
        self._model = model
        self._policy = policy
        self._executor = executor
        self._dl_max = dead_letter_max_payload_bytes

    async def handle(self, records: Sequence[InRecord]) -> list[OutRecord]:
        parsed = [_guard(ChatMessage.from_record, r) for r in records]
        good = [p for p in parsed if isinstance(p, ChatMessage)]
        loop = asyncio.get_running_loop()
        texts = [m.text for m in good]
        scored = (
            await loop.run_in_executor(self._executor, self._scorer.score, texts) if texts else []
        )
        out: list[OutRecord] = []
        it = iter(scored)
        for rec, p in zip(records, parsed, strict=True):
            if isinstance(p, InputError):
                log.warning("dead letter %s reason=%s: %s", rec.ref, p.reason, p)
                out.append(dead_letter_record(rec, p, max_payload_bytes=self._dl_max))
                continue
            a = assess_chat(rec, p, next(it).toxicity, model=self._model, policy=self._policy)
            out.extend(assessment_records(a))
        return out
