"""pipeline.bench.proc / observe / phases helpers: /proc parsing, metrics scraping, result rows."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import orjson

from pipeline.bench import proc
from pipeline.bench.observe import parse_result
from pipeline.bench.phases import worker_metrics

# A command name with spaces and a parenthesis, as the kernel writes it.
STAT = (
    "4242 (python -m (x)) S 17 4242 17 0 -1 4194560 5000 0 0 0 "
    "250 50 0 0 20 0 9 0 1000 2000000000 90000 18446744073709551615"
)
STATM = "500000 90000 8000 1 0 120000 0"


def test_parse_stat_counts_fields_after_the_command_name() -> None:
    s = proc.parse_stat(STAT, STATM)
    ticks = os.sysconf("SC_CLK_TCK")
    assert (s.pid, s.ppid) == (4242, 17)
    assert s.cpu_s == (250 + 50) / ticks
    assert s.rss_bytes == 90000 * os.sysconf("SC_PAGE_SIZE")


def test_read_proc_and_children_of_live_processes() -> None:
    me = proc.read_proc(os.getpid())
    assert me is not None and me.rss_bytes > 0 and me.cpu_s > 0
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        deadline = time.monotonic() + 5
        while child.pid not in proc.children_of(os.getpid()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.pid in proc.children_of(os.getpid())
        assert proc.tree_cpu_s([child.pid, 999_999_999]) >= 0
    finally:
        child.kill()
        child.wait()
    assert proc.read_proc(child.pid) is None


METRICS = """# HELP sw_records_in_total Input records consumed
# TYPE sw_records_in_total counter
sw_records_in_total{kind="segment"} 10.0
sw_records_in_total{kind="chat"} 90.0
# HELP sw_batch_records Records per agent batch
# TYPE sw_batch_records histogram
sw_batch_records_bucket{kind="segment",le="8.0"} 2.0
sw_batch_records_bucket{kind="segment",le="+Inf"} 2.0
sw_batch_records_count{kind="segment"} 2.0
sw_batch_records_sum{kind="segment"} 10.0
# HELP sw_consumer_lag_records lag
# TYPE sw_consumer_lag_records gauge
sw_consumer_lag_records{partition="0",topic="a.segments"} 3.0
sw_consumer_lag_records{partition="1",topic="a.segments"} 4.0
"""


def test_parse_and_sum_metrics() -> None:
    m = proc.parse_metrics(METRICS)
    assert proc.metric_sum(m, "sw_records_in_total") == 100
    assert proc.metric_sum(m, "sw_records_in_total", kind="chat") == 90
    assert proc.metric_by(m, "sw_consumer_lag_records", "topic") == {"a.segments": 7.0}
    before = proc.parse_metrics(METRICS.replace(" 90.0", " 40.0"))
    assert proc.metric_sum(proc.diff(m, before), "sw_records_in_total") == 50
    assert proc.scrape(1) == {}  # nothing listens: empty, no exception


def test_worker_metrics_summarise_counter_increases() -> None:
    after = proc.parse_metrics(METRICS)
    wm = worker_metrics([{}], [after])
    assert wm["mean_batch_records"] == {"segment": 5.0}
    assert wm["frames_sampled"] == 0 and wm["dead_letters"] == 0


def test_parse_result_takes_the_input_timestamp_and_the_record_timestamp() -> None:
    doc = {
        "input": {"kind": "segment", "stream_id": "rt-8:0003", "seq": 4,
                  "produced_at": "2026-11-25T10:00:00.250Z"},
        "frames_sampled": 2,
        "frames_deduplicated": 1,
    }  # fmt: skip
    published_ms = 1795600801000  # 2026-11-25T10:00:01.000Z
    row = parse_result(orjson.dumps(doc), (2, published_ms))
    assert row is not None
    assert (row.phase, row.kind, row.timestamp_type) == ("rt-8", "segment", 2)
    assert row.latency_ms == 750
    assert (row.frames_sampled, row.frames_deduplicated) == (2, 1)
    no_time = {"input": {"kind": "chat", "stream_id": "x:0001"}}
    assert parse_result(orjson.dumps(no_time), (2, published_ms)) is None
