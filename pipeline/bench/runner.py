"""One benchmark case: fresh topics, real worker subprocesses, warm-up, then the phases
(segment backlog, chat backlog, real-time livestreams), then the baseline on the same
backlog records when asked, then clean-up. Returns one JSON-able document."""

from __future__ import annotations

import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer

from pipeline.bench.load import Load, SegmentPool, produce
from pipeline.bench.observe import ResultCollector, Sampler
from pipeline.bench.phases import PhaseContext, backlog_phase, realtime_phase
from pipeline.bench.proc import host_cpu_s
from pipeline.bench.workers import (
    ROOT,
    WorkerProc,
    create_topics,
    delete_topics,
    ensure_triton,
    triton_pids,
    wait_group,
)
from pipeline.settings import KafkaSettings
from pipeline.topics import TopicNames

__all__ = ["CaseConfig", "contention_cores", "run_case", "wait_for_quiet"]

log = logging.getLogger(__name__)

_DEFAULT_PARTITIONS = 6  # pipeline.topics: segments, chat and control


@dataclass(frozen=True)
class CaseConfig:
    """What one case runs. ``env``: SW_* settings for the workers (the knobs swept)."""

    name: str
    streams: int = 4  # real-time phase (0: none)
    realtime_s: float = 30.0
    chat_per_min: float = 60.0  # per stream, real-time phase
    backlog_segments: int = 24  # 0: no segment backlog phase
    backlog_chat: int = 1000  # 0: no chat backlog phase
    workers: int = 1
    partitions: int | None = None  # input topics; None: the production declaration (6)
    env: Mapping[str, str] = field(default_factory=dict)
    p99_bound_s: float = 5.0
    lag_tolerance_share: float = 0.05
    drain_timeout_s: float = 60.0
    backlog_timeout_s: float = 300.0
    sample_interval_s: float = 1.0
    baseline: bool = False
    baseline_max_s: float = 120.0
    quiet_wait_s: float = 20.0  # wait up to this long for the host to be nearly idle first
    quiet_cores: float = 0.5  # "nearly idle": the whole host busy below this many cores

    @property
    def backend(self) -> str:
        return self.env.get("SW_INFERENCE_BACKEND", os.environ.get("SW_INFERENCE_BACKEND", "onnx"))


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:40] or "case"


def run_case(
    cfg: CaseConfig, kafka: KafkaSettings, pool: SegmentPool, workdir: Path
) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:6]
    prefix = f"bench-{run_id}-{_slug(cfg.name)}."
    names = TopicNames.with_prefix(prefix)
    group = f"bench-{run_id}"
    partitions = cfg.partitions or _DEFAULT_PARTITIONS
    baseline_topic = prefix + "baseline-results"
    extra = (baseline_topic,) if cfg.baseline else ()
    doc: dict[str, Any] = {
        "case": cfg.name,
        "config": asdict(cfg) | {"env": dict(cfg.env), "backend": cfg.backend},
        "topic_prefix": prefix,
        "partitions": partitions,
        "phases": {},
        "quiet": wait_for_quiet(cfg.quiet_wait_s, cfg.quiet_cores),
    }
    server_pids = _inference_server(cfg)
    workdir.mkdir(parents=True, exist_ok=True)
    env = _worker_env(cfg, kafka, prefix, group)
    workers = [WorkerProc(i, env, workdir / f"{prefix}worker-{i}.log") for i in range(cfg.workers)]
    create_topics(kafka, names, partitions=cfg.partitions, extra=extra)
    try:  # from here on, the topics go whatever happens
        collector = ResultCollector(kafka, names.results)
        collector.start()
        sampler: Sampler | None = None
        try:
            t_start = time.monotonic()
            for w in workers:
                w.start()
            wait_group(kafka, group, min(cfg.workers, partitions), workers, timeout_s=180)
            doc["startup_s"] = round(time.monotonic() - t_start, 2)
            _warm_up(kafka, names, pool, partitions, collector, workers)
            doc["warm_up_s"] = round(time.monotonic() - t_start - doc["startup_s"], 2)
            sampler = Sampler(
                kafka,
                group,
                [names.segments, names.chat],
                workers,
                server_pids,
                interval_s=cfg.sample_interval_s,
            )
            sampler.take()
            sampler.start()
            offsets = Consumer(kafka.confluent_config() | {"group.id": f"{group}-offsets"})
            try:
                ctx = PhaseContext(kafka, names, pool, workers, collector, sampler, offsets)
                doc["phases"] = _phases(ctx, cfg)
            finally:
                offsets.close()
            sampler.take()
        finally:
            if sampler is not None:
                sampler.stop()
                doc["samples"] = sampler.samples
            for w in workers:
                w.stop()
            collector.stop()
            doc["worker_logs"] = [_shown(w.log_path) for w in workers]
        if cfg.baseline and "backlog_segments" in doc["phases"]:
            from pipeline.bench.baseline import run_baseline

            doc["baseline"] = run_baseline(
                kafka, names, doc["phases"], cfg, results_topic=baseline_topic, workdir=workdir
            )
    finally:
        delete_topics(kafka, names, group, extra)
    doc["contention_cores"] = contention_cores(doc["phases"])
    return doc


