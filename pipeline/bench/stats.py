"""Pure numbers for the benchmarks: percentiles, a least-squares slope, the lag-growth test,
the capacity search over stream counts, and the throughput bound. No I/O here."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "CapacityResult",
    "LagVerdict",
    "Trial",
    "capacity_search",
    "lag_verdict",
    "latency_summary_ms",
    "percentile",
    "ratio",
    "slope",
    "streams_per_core",
]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear interpolation between closest ranks (numpy's
    default). ``nan`` for no values."""
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in [0, 100], got {q}")
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def latency_summary_ms(latencies_ms: Sequence[float]) -> dict[str, float | int]:
    """n, p50, p95, p99, max and mean of a latency sample, in ms (rounded to 0.1 ms)."""
    if not latencies_ms:
        return {"n": 0}
    return {
        "n": len(latencies_ms),
        "p50_ms": round(percentile(latencies_ms, 50), 1),
        "p95_ms": round(percentile(latencies_ms, 95), 1),
        "p99_ms": round(percentile(latencies_ms, 99), 1),
        "max_ms": round(max(latencies_ms), 1),
        "mean_ms": round(sum(latencies_ms) / len(latencies_ms), 1),
    }


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ``ys`` over ``xs`` (0 when fewer than 2 points or no spread)."""
    if len(xs) != len(ys):
        raise ValueError("xs and ys differ in length")
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


@dataclass(frozen=True)
class LagVerdict:
    slope_records_per_s: float
    tolerance_records_per_s: float
    samples: int

    @property
    def growing(self) -> bool:
        return self.slope_records_per_s > self.tolerance_records_per_s


def lag_verdict(
    times_s: Sequence[float],
    lag_records: Sequence[float],
    *,
    input_records_per_s: float,
    tolerance_share: float = 0.05,
    floor_records_per_s: float = 0.1,
    skip_share: float = 0.25,
) -> LagVerdict:
    """Is the lag growing? The least-squares slope of the lag over the run, leaving out the
    first ``skip_share`` of it (the ramp-up), must not exceed ``tolerance_share`` of the input
    rate (nor ``floor_records_per_s``, so that a tiny rate does not make noise a failure).

    A worker that keeps up has a lag that saw-tooths around the batch size: slope ~ 0. One that
    handles 90 % of its input has a slope of 10 % of the input rate."""
    if not times_s:
        return LagVerdict(0.0, 0.0, 0)
    t0, t1 = times_s[0], times_s[-1]
    start = t0 + (t1 - t0) * skip_share
    kept = [(t, y) for t, y in zip(times_s, lag_records, strict=True) if t >= start]
    s = slope([t for t, _ in kept], [y for _, y in kept])
    tolerance = max(tolerance_share * input_records_per_s, floor_records_per_s)
    return LagVerdict(round(s, 4), round(tolerance, 4), len(kept))


@dataclass(frozen=True)
class Trial:
    streams: int
    passed: bool
    detail: dict[str, object] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class CapacityResult:
    capacity: int  # largest count that passed; 0 when even ``start`` failed
    first_failure: int | None  # smallest count that failed; None when ``max_streams`` passed
    trials: tuple[Trial, ...]


def capacity_search(
    probe: Callable[[int], Trial],
    *,
    start: int,
    max_streams: int,
    precision: float = 0.1,
    max_trials: int = 12,
    growth: float = 2.0,
) -> CapacityResult:
    """The largest stream count that ``probe`` passes, assuming a pass at n means a pass below n.

    From ``start``: while it passes, grow by ``growth`` (up to ``max_streams``); if ``start``
    fails, shrink by ``growth`` until a pass (or 1 fails). Then bisect between the last pass and
    the first failure until they are within ``precision`` of the pass (or adjacent). At most
    ``max_trials`` probes. A good ``start`` (an estimate) and a small ``growth`` take few."""
    if not 1 <= start <= max_streams:
        raise ValueError(f"need 1 <= start <= max_streams, got {start}, {max_streams}")
    if growth <= 1:
        raise ValueError(f"growth must be > 1, got {growth}")
    trials: list[Trial] = []

    def run(n: int) -> bool:
        trial = probe(n)
        trials.append(trial)
        return trial.passed

    lo, hi = 0, None  # lo passed (0: nothing yet), hi failed (None: nothing yet)
    n = start
    while len(trials) < max_trials:
        if run(n):
            lo = n
            if n == max_streams or hi is not None:
                break
            n = min(max(n + 1, math.floor(n * growth)), max_streams)
        else:
            hi = n
            if lo or n == 1:
                break
            n = max(1, min(n - 1, math.ceil(n / growth)))
    while hi is not None and len(trials) < max_trials and hi - lo > 1:
        if lo > 0 and (hi - lo) <= precision * lo:
            break
        mid = (lo + hi) // 2
        if run(mid):
            lo = mid
        else:
            hi = mid
    return CapacityResult(lo, hi, tuple(trials))


def ratio(numerator: float | None, denominator: float | None, digits: int = 2) -> float | None:
    """``numerator / denominator`` rounded, None when either is missing or the denominator 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    if math.isnan(numerator) or math.isnan(denominator):
        return None
    return round(numerator / denominator, digits)


def streams_per_core(
    *,
    cpu_s_per_segment: float,
    segment_s: float,
    cpu_s_per_chat: float = 0.0,
    chat_per_min: float = 0.0,
) -> float | None:
    """How many real-time streams one fully busy core could carry: one stream costs one
    segment per ``segment_s`` plus ``chat_per_min`` chat lines a minute."""
    per_stream_cpu_s_per_s = cpu_s_per_segment / segment_s + cpu_s_per_chat * chat_per_min / 60
    if per_stream_cpu_s_per_s <= 0:
        return None
    return round(1 / per_stream_cpu_s_per_s, 2)
