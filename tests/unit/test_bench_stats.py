"""pipeline.bench.stats: percentiles, slope, the lag-growth test, the capacity search."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import numpy as np
import pytest

from pipeline.bench import stats
from pipeline.bench.stats import Trial


@pytest.mark.parametrize("n", [1, 2, 7, 100, 1001])
def test_percentile_matches_numpy_linear(n: int) -> None:
    rng = random.Random(n)
    values = [rng.expovariate(1 / 200) for _ in range(n)]
    for q in (0, 1, 50, 95, 99, 99.9, 100):
        assert stats.percentile(values, q) == pytest.approx(np.percentile(values, q))


def test_percentile_edge_cases() -> None:
    assert math.isnan(stats.percentile([], 50))
    assert stats.percentile([5.0], 99) == 5.0
    assert stats.percentile([3, 1, 2], 50) == 2  # order does not matter
    with pytest.raises(ValueError):
        stats.percentile([1.0], 101)


def test_latency_summary_ms() -> None:
    s = stats.latency_summary_ms(list(range(1, 101)))
    assert s["n"] == 100 and s["p50_ms"] == 50.5 and s["p99_ms"] == 99.0 and s["max_ms"] == 100
    assert stats.latency_summary_ms([]) == {"n": 0}


def test_slope() -> None:
    xs = [0.0, 1.0, 2.0, 3.0]
    assert stats.slope(xs, [1 + 2 * x for x in xs]) == pytest.approx(2.0)
    assert stats.slope(xs, [5.0] * 4) == 0.0
    assert stats.slope([1.0], [3.0]) == 0.0
    assert stats.slope([2.0, 2.0], [1.0, 9.0]) == 0.0  # no spread in x
    with pytest.raises(ValueError):
        stats.slope([1.0], [])


def test_lag_verdict_growing_lag_fails() -> None:
    t = [float(i) for i in range(30)]
    lag = [1.0 * x for x in t]  # 10 records/s in, 9 out
    v = stats.lag_verdict(t, lag, input_records_per_s=10)
    assert v.growing and v.slope_records_per_s == pytest.approx(1.0)
    assert v.tolerance_records_per_s == pytest.approx(0.5)  # 5 % of the input rate


def test_lag_verdict_sawtooth_passes_and_ramp_up_is_ignored() -> None:
    t = [float(i) for i in range(40)]
    sawtooth = [(i % 4) * 3.0 for i in range(40)]  # a batch of 8 filling and emptying
    assert not stats.lag_verdict(t, sawtooth, input_records_per_s=8).growing
    ramp = [min(i, 8) * 2.0 for i in range(40)]  # climbs while the worker warms up, then flat
    v = stats.lag_verdict(t, ramp, input_records_per_s=8, skip_share=0.25)
    assert not v.growing and v.samples == 30


def test_lag_verdict_floor_keeps_noise_from_failing_tiny_rates() -> None:
    t = [0.0, 1.0, 2.0, 3.0]
    v = stats.lag_verdict(t, [0, 0, 0, 0.1], input_records_per_s=0.1, skip_share=0)
    assert v.tolerance_records_per_s == 0.1 and not v.growing
    assert stats.lag_verdict([], [], input_records_per_s=1).samples == 0


def _probe(capacity: int, seen: list[int]) -> Callable[[int], Trial]:
    def probe(n: int) -> Trial:
        seen.append(n)
        return Trial(n, n <= capacity)

    return probe


def test_capacity_search_doubles_then_bisects_exactly() -> None:
    seen: list[int] = []
    r = stats.capacity_search(
        _probe(37, seen), start=8, max_streams=128, precision=0, max_trials=20
    )
    assert r.capacity == 37 and r.first_failure == 38
    assert seen[:4] == [8, 16, 32, 64]  # doubling until the first failure
    assert len(seen) <= 4 + 5  # then log2(32) bisection steps


def test_capacity_search_stops_within_precision() -> None:
    seen: list[int] = []
    r = stats.capacity_search(_probe(37, seen), start=8, max_streams=128, precision=0.1)
    assert r.first_failure is not None and r.capacity <= 37 < r.first_failure
    assert (r.first_failure - r.capacity) <= max(1, 0.1 * r.capacity)
    assert r.trials[0].streams == 8 and all(isinstance(t, Trial) for t in r.trials)


def test_capacity_search_when_start_fails_and_when_max_passes() -> None:
    r = stats.capacity_search(_probe(2, []), start=8, max_streams=64, precision=0)
    assert (r.capacity, r.first_failure) == (2, 3)
    r = stats.capacity_search(_probe(0, []), start=4, max_streams=64)
    assert (r.capacity, r.first_failure) == (0, 1)
    r = stats.capacity_search(_probe(1000, []), start=8, max_streams=20)
    assert (r.capacity, r.first_failure) == (20, None)
    assert [t.streams for t in r.trials] == [8, 16, 20]


def test_capacity_search_respects_max_trials() -> None:
    seen: list[int] = []
    r = stats.capacity_search(_probe(37, seen), start=1, max_streams=1000, max_trials=3)
    assert seen == [1, 2, 4] and r.capacity == 4 and r.first_failure is None
    with pytest.raises(ValueError):
        stats.capacity_search(_probe(1, []), start=0, max_streams=4)


def test_ratio_and_streams_per_core() -> None:
    assert stats.ratio(3, 2) == 1.5
    assert stats.ratio(None, 2) is None and stats.ratio(1, 0) is None
    assert stats.ratio(float("nan"), 1) is None
    # 100 ms of CPU per 2 s segment: 20 streams per core; chat adds 60/min * 1 ms = 6 %
    assert stats.streams_per_core(cpu_s_per_segment=0.1, segment_s=2) == 20
    with_chat = stats.streams_per_core(
        cpu_s_per_segment=0.1, segment_s=2, cpu_s_per_chat=0.001, chat_per_min=60
    )
    assert with_chat == pytest.approx(1 / 0.051, abs=0.01)
    assert stats.streams_per_core(cpu_s_per_segment=0, segment_s=2) is None


def test_capacity_search_from_a_good_estimate_takes_few_trials() -> None:
    seen: list[int] = []
    r = stats.capacity_search(_probe(36, seen), start=35, max_streams=128, growth=1.25)
    assert r.capacity in (35, 36) and r.first_failure is not None
    assert r.first_failure - r.capacity <= 0.1 * r.capacity
    assert seen[:2] == [35, 43] and len(seen) <= 4
    seen.clear()
    r = stats.capacity_search(_probe(20, seen), start=35, max_streams=128, growth=1.25)
    assert seen[:4] == [35, 28, 23, 19] and r.capacity >= 19  # shrinks by 1.25, then bisects
    with pytest.raises(ValueError):
        stats.capacity_search(_probe(1, []), start=1, max_streams=4, growth=1.0)
