"""Build the worker from settings: policy, models, stages, handlers, the Faust app; run it."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import faust
import numpy as np

from inference.backend import InferenceBackend
from inference.batcher import MicroBatcher
from inference.ocr import OcrEngine
from inference.onnx_backend import EmbeddedOnnxBackend
from inference.registry import ModelRegistry, load_registry
from inference.scoring import MultiFrameScorer
from inference.text import ChatScorer
from pipeline.app import Handlers, create_app
from pipeline.chat import ChatContext
from pipeline.enforcement import StrikeKeeper, VerdictCounter
from pipeline.logs import logging_config
from pipeline.moderator import ChatModerator, SegmentModerator
from pipeline.observability import Health, serve, watch_lag
from pipeline.outputs import ModelRef
from pipeline.policy import Policy, load_policy
from pipeline.segments import SegmentStage, ocr_schedule
from pipeline.settings import KafkaSettings, WorkerSettings
from pipeline.state import StateStore
from pipeline.topics import TopicNames

log = logging.getLogger(__name__)


def make_backend(worker: WorkerSettings, onnx_files: Mapping[str, Path]) -> InferenceBackend:
    """In-process ONNX Runtime (default), or a Triton server serving the same models."""
    if worker.inference_backend == "triton":
        from inference.triton_backend import TritonBackend

        log.info("inference on Triton %s (%s)", worker.triton_url, worker.triton_protocol)
        return TritonBackend(
            worker.triton_url,
            worker.triton_protocol,
            timeout_s=worker.triton_timeout_s,
            retries=worker.triton_retries,
            shared_memory=worker.triton_shared_memory,
        )
    return EmbeddedOnnxBackend(
        onnx_files, intra_op_threads=worker.onnx_threads, shrink_arenas=worker.onnx_shrink_arenas
    )


class FrameText:
    """OCR of whole frames as one string each (lines top to bottom, one per line)."""

    def __init__(self, engine: OcrEngine) -> None:
        self.engine = engine

    async def read_text(self, frames: Sequence[np.ndarray]) -> list[str]:
        return ["\n".join(line.text for line in lines) for lines in await self.engine.read(frames)]


def build_ocr(
    worker: WorkerSettings, registry: ModelRegistry, batcher: MicroBatcher
) -> OcrEngine | None:
    """The OCR engine, on the frame models' batcher; with Triton (which serves the frame
    classifiers only) on an in-process ONNX Runtime of its own."""
    if not worker.ocr_enabled or registry.ocr_models is None:
        return None
    if worker.inference_backend == "triton":
        own = EmbeddedOnnxBackend(
            registry.ocr_models.onnx_files(),
            intra_op_threads=worker.onnx_threads,
            shrink_arenas=worker.onnx_shrink_arenas,
        )
        batcher = MicroBatcher(own, registry.batching, per_model=registry.per_model_batching)
    return registry.build_ocr(batcher)


def build_app(
    worker: WorkerSettings,
    kafka: KafkaSettings,
    health: Health | None = None,
    *,
    policy: Policy | None = None,
    state_partitions: Mapping[str, int] | None = None,
) -> faust.App:
    """Raises ``PolicyError`` (each problem with its file and line) on a bad policy file.

    ``state_partitions``: partitions of each state table (``pipeline.topics.state_partitions``;
    default: as declared)."""
    policy = policy or load_policy(worker.policy_file)
    log.info("policy %s from %s: %d rules", policy.version, worker.policy_file, len(policy.rules))
    executor = ThreadPoolExecutor(worker.decode_threads, thread_name_prefix="sw-decode")
    registry = load_registry(worker.model_registry_path)  # default: inference/models.yaml
    ocr_here = worker.ocr_enabled and worker.inference_backend == "onnx"
    backend = make_backend(worker, registry.onnx_files(ocr=ocr_here))
    batcher = MicroBatcher(backend, registry.batching, per_model=registry.per_model_batching)
    ocr = build_ocr(worker, registry, batcher)
    schedule = ocr_schedule(worker, registry)
    frames = MultiFrameScorer(
        batcher,
        registry.frame_models,
        ocr=ocr,
        ocr_schedule=schedule,
        max_batch=worker.frame_batch_max,
    )
    if ocr is not None:
        log.info("OCR on: %s, frames kept at up to %d px", schedule, worker.ocr_max_side_px)
    chat = ChatScorer()
    models = tuple(ModelRef(name, version) for name, version in frames.model_versions)
    dl_max = worker.dead_letter_max_payload_bytes

    def handlers(state: StateStore) -> Handlers:
        segments = SegmentModerator(
            SegmentStage(worker, ocr_pick=schedule.pick if ocr is not None else None),
            frames,
            models,
            policy,
            executor,
            state,
            dead_letter_max_payload_bytes=dl_max,
            ocr=FrameText(ocr) if ocr is not None else None,
        )
        chats = ChatModerator(
            chat,
            ModelRef(chat.model, chat.version),
            policy,
            executor,
            state,
            dead_letter_max_payload_bytes=dl_max,
            context=ChatContext(max_streams=worker.stream_state_max),
        )
        return Handlers(
            segments=segments.handle,
            chat=chats.handle,
            strikes=StrikeKeeper(policy, state, dead_letter_max_payload_bytes=dl_max).handle,
            verdicts=VerdictCounter(dead_letter_max_payload_bytes=dl_max).handle,
        )

    return create_app(
        worker, kafka, handlers=handlers, health=health, state_partitions=state_partitions
    )


def run_worker(
    worker: WorkerSettings,
    kafka: KafkaSettings,
    *,
    loglevel: str = "info",
    policy: Policy | None = None,
    state_partitions: Mapping[str, int] | None = None,
) -> None:
    health = Health()
    app = build_app(worker, kafka, health, policy=policy, state_partitions=state_partitions)
    if worker.metrics_port:
        serve(health, worker.metrics_host, worker.metrics_port)
        names = TopicNames.with_prefix(kafka.topic_prefix)
        inputs = [names.segments, names.chat, names.strikes, names.review_verdicts]
        watch_lag(kafka, worker.app_id, inputs)
    faust.Worker(
        app, loglevel=loglevel, logging_config=logging_config(loglevel)
    ).execute_from_commandline()
