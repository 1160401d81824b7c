"""``streamwarden demo``: a worker, simulated livestreams and a live view, end to end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from pipeline.settings import KafkaSettings, WorkerSettings
from pipeline.simulate.produce import SimulationPlan, make_producer, run_simulation, segment_meta
from pipeline.tail import iter_outputs
from pipeline.topics import TopicNames, apply_topics

_DRAIN_TIMEOUT_S = 180.0


def _inject_bad_inputs(kafka: KafkaSettings, names: TopicNames, plan: SimulationPlan) -> None:
    """One corrupt segment and one malformed chat line: both must end as dead letters."""
    from datetime import UTC, datetime

    producer = make_producer(kafka)
    key = plan.stream_id(0).encode()
    meta = segment_meta(plan, 0, 10_000, datetime.now(UTC))
    producer.produce(names.segments, key=key, value=os.urandom(4096), headers=[("sw-meta", meta)])
    producer.produce(names.chat, key=key, value=b'{"message_id": "m-bad", "text": 42}')
    producer.flush(30)


def run_demo(*, streams: int, duration_s: float, console: Console) -> int:
    kafka = KafkaSettings()
    names = TopicNames.with_prefix(kafka.topic_prefix)
    apply_topics(kafka, names, app_id=WorkerSettings().app_id)
    plan = SimulationPlan(streams=streams, duration_s=duration_s)
    expected = plan.streams * plan.segments_per_stream
    console.print(
        f"[bold]streamwarden demo[/]: {streams} streams × {duration_s:.0f} s, run {plan.run_id}, "
        f"broker {kafka.bootstrap_servers}"
    )
    log_path = Path(".data") / "demo-worker.log"
    log_path.parent.mkdir(exist_ok=True)
    with log_path.open("wb") as log_file:
        worker = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "worker", "--no-apply"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=os.environ | {"SW_LOG_LEVEL": "INFO"},
        )
    console.print(f"worker pid {worker.pid} (log: {log_path})")
    seen: Counter[str] = Counter()
    ids: set[str] = set()  # a redelivery republishes the same id: count each output once
    done = threading.Event()
    from pipeline.cli import render

    def watch() -> None:
        for role, doc in iter_outputs(kafka, names, idle_timeout_s=_DRAIN_TIMEOUT_S):
            key = doc.get("input", {}).get("stream_id") or doc.get("source", {}).get("key") or ""
            if plan.run_id not in key:
                continue
            if doc["id"] in ids:
                continue
            ids.add(doc["id"])
            console.print(render(role, doc), highlight=False)
            _count(seen, role, doc)
            if (
                seen["segment_results"] >= expected
                and seen["chat_results"] >= seen["chat_sent"] > 0
            ) and seen["dead_letters"] >= 2:
                break
        done.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        summary = run_simulation(kafka, names, plan)
        seen["chat_sent"] = summary.chat
        _inject_bad_inputs(kafka, names, plan)
        done.wait(_DRAIN_TIMEOUT_S)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
    _summary(console, seen, expected, summary.chat)
    complete = seen["segment_results"] >= expected and seen["chat_results"] >= summary.chat
    if not complete:
        console.print(f"[red]incomplete: see {log_path}[/]")
    return 0 if complete else 1


def _count(seen: Counter[str], role: str, doc: dict[str, Any]) -> None:
    if role == "results":
        seen[f"{doc['input']['kind']}_results"] += 1
    elif role == "actions":
        seen[f"action:{doc['action']}"] += 1
    seen[role] += 1


def _summary(console: Console, seen: Counter[str], expected: int, chat_sent: int) -> None:
    table = Table(title="demo summary")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("segments produced / results", f"{expected} / {seen['segment_results']}")
    table.add_row("chat lines produced / results", f"{chat_sent} / {seen['chat_results']}")
    for key, n in sorted(seen.items()):
        if key.startswith("action:"):
            table.add_row(f"enforcement action {key[7:]}", str(n))
    table.add_row("review tasks", str(seen["review"]))
    table.add_row("dead letters", str(seen["dead_letters"]))
    console.print(table)
