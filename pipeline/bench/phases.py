"""One measured phase on running workers: a backlog (as fast as possible: throughput and CPU
per item) or real-time livestreams (latency percentiles, lag slope, CPU and RSS over time)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer

from pipeline.bench import stats
from pipeline.bench.load import Load, SegmentPool, produce
from pipeline.bench.observe import TIMESTAMP_TYPES, ResultCollector, ResultRow, Sampler
from pipeline.bench.proc import Samples, diff, metric_by, metric_sum
from pipeline.bench.workers import WorkerProc
from pipeline.settings import KafkaSettings
from pipeline.topics import TopicNames

__all__ = ["PhaseContext", "backlog_phase", "realtime_phase", "worker_metrics"]

_RAMP_SHARE = 0.25  # of a real-time phase left out of the lag slope and the achieved rates


@dataclass
class PhaseContext:
    kafka: KafkaSettings
    names: TopicNames
    pool: SegmentPool
    workers: Sequence[WorkerProc]
    collector: ResultCollector
    sampler: Sampler
    offsets: Consumer  # for watermarks (offset ranges of a phase, for the baseline)

    def alive(self) -> bool:
        return all(w.alive() for w in self.workers)

    def scrape(self) -> list[Samples]:
        return [w.scrape() for w in self.workers]

    def high_watermarks(self, topic: str) -> dict[int, int]:
        from confluent_kafka import TopicPartition

        parts = self.offsets.list_topics(topic, timeout=10).topics[topic].partitions
        return {
            p: self.offsets.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in parts
        }


def worker_metrics(before: Sequence[Samples], after: Sequence[Samples]) -> dict[str, Any]:
    """What the workers' own counters say about a phase (summed over workers)."""
    d: Samples = {}
    for b, a in zip(before, after, strict=True):
        for k, v in diff(a, b).items():
            d[k] = d.get(k, 0.0) + v

    def mean(name: str, label: str) -> dict[str, float]:
        sums, counts = metric_by(d, f"{name}_sum", label), metric_by(d, f"{name}_count", label)
        return {k: round(sums[k] / c, 4) for k, c in counts.items() if c}

    return {
        "frames_sampled": int(metric_sum(d, "sw_frames_sampled_total")),
        "frames_inferred": int(metric_sum(d, "sw_frames_inferred_total")),
        "frames_deduplicated": int(metric_sum(d, "sw_frames_deduplicated_total")),
        "dead_letters": int(metric_sum(d, "sw_dead_letters_total")),
        "batch_retries": int(metric_sum(d, "sw_batch_retries_total")),
        "mean_batch_records": mean("sw_batch_records", "kind"),
        "mean_batch_s": mean("sw_batch_seconds", "kind"),
        "mean_inference_batch_samples": mean("sw_batcher_batch_samples", "model"),
        "mean_inference_call_s": mean("sw_batcher_call_seconds", "model"),
        "mean_inference_queue_wait_s": mean("sw_batcher_queue_wait_seconds", "model"),
    }


def _others(cpu: dict[str, float]) -> dict[str, float]:
    """Adds ``others``: host CPU that none of ours used (other sessions on a shared host)."""
    ours = sum(v for k, v in cpu.items() if k != "host_busy")
    return cpu | {"others": max(cpu["host_busy"] - ours, 0.0)}


def _latency(rows: Sequence[ResultRow], kind: str) -> dict[str, float | int]:
    return stats.latency_summary_ms([r.latency_ms for r in rows if r.kind == kind])


def _common(rows: Sequence[ResultRow]) -> dict[str, Any]:
    types = sorted({TIMESTAMP_TYPES.get(r.timestamp_type, "?") for r in rows})
    return {
        "results": len(rows),
        "frames_sampled": sum(r.frames_sampled for r in rows),
        "frames_deduplicated": sum(r.frames_deduplicated for r in rows),
        "timestamp_types": types,
        "latency_segment": _latency(rows, "segment"),
        "latency_chat": _latency(rows, "chat"),
        "latencies_ms": {
            kind: sorted(r.latency_ms for r in rows if r.kind == kind)
            for kind in ("segment", "chat")
        },
    }


def backlog_phase(ctx: PhaseContext, load: Load, *, timeout_s: float) -> dict[str, Any]:
    """Produce ``load`` at once; throughput over [first input appended, last result appended];
    CPU of the workers (and inference server) from just before producing to the last result."""
    topic = ctx.names.segments if load.segments else ctx.names.chat
    low = ctx.high_watermarks(topic)
    metrics0, cpu0, t0 = ctx.scrape(), ctx.sampler.cpu_now(), ctx.sampler.now_s()
    sent = produce(ctx.kafka, ctx.names, load, ctx.pool)
    done = ctx.collector.wait_for(load.phase, load.segments, load.chat, timeout_s, ctx.alive)
    cpu1, t1, metrics1 = ctx.sampler.cpu_now(), ctx.sampler.now_s(), ctx.scrape()
    cpu = _others({k: cpu1[k] - cpu0[k] for k in cpu0})
    rows = ctx.collector.rows(load.phase)
    items = len(rows)
    window_s = (
        (max(r.published_ms for r in rows) - min(r.produced_ms for r in rows)) / 1000
        if rows
        else float("nan")
    )
    cpu_s, server_cpu_s = cpu["worker"], cpu["server"]
    frames = sum(r.frames_sampled for r in rows)
    out: dict[str, Any] = {
        "phase": load.phase,
        "inputs": {"segments": sent.segments, "chat": sent.chat, "bytes": sent.segment_bytes},
        "complete": done,
        "window_s": round(window_s, 3),
        "wall_s": round(t1 - t0, 3),
        "window": {"t0_s": round(t0, 2), "t1_s": round(t1, 2)},
        "worker_cpu_s": round(cpu_s, 3),
        "server_cpu_s": round(server_cpu_s, 3),
        "broker_cpu_s": round(cpu["broker"], 3),
        "harness_cpu_s": round(cpu["harness"], 3),
        "host_busy_cpu_s": round(cpu["host_busy"], 3),
        "others_cpu_s": round(cpu["others"], 3),
        "items_per_s": round(items / window_s, 3) if window_s > 0 else None,
        "offsets": {"topic": topic, "low": low, "high": ctx.high_watermarks(topic)},
        "worker_metrics": worker_metrics(metrics0, metrics1),
        **_common(rows),
    }
    total_cpu_s = cpu_s + server_cpu_s
    if load.segments:
        out["segments_per_s"] = out["items_per_s"]
        out["frames_per_s"] = round(frames / window_s, 3) if window_s > 0 else None
        out["cpu_ms_per_segment"] = round(1000 * total_cpu_s / max(items, 1), 2)
        out["cpu_ms_per_frame"] = round(1000 * total_cpu_s / max(frames, 1), 2)
    else:
        out["chat_per_s"] = out["items_per_s"]
        out["cpu_ms_per_chat"] = round(1000 * total_cpu_s / max(items, 1), 3)
    return out


