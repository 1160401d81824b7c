"""Isolated costs on the benchmark's own segments, without Kafka or Faust: the worker's media
stage (``SegmentStage.prepare``: demux, decode, sample, downscale, PDQ hash, a larger copy of
the frames OCR will read), the models' preprocessing, inference (the worker's scorer: registry
+ EmbeddedOnnxBackend + MultiFrameScorer, batches of SW_FRAME_BATCH_MAX), OCR (the registry's
engine on the frames its schedule picks, when SW_OCR_ENABLED) and chat scoring (batches of
SW_CHAT_BATCH_MAX). CPU time of this process (all threads), measured before any worker runs.

Their sum per segment is what a perfect pipeline would spend; the core budget divided by it
is an upper bound on throughput (:func:`bound`)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from inference.ocr import OcrEngine
from inference.onnx_backend import EmbeddedOnnxBackend
from inference.registry import ModelRegistry, load_registry
from inference.scoring import MultiFrameScorer
from inference.text import ChatScorer
from pipeline import codec
from pipeline.bench.load import SegmentPool, chat_texts
from pipeline.bench.stats import ratio
from pipeline.media.sampling import SamplingOverrides
from pipeline.records import InRecord, iso_ms
from pipeline.segments import META_HEADER, PreparedSegment, SegmentStage, ocr_schedule
from pipeline.settings import WorkerSettings

__all__ = ["bound", "core_budget", "fractions", "isolated_costs", "worker_settings"]


def worker_settings(env: Mapping[str, str]) -> WorkerSettings:
    """The workers' settings: the environment, overridden by a case's SW_* knobs."""
    fields: dict[str, Any] = {k[3:].lower(): v for k, v in env.items() if k.startswith("SW_")}
    return WorkerSettings(**fields)


def core_budget() -> int:
    return len(os.sched_getaffinity(0))


def _record(pool: SegmentPool, i: int, data: bytes) -> InRecord:
    meta = {
        "stream_id": f"isolated:{i:04d}",
        "seq": i,
        "started_at": iso_ms(datetime.now(UTC)),
        "duration_ms": pool.spec.segment_ms,
        "container": "mpegts",
        "codec": "h264",
    }
    return InRecord("isolated", 0, i, None, data, {META_HEADER: codec.encode("segment.v1", meta)})


def _ocr_engine(settings: WorkerSettings, registry: ModelRegistry) -> OcrEngine | None:
    """The OCR engine when the worker runs one (SW_OCR_ENABLED and the registry's ``ocr``)."""
    if not settings.ocr_enabled or registry.ocr_models is None:
        return None
    backend = EmbeddedOnnxBackend(
        registry.ocr_models.onnx_files(), intra_op_threads=settings.onnx_threads
    )
    return registry.build_ocr(backend)


def _cpu_s(fn: Callable[[], object]) -> float:
    c = time.process_time()
    fn()
    return time.process_time() - c


def isolated_costs(
    settings: WorkerSettings, pool: SegmentPool, *, min_frames: int = 48, chat_messages: int = 1024
) -> dict[str, Any]:
    """CPU ms per segment / per sampled frame / per OCR'd frame / per chat line, by stage."""
    registry = load_registry(settings.model_registry_path)
    ocr = _ocr_engine(settings, registry)
    pick = ocr_schedule(settings, registry).pick if ocr is not None else None
    stage = SegmentStage(settings, overrides=SamplingOverrides(), ocr_pick=pick)
    records = [_record(pool, i, data) for i, data in enumerate(pool.segments)]
    stage.prepare(records[0])  # warm-up (codec init)
    prepared: list[PreparedSegment] = []
    media_cpu_s = _cpu_s(lambda: prepared.extend(stage.prepare(r) for r in records))
    n_sampled = sum(len(p.frames) for p in prepared)
    ocr_images = [f.ocr_image for p in prepared for f in p.frames if f.ocr_image is not None]
    frames = [f.image for p in prepared for f in p.frames]
    while len(frames) < min_frames:
        frames += frames[: min_frames - len(frames)]
    backend = EmbeddedOnnxBackend(
        registry.onnx_files(ocr=False), intra_op_threads=settings.onnx_threads
    )
    scorer = MultiFrameScorer(backend, registry.frame_models, max_batch=settings.frame_batch_max)
    step, per_batch = settings.frame_batch_max, settings.segment_batch_max

    async def infer() -> tuple[float, float]:
        await scorer.score(frames[:step])  # warm-ups
        if ocr is not None:
            await ocr.read(ocr_images[:1])
        c = time.process_time()
        for start in range(0, len(frames), step):
            await scorer.score(frames[start : start + step])
        scored_s = time.process_time() - c
        c = time.process_time()
        for start in range(0, len(ocr_images), per_batch):  # a batch's OCR frames at once
            if ocr is not None:
                await ocr.read(ocr_images[start : start + per_batch])
        return scored_s, time.process_time() - c

    infer_cpu_s, ocr_cpu_s = asyncio.run(infer())
    pre_cpu_s = 0.0
    for model in registry.frame_models:
        buffer = model.input.empty_batch(step)
        c = time.process_time()
        for start in range(0, len(frames), step):
            model.preprocess_into(frames[start : start + step], buffer)
        pre_cpu_s += time.process_time() - c
    chat = ChatScorer()
    texts = list(chat_texts(chat_messages))
    chat.score(texts[: settings.chat_batch_max])  # warm-up
    c = time.process_time()
    for start in range(0, len(texts), settings.chat_batch_max):
        chat.score(texts[start : start + settings.chat_batch_max])
    chat_cpu_s = time.process_time() - c
    frames_per_segment = n_sampled / len(records)
    ocr_per_segment = len(ocr_images) / len(records)
    media_ms = 1000 * media_cpu_s / len(records)
    pre_ms = 1000 * pre_cpu_s / len(frames)
    model_ms = 1000 * infer_cpu_s / len(frames) - pre_ms  # the scorer preprocesses too
    ocr_ms = 1000 * ocr_cpu_s / len(ocr_images) if ocr_images else 0.0
    per_segment_ms = media_ms + frames_per_segment * (pre_ms + model_ms) + ocr_per_segment * ocr_ms
    return {
        "segments": len(records),
        "frames_per_segment": round(frames_per_segment, 3),
        "ocr_frames_per_segment": round(ocr_per_segment, 3),
        "frames_scored": len(frames),
        "frame_batch": step,
        "models": [m.name for m in registry.frame_models] + (["ocr"] if ocr else []),
        "media_cpu_ms_per_segment": round(media_ms, 3),
        "media_cpu_ms_per_frame": round(media_ms / max(frames_per_segment, 1e-9), 3),
        "preprocess_cpu_ms_per_frame": round(pre_ms, 3),
        "inference_cpu_ms_per_frame": round(model_ms, 3),
        "ocr_cpu_ms_per_read_frame": round(ocr_ms, 3),
        "cpu_ms_per_segment": round(per_segment_ms, 3),
        "total_cpu_ms_per_frame": round(per_segment_ms / max(frames_per_segment, 1e-9), 3),
        "chat_cpu_ms_per_message": round(1000 * chat_cpu_s / len(texts), 4),
        "chat_batch": settings.chat_batch_max,
    }


def bound(costs: dict[str, Any], cores: int) -> dict[str, Any]:
    """Throughput if the whole core budget did nothing but the isolated work."""
    per_frame_s = costs["total_cpu_ms_per_frame"] / 1000
    frames_per_s = cores / per_frame_s if per_frame_s > 0 else None
    fps_seg = costs["frames_per_segment"]
    return {
        "cores": cores,
        "frames_per_s": round(frames_per_s, 2) if frames_per_s else None,
        "segments_per_s": round(frames_per_s / fps_seg, 2) if frames_per_s and fps_seg else None,
        "chat_per_s": round(cores * 1000 / costs["chat_cpu_ms_per_message"], 1)
        if costs["chat_cpu_ms_per_message"]
        else None,
    }


def fractions(
    costs: dict[str, Any], limit: dict[str, Any], phases: dict[str, Any]
) -> dict[str, Any]:
    """End-to-end backlog throughput as a share of the bound, and isolated CPU as a share of
    the CPU the workers really spent (the rest is Kafka, Faust, serialisation, batching)."""
    seg = phases.get("backlog_segments", {})
    chat = phases.get("backlog_chat", {})
    return {
        "frames_per_s_of_bound": ratio(seg.get("frames_per_s"), limit["frames_per_s"], 3),
        "chat_per_s_of_bound": ratio(chat.get("chat_per_s"), limit["chat_per_s"], 3),
        "cpu_per_frame_isolated_of_e2e": ratio(
            costs["total_cpu_ms_per_frame"], seg.get("cpu_ms_per_frame"), 3
        ),
        "cpu_per_chat_isolated_of_e2e": ratio(
            costs["chat_cpu_ms_per_message"], chat.get("cpu_ms_per_chat"), 3
        ),
    }
