"""The Faust app: thin wiring. Agents turn events into ``InRecord``s, call a handler, publish
the outputs and wait for the broker's acknowledgements, then save the handler's state in the
Faust tables and wait for the changelog's; only then are the events acked.

Agents (each ``concurrency=1``, batches from ``take_events``):

    segments  sw.segments         -> results, actions, review tasks, DSA, strikes feed
    chat      sw.chat             -> the same
    strikes   sw.actions-by-user  -> suspend_user actions (strike ledgers per user)
    verdicts  sw.review-verdicts  -> KPI metrics
    control   sw.control          -> per-stream sampling overrides

``take_events`` acks a batch in a ``finally`` even when the loop body failed or was cancelled
(at shutdown), which would let the commit pass inputs whose outputs were never published. So
each event's message gets one extra reference while its batch is in flight: take_events' own
ack then only drops that to one, and the final ack, the one that makes the offset committable,
is ours, after the outputs are durable. A batch that never completes is redelivered. And the
commits faust would make past unprocessed inputs are refused (``pipeline.commit_guard``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import faust
from faust.types import EventT

from pipeline import metrics
from pipeline.commit_guard import CommitGuard
from pipeline.errors import InferenceError
from pipeline.faust_state import FaustState
from pipeline.kpi import observe_outputs
from pipeline.observability import Health
from pipeline.records import InRecord, Outputs, OutRecord
from pipeline.settings import KafkaSettings, WorkerSettings
from pipeline.state import StateStore
from pipeline.topics import SEGMENT_MAX_MESSAGE_BYTES, TopicNames

log = logging.getLogger(__name__)

Handler = Callable[[Sequence[InRecord]], Awaitable[list[OutRecord] | Outputs]]
_RETRY_MAX_S = 30.0
_PUBLISHED_ROLES = ("results", "actions", "review", "dead_letters", "dsa_statements", "strikes")


@dataclass(frozen=True)
class Handlers:
    """The batch handler of each agent (``control`` defaults to the sampling overrides)."""

    segments: Handler
    chat: Handler
    strikes: Handler
    verdicts: Handler
    control: Handler | None = None


def to_record(event: EventT) -> InRecord:
    msg = event.message
    raw: Any = msg.headers or {}
    items = raw.items() if isinstance(raw, dict) else raw
    return InRecord(
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        key=msg.key,
        value=msg.value,
        headers={str(k): bytes(v or b"") for k, v in items},
        timestamp_ms=int(msg.timestamp * 1000) if msg.timestamp else None,
    )


def _credentials(kafka: KafkaSettings) -> Any:
    if kafka.sasl_mechanism:
        password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else ""
        return faust.SASLCredentials(
            username=kafka.sasl_username or "",
            password=password,
            mechanism=kafka.sasl_mechanism,
            ssl_context=_ssl_context(kafka) if kafka.security_protocol == "SASL_SSL" else None,
        )
    if kafka.security_protocol == "SSL":
        return _ssl_context(kafka)
    return None


def _ssl_context(kafka: KafkaSettings) -> Any:
    import ssl

    return ssl.create_default_context(cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None)


class Publisher:
    """Sends output records through Faust's producer and waits for every acknowledgement."""

    def __init__(self, app: faust.App, names: TopicNames) -> None:
        self._topics = {
            role: app.topic(getattr(names, role), key_serializer="raw", value_serializer="raw")
            for role in _PUBLISHED_ROLES
        }

    async def publish(self, records: Sequence[OutRecord]) -> None:
        pending = []
        for r in records:
            fut = await self._topics[r.topic].send(
                key=r.key, value=r.value, headers=list(r.headers), force=True
            )
            pending.append(fut)
        await asyncio.gather(*pending)  # raises if the broker refused any record
        for r in records:
            metrics.RECORDS_OUT.labels(r.topic).inc()
            h = {k: v.decode() for k, v in r.headers}
            if r.topic == "dead_letters":
                metrics.DEAD_LETTERS.labels(h["sw-reason"]).inc()
            elif r.topic == "results":
                metrics.DECISIONS.labels(h["sw-kind"], h["sw-decision"], h["sw-category"]).inc()
        observe_outputs(records)


async def handle_batch(
    kind: str,
    records: Sequence[InRecord],
    handler: Handler,
    publisher: Publisher,
    state: StateStore | None = None,
) -> None:
    """Handle one batch, publish its outputs, then save its state; retry failures with capped
    backoff (never drops).

    Bad input never gets here as an exception (it is a dead letter already); what does is a
    backend or broker failure, or a bug: the batch is retried, holding its partitions, and the
    retries are counted in ``sw_batch_retries_total``. A retry starts from the state as it was
    unless it was saved already: then the engine answers from its memo, with the same ids.
    """
    metrics.RECORDS_IN.labels(kind).inc(len(records))
    metrics.BATCH_SIZE.labels(kind).observe(len(records))
    delay_s = 0.5
    while True:
        try:
            with metrics.BATCH_SECONDS.labels(kind).time():
                result = await handler(records)
                outputs = result if isinstance(result, Outputs) else Outputs(result)
                await publisher.publish(outputs.records)
                if outputs.state:
                    if state is None:
                        raise RuntimeError(f"{kind} handler returned state but has no store")
                    await state.write(outputs.state)
            return
        except Exception as exc:
            metrics.BATCH_RETRIES.labels(kind).inc()
            log.warning(
                "%s batch of %d failed: %r; retrying in %.1fs",
                kind,
                len(records),
                exc,
                delay_s,
                exc_info=not isinstance(exc, InferenceError),
            )
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, _RETRY_MAX_S)