def realtime_phase(
    ctx: PhaseContext,
    load: Load,
    *,
    drain_timeout_s: float,
    p99_bound_s: float,
    lag_tolerance_share: float,
) -> dict[str, Any]:
    """``load.streams`` livestreams at real-time pace for ``load.duration_s``; passes when every
    input got its result, p99 latency of segments and of chat is within ``p99_bound_s`` and the
    lag of neither input topic grows (:func:`stats.lag_verdict` over the producing window)."""
    metrics0, cpu0, t0 = ctx.scrape(), ctx.sampler.cpu_now(), ctx.sampler.now_s()
    wall0_ms = time.time() * 1000
    sent = produce(ctx.kafka, ctx.names, load, ctx.pool)
    t_produced, wall_produced_ms = ctx.sampler.now_s(), time.time() * 1000
    cpu_p = ctx.sampler.cpu_now()
    done = ctx.collector.wait_for(load.phase, load.segments, load.chat, drain_timeout_s, ctx.alive)
    t1 = ctx.sampler.now_s()
    rows = ctx.collector.rows(load.phase)
    samples = [s for s in ctx.sampler.since(t0) if s["t_s"] <= t_produced]
    seg_s = load.segment_ms / 1000
    rates = {
        ctx.names.segments: load.streams / seg_s,
        ctx.names.chat: load.chat / max(load.duration_s, seg_s),
    }
    verdicts = {}
    for topic, rate in rates.items():
        v = stats.lag_verdict(
            [s["t_s"] for s in samples],
            [s["lag_records"].get(topic, 0) for s in samples],
            input_records_per_s=rate,
            tolerance_share=lag_tolerance_share,
            skip_share=_RAMP_SHARE,
        )
        verdicts[topic] = {**v.__dict__, "growing": v.growing, "input_records_per_s": rate}
    common = _common(rows)
    p99s = [common[k].get("p99_ms", 0) for k in ("latency_segment", "latency_chat")]
    produce_s = t_produced - t0
    # achieved throughput: results published in the steady part of the load (the first quarter
    # is the ramp-up: streams start staggered and a segment exists only after segment_s)
    steady_from_ms = wall0_ms + (wall_produced_ms - wall0_ms) * _RAMP_SHARE
    steady_s = max((wall_produced_ms - steady_from_ms) / 1000, 1e-9)
    in_window = [r for r in rows if steady_from_ms <= r.published_ms <= wall_produced_ms]
    passed = (
        done
        and max(p99s) <= p99_bound_s * 1000
        and not any(v["growing"] for v in verdicts.values())
    )
    return {
        "phase": load.phase,
        "streams": load.streams,
        "duration_s": load.duration_s,
        "inputs": {"segments": sent.segments, "chat": sent.chat, "bytes": sent.segment_bytes},
        "offered": {
            "segments_per_s": round(rates[ctx.names.segments], 3),
            "chat_per_s": round(rates[ctx.names.chat], 3),
            "bitrate_bps": round(sent.segment_bytes * 8 / max(produce_s, 1e-9)),
        },
        "producer_max_late_s": round(sent.max_late_s, 3),
        "complete": done,
        "drain_s": round(t1 - t_produced, 2),
        # achieved: results published while the load ran, per second of it
        "segments_per_s": round(sum(r.kind == "segment" for r in in_window) / steady_s, 3),
        "frames_per_s": round(sum(r.frames_sampled for r in in_window) / steady_s, 3),
        "chat_per_s": round(sum(r.kind == "chat" for r in in_window) / steady_s, 3),
        "cores_used": round(
            (cpu_p["worker"] - cpu0["worker"] + cpu_p["server"] - cpu0["server"]) / produce_s, 3
        ),
        "cores_used_by": {
            k: round(v / produce_s, 3)
            for k, v in _others({k: cpu_p[k] - cpu0[k] for k in cpu0}).items()
        },
        "lag": verdicts,
        "passed": passed,
        "p99_bound_ms": p99_bound_s * 1000,
        "window": {
            "t0_s": round(t0, 2),
            "t_produced_s": round(t_produced, 2),
            "t1_s": round(t1, 2),
        },
        "worker_metrics": worker_metrics(metrics0, ctx.scrape()),
        **common,
    }
