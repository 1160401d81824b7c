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

from pipeline.chat import ChatMessage, assess_chat
from pipeline.errors import InputError, UnexpectedInputError
from pipeline.outputs import ModelRef, assessment_records, dead_letter_record
from pipeline.policy import ThresholdPolicy
from pipeline.records import InRecord, OutRecord
from pipeline.segments import PreparedSegment, SegmentStage, assess_segment

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
    def __init__(
        self,
        stage: SegmentStage,
        scorer: FrameScoring,
        models: Sequence[ModelRef],
        policy: ThresholdPolicy,
        executor: Executor,
        *,
        dead_letter_max_payload_bytes: int,
    ) -> None:
        self._stage = stage
        self._scorer = scorer
        self._models = tuple(models)
        self._policy = policy
        self._executor = executor
        self._dl_max = dead_letter_max_payload_bytes

    async def handle(self, records: Sequence[InRecord]) -> list[OutRecord]:
        loop = asyncio.get_running_loop()
        prepared = await asyncio.gather(
            *(loop.run_in_executor(self._executor, _guard, self._stage.prepare, r) for r in records)
        )
        ok = [p for p in prepared if isinstance(p, PreparedSegment)]
        frames = [f.image for p in ok for f in p.media.frames]
        scores = await self._scorer.score(frames) if frames else []
        out: list[OutRecord] = []
        i = 0
        for rec, p in zip(records, prepared, strict=True):
            if isinstance(p, InputError):
                log.warning("dead letter %s reason=%s: %s", rec.ref, p.reason, p)
                out.append(dead_letter_record(rec, p, max_payload_bytes=self._dl_max))
                continue
            n = len(p.media.frames)
            a = assess_segment(p, scores[i : i + n], models=self._models, policy=self._policy)
            i += n
            out.extend(assessment_records(a))
        return out


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
