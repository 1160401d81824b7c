"""The worker's HTTP side door: ``/metrics`` (Prometheus), ``/livez``, ``/readyz``; and consumer
lag, measured the way ``kafka-consumer-groups`` does (committed offset vs. high watermark).

Runs in daemon threads, so a blocked event loop cannot hide itself: liveness is a heartbeat the
loop must keep refreshing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from confluent_kafka import Consumer, TopicPartition
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest

from pipeline.settings import KafkaSettings

log = logging.getLogger(__name__)

CONSUMER_LAG = Gauge(
    "sw_consumer_lag_records", "High watermark minus committed offset", ["topic", "partition"]
)
LOOP_HEARTBEAT_AGE = Gauge("sw_event_loop_heartbeat_age_seconds", "Seconds since the loop ticked")


class Health:
    """Liveness = the event loop ticked recently; readiness = models loaded and partitions held."""

    def __init__(self, stale_after_s: float = 30.0) -> None:
        self.stale_after_s = stale_after_s
        self._beat = time.monotonic()
        self._ready = False

    def beat(self) -> None:
        self._beat = time.monotonic()

    def set_ready(self, ready: bool) -> None:
        self._ready = ready

    @property
    def ready_flag(self) -> bool:
        return self._ready

    def alive(self) -> bool:
        age = time.monotonic() - self._beat
        LOOP_HEARTBEAT_AGE.set(age)
        return age < self.stale_after_s

    def ready(self) -> bool:
        return self._ready and self.alive()


def serve(health: Health, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                health.alive()  # refresh the heartbeat-age gauge
                self._reply(200, generate_latest(), CONTENT_TYPE_LATEST)
            elif self.path == "/livez":
                ok = health.alive()
                self._reply(200 if ok else 503, b"ok\n" if ok else b"event loop stalled\n")
            elif self.path == "/readyz":
                ok = health.ready()
                self._reply(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
            else:
                self._reply(404, b"not found\n")

        def _reply(self, code: int, body: bytes, ctype: str = "text/plain") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("http " + format, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="sw-http", daemon=True).start()
    log.info("metrics and health on http://%s:%d", host, server.server_address[1])
    return server


def watch_lag(
    kafka: KafkaSettings, group: str, topics: Sequence[str], *, interval_s: float = 10.0
) -> threading.Thread:
    """Refresh ``sw_consumer_lag_records`` every ``interval_s`` for ``group`` on ``topics``."""

    def run() -> None:
        consumer = Consumer(
            kafka.confluent_config() | {"group.id": group, "enable.auto.commit": False}
        )
        while True:
            try:
                meta = consumer.list_topics(timeout=10).topics
                parts = [
                    TopicPartition(t, p) for t in topics if t in meta for p in meta[t].partitions
                ]
                for tp in consumer.committed(parts, timeout=10):
                    _, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
                    lag = high - max(tp.offset, 0)
                    CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)
            except Exception:
                log.warning("consumer lag refresh failed", exc_info=True)
            time.sleep(interval_s)

    thread = threading.Thread(target=run, name="sw-lag", daemon=True)
    thread.start()
    return thread
