"""Build the worker from settings: models, stages, moderators, the Faust app; then run it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import faust

from inference.backend import InferenceBackend
from inference.batcher import MicroBatcher
from inference.onnx_backend import EmbeddedOnnxBackend
from inference.registry import load_registry
from inference.scoring import MultiFrameScorer
from inference.text import ChatScorer
from pipeline.app import create_app
from pipeline.logs import logging_config
from pipeline.moderator import ChatModerator, SegmentModerator
from pipeline.observability import Health, serve, watch_lag
from pipeline.outputs import ModelRef
from pipeline.policy.threshold import default_policy
from pipeline.segments import SegmentStage
from pipeline.settings import KafkaSettings, WorkerSettings
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
    return EmbeddedOnnxBackend(onnx_files, intra_op_threads=worker.onnx_threads)


def build_app(
    worker: WorkerSettings, kafka: KafkaSettings, health: Health | None = None
) -> faust.App:
    executor = ThreadPoolExecutor(worker.decode_threads, thread_name_prefix="sw-decode")
    policy = default_policy(worker.policy_version)
    registry = load_registry(worker.model_registry_path)  # default: inference/models.yaml
    # OCR stays off here until the segment moderator calls frames.analyze_segments.
    backend = make_backend(worker, registry.onnx_files(ocr=False))
    batcher = MicroBatcher(backend, registry.batching, per_model=registry.per_model_batching)
    frames = MultiFrameScorer(batcher, registry.frame_models, max_batch=worker.frame_batch_max)
    chat = ChatScorer()
    segments = SegmentModerator(
        SegmentStage(worker),
        frames,
        tuple(ModelRef(name, version) for name, version in frames.model_versions),
        policy,
        executor,
        dead_letter_max_payload_bytes=worker.dead_letter_max_payload_bytes,
    )
    chats = ChatModerator(
        chat,
        ModelRef(chat.model, chat.version),
        policy,
        executor,
        dead_letter_max_payload_bytes=worker.dead_letter_max_payload_bytes,
    )
    return create_app(
        worker, kafka, segment_handler=segments.handle, chat_handler=chats.handle, health=health
    )


def run_worker(worker: WorkerSettings, kafka: KafkaSettings, *, loglevel: str = "info") -> None:
    health = Health()
    if worker.metrics_port:
        serve(health, worker.metrics_host, worker.metrics_port)
        names = TopicNames.with_prefix(kafka.topic_prefix)
        watch_lag(kafka, worker.app_id, [names.segments, names.chat])
    app = build_app(worker, kafka, health)
    faust.Worker(
        app, loglevel=loglevel, logging_config=logging_config(loglevel)
    ).execute_from_commandline()