async def _process(
    stream: faust.StreamT,
    events: Sequence[EventT],
    kind: str,
    handler: Handler,
    publisher: Publisher,
    guard: CommitGuard,
    state: StateStore | None = None,
) -> None:
    for event in events:  # hold the offsets until outputs and state are durable (module doc)
        event.message.incref()
    await handle_batch(kind, [to_record(e) for e in events], handler, publisher, state)
    for event in events:
        guard.mark_processed(event.message)
        await stream.ack(event)


def create_app(
    worker: WorkerSettings,
    kafka: KafkaSettings,
    *,
    handlers: Callable[[StateStore], Handlers],
    health: Health | None = None,
    state_partitions: Mapping[str, int] | None = None,
) -> faust.App:
    """The app, its state tables, and one agent per input topic.

    ``handlers`` builds the batch handlers once the tables exist (they read state through
    the store it is given).
    """
    names = TopicNames.with_prefix(kafka.topic_prefix)
    app = faust.App(
        worker.app_id,
        broker=[f"kafka://{h.strip()}" for h in kafka.bootstrap_servers.split(",")],
        broker_credentials=_credentials(kafka),
        store=worker.table_store,
        datadir=str(_datadir(worker)),
        web_enabled=False,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=worker.commit_interval_s,
        broker_session_timeout=worker.session_timeout_s,
        broker_heartbeat_interval=min(3.0, worker.session_timeout_s / 3),
        producer_acks=-1,
        producer_max_request_size=SEGMENT_MAX_MESSAGE_BYTES + 65536,
        consumer_max_fetch_size=SEGMENT_MAX_MESSAGE_BYTES + 65536,
        stream_buffer_maxsize=4 * max(worker.segment_batch_max, worker.chat_batch_max),
    )
    publisher = Publisher(app, names)
    guard = CommitGuard(
        [names.segments, names.chat, names.strikes, names.review_verdicts],
        stall_after_s=worker.partition_stall_s,
    )
    guard.install(app.consumer)
    state = FaustState(app, partitions=state_partitions)
    h = handlers(state)
    if health is not None:
        # faust.Worker takes app.on_startup_finished for itself; timers start once table
        # recovery is over, so the first tick is the readiness signal.
        @app.timer(interval=1.0)
        async def heartbeat() -> None:  # liveness: the event loop is not blocked
            if not health.ready_flag:
                health.set_ready(True)
            health.beat()

    segments = app.topic(names.segments, key_serializer="raw", value_serializer="raw")
    chat = app.topic(names.chat, key_serializer="raw", value_serializer="raw")

    @app.agent(segments, concurrency=1, name="segments")
    async def segments_agent(stream: faust.StreamT) -> None:
        within_s = worker.segment_batch_wait_ms / 1000
        async for events in cast(faust.Stream, stream).take_events(
            worker.segment_batch_max, within=within_s
        ):
            await _process(stream, events, "segment", h.segments, publisher, guard, state)

    @app.agent(chat, concurrency=1, name="chat")
    async def chat_agent(stream: faust.StreamT) -> None:
        within_s = worker.chat_batch_wait_ms / 1000
        async for events in cast(faust.Stream, stream).take_events(
            worker.chat_batch_max, within=within_s
        ):
            await _process(stream, events, "chat", h.chat, publisher, guard, state)

    strikes = app.topic(names.strikes, key_serializer="raw", value_serializer="raw")

    @app.agent(strikes, concurrency=1, name="strikes")
    async def strikes_agent(stream: faust.StreamT) -> None:
        async for events in cast(faust.Stream, stream).take_events(64, within=0.2):
            await _process(stream, events, "strikes", h.strikes, publisher, guard, state)

    verdicts = app.topic(names.review_verdicts, key_serializer="raw", value_serializer="raw")

    @app.agent(verdicts, concurrency=1, name="verdicts")
    async def verdicts_agent(stream: faust.StreamT) -> None:
        async for events in cast(faust.Stream, stream).take_events(64, within=0.5):
            await _process(stream, events, "verdict", h.verdicts, publisher, guard)

    # acks=False: offsets never committed, so each start re-reads the compacted overrides.
    control = app.topic(names.control, key_serializer="raw", value_serializer="raw", acks=False)
    on_control = h.control or _sampling_control(worker, kafka, names.control)

    @app.agent(control, concurrency=1, name="control")
    async def control_agent(stream: faust.StreamT) -> None:
        async for events in cast(faust.Stream, stream).take_events(100, within=0.1):
            await handle_batch("control", [to_record(e) for e in events], on_control, publisher)

    return app


def _datadir(worker: WorkerSettings) -> Path:
    datadir = worker.state_dir / worker.app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)  # faust makes only the last level
    return datadir


def _sampling_control(worker: WorkerSettings, kafka: KafkaSettings, topic: str) -> Handler:
    """The process's overrides, read to the end of the topic now, before any agent runs."""
    from pipeline.media.control import PROCESS_OVERRIDES, SamplingControl, read_to_end
    from pipeline.segments import sampling_config

    control = SamplingControl(
        PROCESS_OVERRIDES,
        sampling_config(worker),
        dead_letter_max_payload_bytes=worker.dead_letter_max_payload_bytes,
    )
    control.replay(read_to_end(kafka, topic))
    return control.handle
