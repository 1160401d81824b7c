"""Produce synthetic livestreams to Kafka at real-time pace (or as a backlog)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from confluent_kafka import KafkaError, Message, Producer

from pipeline import codec
from pipeline.records import iso_ms
from pipeline.segments import META_HEADER
from pipeline.settings import KafkaSettings
from pipeline.simulate.chat_lines import ABUSIVE, BENIGN
from pipeline.simulate.synth import encode_segment
from pipeline.topics import SEGMENT_MAX_MESSAGE_BYTES, TopicNames

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimulationPlan:
    streams: int = 2
    duration_s: float = 10.0
    segment_ms: int = 2000
    width: int = 640
    height: int = 360
    fps: int = 30
    chat_per_min: float = 60.0
    abusive_share: float = 0.25
    realtime: bool = True
    promo_from_seq: int | None = 3  # the last stream burns a phone number in from this segment
    run_id: str = field(default_factory=lambda: f"{random.getrandbits(24):06x}")
    seed: int = 7

    @property
    def segments_per_stream(self) -> int:
        return max(1, round(self.duration_s * 1000 / self.segment_ms))

    def stream_id(self, i: int) -> str:
        return f"live-{self.run_id}-{i:03d}"


@dataclass
class SimulationSummary:
    segments: int = 0
    chat: int = 0
    abusive_chat: int = 0
    segment_bytes: int = 0
    errors: list[str] = field(default_factory=list)


def make_producer(kafka: KafkaSettings) -> Producer:
    conf = kafka.confluent_config() | {
        "partitioner": "murmur2_random",  # same partition as Java/aiokafka clients
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.max.bytes": SEGMENT_MAX_MESSAGE_BYTES + 65536,
    }
    return Producer(conf)


def segment_meta(plan: SimulationPlan, stream: int, seq: int, started: datetime) -> bytes:
    doc = {
        "stream_id": plan.stream_id(stream),
        "seq": seq,
        "started_at": iso_ms(started),
        "duration_ms": plan.segment_ms,
        "container": "mpegts",
        "codec": "h264",
        "user_id": f"streamer-{plan.run_id}-{stream:03d}",
    }
    return codec.encode("segment.v1", doc)


def _chat_schedule(plan: SimulationPlan, rng: random.Random) -> list[tuple[float, int, int]]:
    """(offset_s, stream, n) for every chat message, ordered by time."""
    events = []
    per_stream = round(plan.chat_per_min * plan.duration_s / 60)
    for s in range(plan.streams):
        for n in range(per_stream):
            events.append((rng.uniform(0, plan.duration_s), s, n))
    return sorted(events)


def run_simulation(
    kafka: KafkaSettings,
    names: TopicNames,
    plan: SimulationPlan,
    *,
    on_progress: Callable[[int, int], None] | None = None,
) -> SimulationSummary:
    """Produce every segment and chat line of ``plan``; returns what was acknowledged."""
    rng = random.Random(plan.seed)
    producer = make_producer(kafka)
    summary = SimulationSummary()

    def delivered(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            summary.errors.append(f"{msg.topic()}: {err}")
        elif msg.topic() == names.segments:
            summary.segments += 1
        else:
            summary.chat += 1

    chats = _chat_schedule(plan, rng)
    t0_wall = datetime.now(UTC)
    t0 = time.monotonic()
    total = plan.segments_per_stream * plan.streams
    produced = 0
    for seq in range(plan.segments_per_stream):
        seg_end_s = (seq + 1) * plan.segment_ms / 1000
        for s in range(plan.streams):
            data = encode_segment(
                stream_id=plan.stream_id(s),
                seq=seq,
                width=plan.width,
                height=plan.height,
                fps=plan.fps,
                duration_ms=plan.segment_ms,
                text=_overlay(plan, s, seq),
            )
            started = t0_wall + timedelta(seconds=seq * plan.segment_ms / 1000)
            meta = segment_meta(plan, s, seq, started)
            if plan.realtime:  # a segment exists only once its last frame was captured
                _sleep_until(t0 + seg_end_s, producer)
            producer.produce(
                names.segments,
                key=plan.stream_id(s).encode(),
                value=data,
                headers=[(META_HEADER, meta)],
                on_delivery=delivered,
            )
            summary.segment_bytes += len(data)
            produced += 1
            if on_progress:
                on_progress(produced, total)
        while chats and chats[0][0] < seg_end_s:
            offset_s, s, n = chats.pop(0)
            if plan.realtime:
                _sleep_until(t0 + offset_s, producer)
            abusive = rng.random() < plan.abusive_share
            locale, text = rng.choice(ABUSIVE if abusive else BENIGN)
            summary.abusive_chat += abusive
            doc = {
                "message_id": f"{plan.stream_id(s)}-m{n:05d}",
                "stream_id": plan.stream_id(s),
                # each run its own audience: strike ledgers do not carry over between runs
                "user_id": f"viewer-{plan.run_id}-{rng.randrange(50):03d}",
                "text": text,
                "sent_at": iso_ms(t0_wall + timedelta(seconds=offset_s)),
                "locale": locale,
            }
            producer.produce(
                names.chat,
                key=doc["stream_id"].encode(),
                value=codec.encode("chat.v1", doc),
                on_delivery=delivered,
            )
        producer.poll(0)
    remaining = producer.flush(30)
    if remaining:
        summary.errors.append(f"{remaining} records not acknowledged within 30 s")
    return summary


PROMO_TEXT = "WhatsApp me +1 555 123 4567"


def _overlay(plan: SimulationPlan, stream: int, seq: int) -> str:
    """Burned-in text: the stream and seq; on the last stream, a solicitation from some point."""
    promo = plan.promo_from_seq is not None and stream == plan.streams - 1
    if promo and seq >= (plan.promo_from_seq or 0):
        return PROMO_TEXT
    return f"{plan.stream_id(stream)} seq {seq}"


def _sleep_until(deadline: float, producer: Producer) -> None:
    while (left := deadline - time.monotonic()) > 0:
        producer.poll(min(left, 0.1))
