"""``streamwarden bench capacity``: the most real-time streams one worker (group) sustains, with
p99 latency under a bound and a consumer lag that does not grow, found by a search over stream
counts (:func:`pipeline.bench.stats.capacity_search`), one short fresh case per count."""

from __future__ import annotations

import math
from typing import Any

from pipeline.bench import efficiency, stats
from pipeline.bench.commands import Options, finish, header, prepare, run_clean
from pipeline.bench.load import SegmentPool
from pipeline.settings import KafkaSettings

__all__ = ["estimate_streams", "run_capacity"]

_ESTIMATE_SHARE = 0.8


def _passed(case: dict[str, Any]) -> bool:
    return bool(case["phases"].get("realtime", {}).get("passed"))


def _trial_summary(case: dict[str, Any]) -> dict[str, Any]:
    """A case's real-time phase, with the samples of its own window (for the lag plot)."""
    rt = case["phases"].get("realtime", {})
    w = rt.get("window", {})
    samples = [s for s in case.get("samples", []) if w and w["t0_s"] <= s["t_s"] <= w["t1_s"]]
    return {
        "realtime": rt,
        "samples": samples,
        "startup_s": case.get("startup_s"),
        "contention_cores": case["contention_cores"],
    }


def estimate_streams(opts: Options, kafka: KafkaSettings, pool: SegmentPool) -> dict[str, Any]:
    """A first guess for the search: the segment backlog rate of one short case, times the
    segment length, times 0.8 (real-time batches are smaller than a backlog's)."""
    cfg = opts.case("capacity-estimate", streams=8, realtime_s=0, backlog_segments=16)
    case = run_clean(cfg, kafka, pool)
    seg_per_s = case["phases"]["backlog_segments"].get("segments_per_s") or 1.0
    streams = max(1, math.floor(_ESTIMATE_SHARE * seg_per_s * opts.spec.segment_s))
    return {"backlog_segments_per_s": seg_per_s, "streams": streams, "share": _ESTIMATE_SHARE}


def run_capacity(
    opts: Options,
    *,
    start: int | None,
    max_streams: int,
    precision: float,
    max_trials: int,
    growth: float | None = None,
    stem: str = "capacity",
) -> dict[str, Any]:
    """``start`` None: estimated (:func:`estimate_streams`), then a search growing by 1.25;
    an explicit ``start`` grows by 2 (``growth`` overrides either)."""
    args = ["capacity", *opts.to_args(load=False), f"--max-streams={max_streams}"]
    args += [f"--start={start}"] if start else []
    args += [f"--growth={growth:g}"] if growth else []
    args += [f"--precision={precision:g}", f"--max-trials={max_trials}"]
    args += [] if stem == "capacity" else [f"--name={stem}"]
    doc = header("capacity", args + (["--quick"] if opts.quick else []))
    kafka, pool, doc["segments"] = prepare(opts)
    settings = efficiency.worker_settings(opts.env)
    doc["criteria"] = {
        "p99_bound_ms": opts.p99_bound_s * 1000,
        "lag": "least-squares slope of the consumer lag over the last 3/4 of each run <= 5 % "
        "of the input rate (at least 0.1 records/s), per input topic",
        "complete": "every input got its result",
        "step_s": opts.realtime_s,
        "chat_per_min_per_stream": opts.chat_per_min,
        "sampling": settings.sampling
        + (f" {settings.sample_fps:g} fps" if settings.sampling == "fps" else ""),
        "backend": opts.env.get("SW_INFERENCE_BACKEND", settings.inference_backend),
        "workers": opts.workers,
    }

    def probe(n: int) -> stats.Trial:
        cfg = opts.case(
            f"capacity-{n}",
            streams=n,
            backlog_segments=0,
            backlog_chat=0,
            drain_timeout_s=2 * opts.p99_bound_s,  # a result later than that fails anyway
        )
        # a pass under contention stands (it passed with less CPU); a failure is run again
        case = run_clean(cfg, kafka, pool, retry=lambda c: not _passed(c))
        summary = _trial_summary(case) | {"attempts": case["attempts"]}
        return stats.Trial(n, _passed(case), summary)

    growth = growth or (1.25 if start is None else 2.0)
    if start is None:
        doc["estimate"] = estimate_streams(opts, kafka, pool)
        start = min(doc["estimate"]["streams"], max_streams)
    doc["search"] = {"start": start, "growth": growth, "precision": precision}
    found = stats.capacity_search(
        probe,
        start=start,
        max_streams=max_streams,
        precision=precision,
        max_trials=max_trials,
        growth=growth,
    )
    doc["capacity_streams"] = found.capacity
    doc["first_failure_streams"] = found.first_failure
    doc["streams_per_core"] = round(found.capacity / efficiency.core_budget(), 2)
    doc["trials"] = [{"streams": t.streams, "passed": t.passed, **t.detail} for t in found.trials]
    finish(doc, opts, stem)
    return doc
