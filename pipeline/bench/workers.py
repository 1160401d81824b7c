"""The real things a benchmark drives: the broker (and Triton) started by their scripts, the
benchmark's own topics, and ``streamwarden worker`` subprocesses.

Topics get a unique prefix per case and ``message.timestamp.type=LogAppendTime``: the input's
Kafka timestamp (which the worker copies into ``result.input.produced_at``) and the result's
Kafka timestamp are then both the broker's append time, one clock for both ends of a latency.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from confluent_kafka import ConsumerGroupState, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline.bench.proc import ProcSample, Samples, children_of, read_proc, scrape
from pipeline.settings import KafkaSettings
from pipeline.topics import TOPIC_SPECS, TopicNames

__all__ = [
    "ROOT",
    "WorkerProc",
    "broker_pid",
    "create_topics",
    "delete_topics",
    "ensure_kafka",
    "ensure_triton",
    "free_port",
    "triton_pids",
    "wait_group",
]

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
TIMESTAMP_TYPE = "LogAppendTime"
# co-partitioned (same partition count), with the state tables sized after them
_INPUT_ROLES = ("segments", "chat", "control", "strikes")


def ensure_kafka() -> KafkaSettings:
    """``SW_KAFKA_BOOTSTRAP_SERVERS`` when set (nothing started), else the local broker, started
    by ``deploy/kafka/kafka.sh up`` (idempotent)."""
    if "SW_KAFKA_BOOTSTRAP_SERVERS" not in os.environ:
        subprocess.run([ROOT / "deploy" / "kafka" / "kafka.sh", "up"], check=True, timeout=600)
    return KafkaSettings()


def ensure_triton() -> None:
    subprocess.run([ROOT / "deploy" / "triton" / "triton.sh", "up"], check=True, timeout=600)


def broker_pid() -> int | None:
    """The local broker's pid (deploy/kafka/kafka.sh), None when it is not ours or not up."""
    pidfile = Path(os.environ.get("KAFKA_DATA_DIR", ROOT / ".data" / "kafka")) / "kafka.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if read_proc(pid) else None


def triton_pids() -> list[int]:
    """The local Triton server and its Python-backend stubs (their CPU is inference CPU)."""
    pidfile = Path(os.environ.get("TRITON_DATA_DIR", ROOT / ".data" / "triton")) / "triton.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return []
    return [pid, *children_of(pid)] if read_proc(pid) else []


def create_topics(
    kafka: KafkaSettings,
    names: TopicNames,
    *,
    partitions: int | None = None,
    extra: tuple[str, ...] = (),
) -> None:
    """The production declarations, with ``partitions`` for the input topics when given, and
    log-append timestamps; ``extra``: more topics (1 partition each, e.g. the baseline's)."""
    admin = AdminClient(kafka.confluent_config())
    new = []
    for spec in TOPIC_SPECS:
        count = partitions if partitions and spec.role in _INPUT_ROLES else spec.partitions
        config = spec.config() | {"message.timestamp.type": TIMESTAMP_TYPE}
        new.append(NewTopic(names.name_of(spec), count, kafka.replication_factor, config=config))
    for name in extra:
        config = {"message.timestamp.type": TIMESTAMP_TYPE}
        new.append(NewTopic(name, 1, kafka.replication_factor, config=config))
    for fut in admin.create_topics(new, request_timeout=30).values():
        fut.result(timeout=30)


def delete_topics(
    kafka: KafkaSettings, names: TopicNames, app_id: str, extra: tuple[str, ...] = ()
) -> None:
    """The case's topics, the state changelogs its workers made, and ``extra``."""
    admin = AdminClient(kafka.confluent_config())
    existing = admin.list_topics(timeout=30).topics
    topics = [t for t, _ in names.declared(app_id) if t in existing] + list(extra)
    for topic, fut in admin.delete_topics(topics, operation_timeout=30).items():
        try:
            fut.result(timeout=30)
        except KafkaException as exc:
            log.warning("could not delete topic %s: %s", topic, exc)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WorkerProc:
    """``python -m pipeline.cli worker --no-apply`` with its own metrics port."""

    def __init__(self, index: int, env: Mapping[str, str], log_path: Path) -> None:
        self.index = index
        self.metrics_port = free_port()
        self.env = dict(env) | {"SW_METRICS_PORT": str(self.metrics_port)}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pipeline.cli", "worker", "--no-apply"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("worker not started")
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def sample(self) -> ProcSample | None:
        return read_proc(self.pid) if self.alive() else None

    def scrape(self) -> Samples:
        return scrape(self.metrics_port)

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, n_bytes: int = 3000) -> str:
        try:
            return self.log_path.read_bytes()[-n_bytes:].decode(errors="replace")
        except OSError:
            return ""


def wait_group(
    kafka: KafkaSettings, group: str, members: int, workers: list[WorkerProc], timeout_s: float
) -> None:
    """Until the consumer group is stable with ``members`` members that all hold partitions
    (what ``/readyz`` would say if it were set; see the report). Raises on timeout or a crash."""
    admin = AdminClient(kafka.confluent_config())
    deadline = time.monotonic() + timeout_s
    state = "unknown"
    while time.monotonic() < deadline:
        for w in workers:
            if not w.alive():
                raise RuntimeError(f"worker {w.index} exited:\n{w.log_tail()}")
        try:
            desc = admin.describe_consumer_groups([group], request_timeout=10)[group].result()
            held = [m for m in desc.members if m.assignment and m.assignment.topic_partitions]
            state = f"{desc.state} members={len(desc.members)} holding={len(held)}"
            if desc.state == ConsumerGroupState.STABLE and len(held) == members:
                return
        except KafkaException as exc:
            state = str(exc)
        time.sleep(0.5)
    raise TimeoutError(f"group {group} not ready after {timeout_s:.0f} s ({state})")
