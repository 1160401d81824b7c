"""Prometheus metrics of the worker (served on ``SW_METRICS_PORT``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RECORDS_IN = Counter("sw_records_in_total", "Input records consumed", ["kind"])
RECORDS_OUT = Counter("sw_records_out_total", "Records published and acknowledged", ["topic"])
DEAD_LETTERS = Counter("sw_dead_letters_total", "Inputs sent to the dead-letter topic", ["reason"])
DECISIONS = Counter("sw_decisions_total", "Decisions taken", ["kind", "action", "category"])
BATCH_SIZE = Histogram(
    "sw_batch_records", "Records per agent batch", ["kind"], buckets=(1, 2, 4, 8, 16, 32, 64, 128)
)
BATCH_SECONDS = Histogram(
    "sw_batch_seconds",
    "Wall time to handle and publish one batch",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH_RETRIES = Counter("sw_batch_retries_total", "Batches retried after a backend error", ["kind"])