def _shown(path: Path) -> str:
    """A path as the documents show it: relative to the checkout when inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _inference_server(cfg: CaseConfig) -> Callable[[], list[int]]:
    """Starts Triton when the case uses it; returns how to find its processes (for CPU)."""
    if cfg.backend != "triton":
        return list
    ensure_triton()
    return triton_pids


def contention_cores(phases: Mapping[str, Any]) -> float:
    """The most CPU (in cores, averaged over a phase) that other processes on the host took
    during any phase: other sessions' work on a shared machine, which skews every figure."""
    worst = 0.0
    for ph in phases.values():
        if "cores_used_by" in ph:
            worst = max(worst, ph["cores_used_by"].get("others", 0.0))
        elif ph.get("wall_s"):
            worst = max(worst, ph.get("others_cpu_s", 0.0) / ph["wall_s"])
    return round(worst, 2)


def _worker_env(cfg: CaseConfig, kafka: KafkaSettings, prefix: str, group: str) -> dict[str, str]:
    env = dict(os.environ) | {
        "SW_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "SW_KAFKA_TOPIC_PREFIX": prefix,
        "SW_APP_ID": group,
        "SW_LOG_LEVEL": "WARNING",
    }
    return env | dict(cfg.env)


def wait_for_quiet(
    max_wait_s: float, below_cores: float, window_s: float = 2.0
) -> dict[str, float]:
    """On a shared machine, start when the host is nearly idle (other sessions' work done),
    or after ``max_wait_s`` anyway; returns the wait and the busy cores last seen."""
    t0 = time.monotonic()
    busy_cores = 0.0
    while True:
        b0, w0 = host_cpu_s()[0], time.monotonic()
        time.sleep(window_s)
        busy_cores = (host_cpu_s()[0] - b0) / (time.monotonic() - w0)
        if busy_cores < below_cores or time.monotonic() - t0 >= max_wait_s:
            break
    return {"waited_s": round(time.monotonic() - t0, 1), "host_busy_cores": round(busy_cores, 2)}


def _phases(ctx: PhaseContext, cfg: CaseConfig) -> dict[str, Any]:
    """Segment backlog, chat backlog, then real time (each when its size is not 0)."""
    phases: dict[str, Any] = {}
    seg_ms = ctx.pool.spec.segment_ms
    if cfg.backlog_segments:
        streams = min(cfg.backlog_segments, max(cfg.streams, 1))
        per_stream = math.ceil(cfg.backlog_segments / streams)
        load = Load("bl-seg", streams, per_stream, 0, False, seg_ms)
        phases["backlog_segments"] = backlog_phase(ctx, load, timeout_s=cfg.backlog_timeout_s)
    if cfg.backlog_chat:
        streams = min(cfg.backlog_chat, max(cfg.streams, 1))
        per_stream = math.ceil(cfg.backlog_chat / streams)
        load = Load("bl-chat", streams, 0, per_stream, False, seg_ms)
        phases["backlog_chat"] = backlog_phase(ctx, load, timeout_s=cfg.backlog_timeout_s)
    if cfg.streams and cfg.realtime_s:
        segs = max(1, round(cfg.realtime_s * 1000 / seg_ms))
        chat = round(cfg.chat_per_min * segs * seg_ms / 60_000)
        load = Load(f"rt-{cfg.streams}", cfg.streams, segs, chat, True, seg_ms)
        phases["realtime"] = realtime_phase(
            ctx,
            load,
            drain_timeout_s=cfg.drain_timeout_s,
            p99_bound_s=cfg.p99_bound_s,
            lag_tolerance_share=cfg.lag_tolerance_share,
        )
    return phases


def _warm_up(
    kafka: KafkaSettings,
    names: TopicNames,
    pool: SegmentPool,
    partitions: int,
    collector: ResultCollector,
    workers: list[WorkerProc],
) -> None:
    """One segment and one chat line into every input partition, and their results back: the
    models have run once and every worker holds its partitions before anything is measured."""
    for p in range(partitions):
        produce(
            kafka, names, Load("warmup", 1, 1, 1, False, pool.spec.segment_ms), pool, partition=p
        )
    if not collector.wait_for(
        "warmup", partitions, partitions, 180, lambda: all(w.alive() for w in workers)
    ):
        tail = workers[0].log_tail() if workers else ""
        raise RuntimeError(f"warm-up inputs got no results within 180 s\n{tail}")
