"""Prometheus metrics of the worker (served on ``SW_METRICS_PORT``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
UNPROCESSED_ACKS_REFUSED = Counter(
    "sw_unprocessed_acks_refused_total",
    "Inputs faust skipped in a rebalance and tried to ack; left uncommitted for redelivery",
    ["topic"],
)
PARTITION_STALLS = Counter(
    "sw_partition_stalls_total",
    "Input partitions whose commit stood still behind the log end; sought back to it",
    ["topic"],
)
FETCH_JUMPS = Counter(
    "sw_fetch_jumps_total",
    "Jumps in fetched input offsets (dropped messages): commit held, partition sought back",
    ["topic"],
)

# Media stage: sampling, near-duplicate suppression, hash-bank matching.
FRAMES_SAMPLED = Counter(
    "sw_frames_sampled_total", "Frames sampled from segments", ["strategy", "overridden"]
)
FRAMES_INFERRED = Counter("sw_frames_inferred_total", "Sampled frames sent to the frame models")
FRAMES_DEDUPLICATED = Counter(
    "sw_frames_deduplicated_total",
    "Sampled frames that reused a near-identical frame's scores (PDQ) instead of inference",
)
HASH_MATCHES = Counter(
    "sw_hash_matches_total", "Sampled frames matching the hash bank", ["bank_category"]
)
HASH_BANK_ENTRIES = Gauge("sw_hash_bank_entries", "Entries in the loaded hash bank")
SAMPLING_OVERRIDES = Gauge("sw_sampling_overrides", "Streams with a sampling override")
SAMPLING_BOOSTS = Counter(
    "sw_sampling_boosts_total", "Segments whose scores boosted adaptive sampling"
)
FRAMES_OCR = Counter("sw_frames_ocr_total", "Sampled frames OCR read (the schedule's pick)")

# Policy engine.
POLICY_REPLAYS = Counter(
    "sw_policy_replays_total",
    "Redelivered inputs answered from the memoised evaluation (state unchanged)",
    ["kind"],
)
STATE_WRITES = Counter("sw_state_writes_total", "State table keys saved", ["table"])
STRIKES_RECORDED = Counter("sw_strikes_total", "Strikes recorded in user ledgers", ["category"])
SUSPENSIONS = Counter("sw_strike_suspensions_total", "Users suspended for their strike total")
