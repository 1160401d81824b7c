"""Batch handlers: a batch of input records in, the records to publish and the state to save out.

Each batch: load the state of every stream (and chat user) it touches, once; run the pure
policy engine on each input in order (``decide_segment`` / ``decide_chat``); build the
output documents; return the new state of each touched key, once (``Outputs.state``). The
Faust edge saves that state only after the outputs are acknowledged, so a failed batch is
retried from the state as it was, and a redelivered input finds its memoised evaluation.

CPU work runs in an executor and inference is batched across every segment and stream of
the batch. Bad input becomes a dead letter here; it never raises. Errors that are not the
input's fault (``InferenceError``) propagate: the caller retries the whole batch, whose
outputs have deterministic ids.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Protocol, TypeVar

import numpy as np

from pipeline import metrics
from pipeline.chat import ChatContext, ChatMessage, TextScore, chat_assessment, observe_chat
from pipeline.errors import InputError, UnexpectedInputError
from pipeline.media.dedup import Deduplicator, FrameAssignment
from pipeline.outputs import ModelRef, assessment_records, logged_dead_letter
from pipeline.policy import (
    ChatStreamState,
    ChatUserState,
    Evaluation,
    Policy,
    StrikeLedger,
    VideoState,
    decide_chat,
    decide_segment,
    user_key,
)
from pipeline.records import InRecord, Outputs, OutRecord
from pipeline.segments import (
    PreparedSegment,
    SegmentStage,
    dedup_config,
    observe_segment,
    segment_assessment,
)
from pipeline.state import (
    CHAT_STREAMS,
    CHAT_USERS,
    STRIKES,
    VIDEO,
    StateStore,
    Touched,
    load,
    state_writes,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


class FrameScoring(Protocol):
    async def score(self, frames: Sequence[np.ndarray]) -> list[dict[str, float]]: ...


class TextReading(Protocol):
    """Reads the text burned into frames: one string per frame ('' when none)."""

    async def read_text(self, frames: Sequence[np.ndarray]) -> list[str]: ...


class TextScoring(Protocol):
    def score(self, texts: Sequence[str]) -> Sequence[TextScore]: ...


def guard(fn: Callable[[InRecord], T], rec: InRecord) -> T | InputError:
    try:
        return fn(rec)
    except InputError as exc:
        return exc
    except Exception as exc:  # a parser bug must not kill the worker: dead-letter it
        log.exception("unexpected error on %s", rec.ref)
        return UnexpectedInputError(f"{type(exc).__name__}: {exc}")


class StrikeScores:
    """A user's decayed strike total at a moment, from the strikes table (cached per batch).

    The ledger lives on the strikes topic's partitions (keyed by user): read wherever this
    worker holds it; 0 when it holds none for the user (or there is none).
    """

    def __init__(self, store: StateStore, policy: Policy) -> None:
        self._store = store
        self._policy = policy
        self._ledgers: dict[str, StrikeLedger | None] = {}

    def at(self, user_id: str | None, at_s: float) -> float:
        if not user_id:
            return 0.0
        if user_id not in self._ledgers:
            self._ledgers[user_id] = load(
                self._store, STRIKES, user_id, StrikeLedger, partition=None
            )
        ledger = self._ledgers[user_id]
        return ledger.score(at_s, self._policy.strikes) if ledger is not None else 0.0


class SegmentModerator:
    """Segments in, results out: sampled frames are PDQ-hashed in ``prepare``; a frame close
    to its stream's last inferred one reuses that frame's scores (``dedup``), the rest go
    through the models in one batch; OCR reads the frames its schedule picked, at the same
    time, duplicates or not (a frozen picture with a phone number must keep counting toward
    the text rule's window); then the policy decides per segment, in order, with the
    stream's state."""

    def __init__(
        self,
        stage: SegmentStage,
        scorer: FrameScoring,
        models: Sequence[ModelRef],
        policy: Policy,
        executor: Executor,
        state: StateStore,
        *,
        dead_letter_max_payload_bytes: int,
        dedup: Deduplicator | None = None,
        ocr: TextReading | None = None,
    ) -> None:
        self._stage = stage
        self._scorer = scorer
        self._models = tuple(models)
        self._policy = policy
        self._executor = executor
        self._state = state
        self._dl_max = dead_letter_max_payload_bytes
        self._ocr = ocr
        self._dedup = dedup or Deduplicator(
            dedup_config(stage.settings), max_streams=stage.settings.stream_state_max
        )

    async def handle(self, records: Sequence[InRecord]) -> Outputs:
        loop = asyncio.get_running_loop()
        prepared = await asyncio.gather(
            *(loop.run_in_executor(self._executor, guard, self._stage.prepare, r) for r in records)
        )
        # Frames in batch order; one that is not a near-duplicate gets the next inference slot.
        batch = self._dedup.batch()
        to_infer: list[np.ndarray] = []
        assigned: list[list[FrameAssignment]] = []
        to_read: list[tuple[int, int, np.ndarray]] = []  # (segment, frame, image) for OCR
        for n, p in enumerate(prepared):
            frames = p.frames if isinstance(p, PreparedSegment) else ()
            plan = [batch.assign(f.stream_id, f.pdq, f.time_ms) for f in frames]
            to_infer.extend(f.image for f, a in zip(frames, plan, strict=True) if not a.duplicate)
            assigned.append(plan)
            to_read += [
                (n, i, f.ocr_image) for i, f in enumerate(frames) if f.ocr_image is not None
            ]
        scores, texts = await asyncio.gather(
            self._scorer.score(to_infer) if to_infer else _no_scores(),
            self._ocr.read_text([img for _, _, img in to_read])
            if self._ocr is not None and to_read
            else _no_texts(),
        )
        batch.commit(scores)  # only now: a failed batch leaves the anchors as they were
        ocr_texts: dict[int, dict[int, str]] = {}
        for (n, i, _), text in zip(to_read, texts, strict=True):
            ocr_texts.setdefault(n, {})[i] = text
        strikes = StrikeScores(self._state, self._policy)
        streams: dict[str, Touched] = {}
        bank = self._stage.bank is not None
        out: list[OutRecord] = []
        for n, (rec, p, plan) in enumerate(zip(records, prepared, assigned, strict=True)):
            if isinstance(p, InputError):
                out.append(logged_dead_letter(rec, p, max_payload_bytes=self._dl_max))
                continue
            frame_scores = [batch.scores_of(a, scores) for a in plan]
            obs = observe_segment(p, frame_scores, ocr_texts.get(n, {}), hash_bank=bank)
            stream = p.meta.stream_id
            if stream not in streams:
                had = load(self._state, VIDEO, stream, VideoState, partition=rec.partition)
                streams[stream] = Touched(rec.partition, had)
            t = streams[stream]
            previous = t.value if isinstance(t.value, VideoState) else None
            new, evaluation = decide_segment(
                self._policy, previous, obs, user_strikes=strikes.at(p.meta.user_id, obs.at_s)
            )
            if new is not previous:
                t.value, t.dirty = new, True
            duplicates = sum(x.duplicate for x in plan)
            a = segment_assessment(
                p,
                frame_scores,
                evaluation,
                self._policy,
                models=self._models,
                ocr_texts=ocr_texts.get(n),
                frames_deduplicated=duplicates,
                thumbnail_max_side_px=self._stage.settings.thumbnail_max_side_px,
            )
            out.extend(assessment_records(a, self._policy))
            self._count(p, duplicates, evaluation, boosted=self._stage.observe(p, frame_scores))
        if self._stage.bank is not None:
            metrics.HASH_BANK_ENTRIES.set(len(self._stage.bank.current()))
        metrics.SAMPLING_OVERRIDES.set(len(self._stage.sampling.overrides))
        return Outputs(out, state_writes(VIDEO, streams))

    @staticmethod
    def _count(
        p: PreparedSegment, duplicates: int, evaluation: Evaluation, *, boosted: bool
    ) -> None:
        if p.plan is not None:
            overridden = "yes" if p.plan.overridden else "no"
            metrics.FRAMES_SAMPLED.labels(p.plan.label, overridden).inc(len(p.frames))
        metrics.FRAMES_INFERRED.inc(len(p.frames) - duplicates)
        metrics.FRAMES_DEDUPLICATED.inc(duplicates)
        metrics.FRAMES_OCR.inc(sum(f.ocr_image is not None for f in p.frames))
        for f in p.frames:
            if f.match is not None:
                metrics.HASH_MATCHES.labels(f.match.entry.category).inc()
        if boosted:
            metrics.SAMPLING_BOOSTS.inc()
        if evaluation.replayed:
            metrics.POLICY_REPLAYS.labels("segment").inc()


async def _no_scores() -> list[dict[str, float]]:
    return []


async def _no_texts() -> list[str]:
    return []


class ChatModerator:
    """Chat messages in: toxicity in one batch, then the chat rules per message, in order,
    with the stream's and the user's chat state."""

    def __init__(
        self,
        scorer: TextScoring,
        model: ModelRef,
        policy: Policy,
        executor: Executor,
        state: StateStore,
        *,
        dead_letter_max_payload_bytes: int,
        context: ChatContext | None = None,
    ) -> None:
        self._scorer = scorer
        self._model = model
        self._policy = policy
        self._executor = executor
        self._state = state
        self._dl_max = dead_letter_max_payload_bytes
        self._context = context or ChatContext()

    async def handle(self, records: Sequence[InRecord]) -> Outputs:
        parsed = [guard(ChatMessage.from_record, r) for r in records]
        good = [p for p in parsed if isinstance(p, ChatMessage)]
        loop = asyncio.get_running_loop()
        texts = [m.text for m in good]
        scored = (
            await loop.run_in_executor(self._executor, self._scorer.score, texts) if texts else []
        )
        strikes = StrikeScores(self._state, self._policy)
        streams: dict[str, Touched] = {}
        users: dict[str, Touched] = {}
        decided: list[Evaluation] = []
        for rec, msg, score in zip(
            (r for r, p in zip(records, parsed, strict=True) if isinstance(p, ChatMessage)),
            good,
            scored,
            strict=True,
        ):
            obs = observe_chat(msg, score)
            skey, ukey = msg.stream_id, user_key(msg.stream_id, msg.user_id)
            if skey not in streams:
                had = load(
                    self._state, CHAT_STREAMS, skey, ChatStreamState, partition=rec.partition
                )
                streams[skey] = Touched(rec.partition, had)
            if ukey not in users:
                was = load(self._state, CHAT_USERS, ukey, ChatUserState, partition=rec.partition)
                users[ukey] = Touched(rec.partition, was)
            s, u = streams[skey], users[ukey]
            old_s = s.value if isinstance(s.value, ChatStreamState) else None
            old_u = u.value if isinstance(u.value, ChatUserState) else None
            new_s, new_u, evaluation = decide_chat(
                self._policy, old_s, old_u, obs, user_strikes=strikes.at(msg.user_id, obs.at_s)
            )
            if new_s is not old_s:
                s.value, s.dirty = new_s, True
            if new_u is not old_u:
                u.value, u.dirty = new_u, True
            decided.append(evaluation)
            if evaluation.replayed:
                metrics.POLICY_REPLAYS.labels("chat").inc()
        self._context.add(good)  # the whole batch first: windows show what came right after
        out: list[OutRecord] = []
        it = iter(zip(good, scored, decided, strict=True))
        for rec, p in zip(records, parsed, strict=True):
            if isinstance(p, InputError):
                out.append(logged_dead_letter(rec, p, max_payload_bytes=self._dl_max))
                continue
            msg, score, evaluation = next(it)
            a = chat_assessment(
                rec,
                msg,
                score.toxicity,
                evaluation,
                self._policy,
                model=self._model,
                context=self._context,
            )
            out.extend(assessment_records(a, self._policy))
        return Outputs(out, state_writes(CHAT_STREAMS, streams) + state_writes(CHAT_USERS, users))
