"""Watching a run from outside: every result record (with its Kafka timestamp), and a sampler
of consumer lag, worker CPU/RSS and load average once per interval. Both are threads."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from pipeline.bench.load import phase_of
from pipeline.bench.proc import host_cpu_s, metric_by, read_proc, tree_cpu_s
from pipeline.bench.workers import WorkerProc, broker_pid
from pipeline.records import parse_iso
from pipeline.settings import KafkaSettings

__all__ = ["TIMESTAMP_TYPES", "ResultCollector", "ResultRow", "Sampler"]

log = logging.getLogger(__name__)

TIMESTAMP_TYPES = {0: "NotAvailable", 1: "CreateTime", 2: "LogAppendTime"}


@dataclass(frozen=True, slots=True)
class ResultRow:
    phase: str
    kind: str  # segment | chat
    produced_ms: int  # the input record's Kafka timestamp (result.input.produced_at)
    published_ms: int  # the result record's Kafka timestamp
    timestamp_type: int
    frames_sampled: int
    frames_deduplicated: int

    @property
    def latency_ms(self) -> int:
        return self.published_ms - self.produced_ms


def parse_result(value: bytes, timestamp: tuple[int, int]) -> ResultRow | None:
    """One result record -> a row; None when it has no input timestamp."""
    doc: dict[str, Any] = orjson.loads(value)
    src = doc.get("input", {})
    produced = src.get("produced_at")
    if produced is None:
        return None
    produced_ms = round(parse_iso(produced).timestamp() * 1000)
    return ResultRow(
        phase_of(str(src.get("stream_id", ""))),
        str(src.get("kind")),
        produced_ms,
        timestamp[1],
        timestamp[0],
        int(doc.get("frames_sampled") or 0),
        int(doc.get("frames_deduplicated") or 0),
    )


class ResultCollector(threading.Thread):
    """Reads the results topic from the beginning (manual assignment, no group)."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        super().__init__(name="bench-results", daemon=True)
        self._consumer = Consumer(
            kafka.confluent_config()
            | {"group.id": f"bench-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False}
        )
        parts = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        self._lock = threading.Lock()
        self._rows: list[ResultRow] = []
        self._counts: Counter[tuple[str, str]] = Counter()
        self._halt = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                msg = self._consumer.poll(0.2)
                if msg is None:
                    continue
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        self.errors.append(str(err))
                    continue
                row = parse_result(msg.value() or b"{}", msg.timestamp())
                if row is not None:
                    with self._lock:
                        self._rows.append(row)
                        self._counts[(row.phase, row.kind)] += 1
        finally:
            self._consumer.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(10)

    def count(self, phase: str, kind: str) -> int:
        with self._lock:
            return self._counts[(phase, kind)]

    def rows(self, phase: str) -> list[ResultRow]:
        with self._lock:
            return [r for r in self._rows if r.phase == phase]

    def wait_for(
        self, phase: str, segments: int, chat: int, timeout_s: float, alive: Callable[[], bool]
    ) -> bool:
        """Until ``phase`` has at least that many results of each kind; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.count(phase, "segment") >= segments and self.count(phase, "chat") >= chat:
                return True
            if not alive():
                return False
            time.sleep(0.1)
        return False


class Sampler(threading.Thread):
    """Every ``interval_s``: consumer lag per input topic from offsets (committed vs high
    watermark, as ``kafka-consumer-groups`` shows it), worker 0's ``sw_consumer_lag_records``
    gauge (it refreshes every 10 s), CPU seconds and RSS of every worker and of the inference
    server's processes, and the 1-minute load average."""

    def __init__(
        self,
        kafka: KafkaSettings,
        group: str,
        topics: Sequence[str],
        workers: Sequence[WorkerProc],
        server_pids: Callable[[], list[int]] = list,
        interval_s: float = 1.0,
    ) -> None:
        super().__init__(name="bench-sampler", daemon=True)
        self._consumer = Consumer(
            kafka.confluent_config() | {"group.id": group, "enable.auto.commit": False}
        )
        meta = self._consumer.list_topics(timeout=10).topics
        self._parts = [TopicPartition(t, p) for t in topics for p in meta[t].partitions]
        self._topics = list(topics)
        self._workers = list(workers)
        self._server_pids = server_pids
        self.interval_s = interval_s
        self.t0 = time.monotonic()
        self.samples: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def lag(self) -> dict[str, int]:
        out = dict.fromkeys(self._topics, 0)
        for tp in self._consumer.committed(self._parts, timeout=10):
            _, high = self._consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            out[tp.topic] += high - max(tp.offset, 0)
        return out

    def take(self) -> dict[str, Any]:
        procs = [w.sample() for w in self._workers]
        servers = [s for p in self._server_pids() if (s := read_proc(p)) is not None]
        cpu = self.cpu_now()
        gauge = metric_by(self._workers[0].scrape(), "sw_consumer_lag_records", "topic")
        sample = {
            "t_s": round(time.monotonic() - self.t0, 3),
            "wall_ms": round(time.time() * 1000),
            "worker_cpu_s": [round(p.cpu_s, 2) if p else None for p in procs],
            "worker_rss_bytes": [p.rss_bytes if p else None for p in procs],
            "server_cpu_s": round(sum(s.cpu_s for s in servers), 2),
            "server_rss_bytes": sum(s.rss_bytes for s in servers),
            "lag_records": self.lag(),
            "lag_gauge_records": {t: int(gauge[t]) for t in self._topics if t in gauge},
            "broker_cpu_s": round(cpu["broker"], 2),
            "harness_cpu_s": round(cpu["harness"], 2),
            "host_busy_cpu_s": round(cpu["host_busy"], 2),
            "load1": round(os.getloadavg()[0], 2),
        }
        with self._lock:
            self.samples.append(sample)
        return sample

    def run(self) -> None:
        try:
            while not self._halt.wait(self.interval_s):
                try:
                    self.take()
                except Exception:
                    log.warning("sampling failed", exc_info=True)
        finally:
            self._consumer.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(15)

    def cpu_now(self) -> dict[str, float]:
        """CPU seconds so far of the workers, the inference server's processes, the local
        broker (when it is ours), this benchmark process (producer, readers, sampler) and the
        whole host (everything that ran, other sessions' work included)."""
        broker = broker_pid()
        return {
            "worker": sum(p.cpu_s for w in self._workers if (p := w.sample()) is not None),
            "server": tree_cpu_s(self._server_pids()),
            "broker": tree_cpu_s([broker] if broker else []),
            "harness": tree_cpu_s([os.getpid()]),
            "host_busy": host_cpu_s()[0],
        }

    def since(self, t_s: float) -> list[dict[str, Any]]:
        with self._lock:
            return [s for s in self.samples if s["t_s"] >= t_s]

    def now_s(self) -> float:
        return time.monotonic() - self.t0
