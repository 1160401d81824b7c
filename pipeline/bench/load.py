"""Benchmark load: synthetic segments encoded ONCE into an on-disk pool, and a producer that
replays them as N livestreams (real-time pace, or all at once as a backlog) plus chat.

Encoding a 720p segment costs ~0.7 s of CPU: done during a measurement, the producer would
steal the worker's CPU on a small machine. So the pool is made before anything is measured
(and kept in ``.data/bench/segments/`` for the next run); during a run the producer only
reads bytes from memory and hands them to librdkafka.

Pool entries are distinct encodes (``encode_segment`` seeds the picture by stream id and
sequence number); stream ``s`` plays entry ``(5 s + q) mod K`` at its sequence ``q``, so two
consecutive segments of a stream never show the same picture and the worker's near-duplicate
suppression (PDQ, per stream) sees what it would see on live video.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
from confluent_kafka import KafkaError, Message

from pipeline import codec
from pipeline.records import iso_ms
from pipeline.segments import META_HEADER
from pipeline.settings import KafkaSettings
from pipeline.simulate import synth
from pipeline.simulate.chat_lines import ABUSIVE, BENIGN
from pipeline.simulate.produce import make_producer
from pipeline.topics import TopicNames

__all__ = ["Event", "Load", "ProduceSummary", "SegmentPool", "SegmentSpec", "produce", "schedule"]

log = logging.getLogger(__name__)

PHASE_SEP = ":"  # stream ids are "<phase>:<nnnn>"; results are told apart by their phase


@dataclass(frozen=True)
class SegmentSpec:
    """What every benchmark segment looks like: H.264 in MPEG-TS, GOP = ``gop_s``."""

    width: int = 1280
    height: int = 720
    fps: int = 30
    bitrate_bps: int = 3_000_000
    grain: float = 2.0  # camera-like noise so that the encoder really spends the bitrate
    segment_ms: int = 2000
    gop_s: float = 2.0

    @property
    def label(self) -> str:
        return f"{self.height}p{self.fps} {self.bitrate_bps / 1e6:g} Mbit/s"

    @property
    def segment_s(self) -> float:
        return self.segment_ms / 1000

    def cache_key(self) -> str:
        source = Path(synth.__file__).read_bytes() + av.__version__.encode()
        digest = hashlib.sha256(source).hexdigest()[:10]
        return (
            f"{self.width}x{self.height}-{self.fps}fps-{self.bitrate_bps}bps-g{self.grain:g}"
            f"-{self.segment_ms}ms-gop{self.gop_s:g}-{digest}"
        )


class SegmentPool:
    """``size`` distinct segments of ``spec``, encoded once and cached under ``root``."""

    def __init__(self, spec: SegmentSpec, root: Path, size: int = 16) -> None:
        if size < 2:
            raise ValueError("a pool needs at least 2 segments (consecutive ones must differ)")
        self.spec = spec
        folder = root / spec.cache_key()
        folder.mkdir(parents=True, exist_ok=True)
        self.encoded_now = 0
        self.segments: list[bytes] = []
        for i in range(size):
            path = folder / f"{i:03d}.ts"
            if not path.exists():
                data = synth.encode_segment(
                    stream_id=f"bench-pool-{i}",
                    seq=i,
                    width=spec.width,
                    height=spec.height,
                    fps=spec.fps,
                    duration_ms=spec.segment_ms,
                    gop_frames=max(1, round(spec.gop_s * spec.fps)),
                    bitrate_bps=spec.bitrate_bps,
                    grain=spec.grain,
                )
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(data)
                tmp.replace(path)
                self.encoded_now += 1
            self.segments.append(path.read_bytes())

    def segment(self, stream: int, seq: int) -> bytes:
        return self.segments[(5 * stream + seq) % len(self.segments)]

    @property
    def mean_bitrate_bps(self) -> float:
        mean_bytes = sum(map(len, self.segments)) / len(self.segments)
        return mean_bytes * 8 / self.spec.segment_s


@dataclass(frozen=True)
class Load:
    """One phase's input: ``streams`` livestreams of ``segments_per_stream`` segments and
    ``chat_per_stream`` chat lines each. Real time: stream ``s`` starts ``s/streams`` of a
    segment late (streams are not in lockstep), a segment is produced when its last frame has
    been captured, chat lines at random times over the same span. Backlog: everything now."""

    phase: str
    streams: int
    segments_per_stream: int
    chat_per_stream: int
    realtime: bool
    segment_ms: int = 2000
    abusive_share: float = 0.25
    seed: int = 7

    def stream_id(self, stream: int) -> str:
        return f"{self.phase}{PHASE_SEP}{stream:04d}"

    @property
    def duration_s(self) -> float:
        return self.segments_per_stream * self.segment_ms / 1000

    @property
    def segments(self) -> int:
        return self.streams * self.segments_per_stream

    @property
    def chat(self) -> int:
        return self.streams * self.chat_per_stream


@dataclass(frozen=True, order=True)
class Event:
    at_s: float  # offset from the start of the phase
    kind: str  # "segment" | "chat"
    stream: int
    n: int  # segment seq or chat line number


def schedule(load: Load) -> list[Event]:
    """Every input of ``load`` with its send time, in time order. Pure."""
    rng = random.Random(load.seed)
    seg_s = load.segment_ms / 1000
    events = []
    for s in range(load.streams):
        stagger_s = s / load.streams * seg_s if load.realtime else 0.0
        for q in range(load.segments_per_stream):
            events.append(
                Event(stagger_s + (q + 1) * seg_s if load.realtime else 0.0, "segment", s, q)
            )
        span_s = load.duration_s or seg_s
        for n in range(load.chat_per_stream):
            events.append(Event(rng.uniform(0, span_s) if load.realtime else 0.0, "chat", s, n))
    return sorted(events)


def phase_of(stream_id: str) -> str:
    return stream_id.rpartition(PHASE_SEP)[0]


@dataclass
class ProduceSummary:
    segments: int = 0
    chat: int = 0
    segment_bytes: int = 0
    max_late_s: float = 0.0  # how far behind schedule the producer fell (should stay ~0)
    started_wall_ms: int = 0
    errors: list[str] = field(default_factory=list)


def produce(
    kafka: KafkaSettings,
    names: TopicNames,
    load: Load,
    pool: SegmentPool,
    *,
    partition: int | None = None,
) -> ProduceSummary:
    """Send ``load`` (blocking until every record is acknowledged)."""
    producer = make_producer(kafka)
    summary = ProduceSummary()
    rng = random.Random(load.seed + 1)

    def delivered(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            summary.errors.append(f"{msg.topic()}: {err}")
        elif msg.topic() == names.segments:
            summary.segments += 1
        else:
            summary.chat += 1

    events = schedule(load)
    t0_wall = datetime.now(UTC)
    summary.started_wall_ms = round(t0_wall.timestamp() * 1000)
    t0 = time.monotonic()
    part = -1 if partition is None else partition  # -1: librdkafka's partitioner decides
    for ev in events:
        if load.realtime:
            while (left := t0 + ev.at_s - time.monotonic()) > 0:
                producer.poll(min(left, 0.05))
            summary.max_late_s = max(summary.max_late_s, time.monotonic() - t0 - ev.at_s)
        sid = load.stream_id(ev.stream)
        if ev.kind == "segment":
            data = pool.segment(ev.stream, ev.n)
            started = t0_wall + timedelta(seconds=ev.at_s - load.segment_ms / 1000)
            meta = {
                "stream_id": sid,
                "seq": ev.n,
                "started_at": iso_ms(started),
                "duration_ms": load.segment_ms,
                "container": "mpegts",
                "codec": "h264",
                "user_id": f"streamer-{sid}",
            }
            producer.produce(
                names.segments,
                key=sid.encode(),
                value=data,
                headers=[(META_HEADER, codec.encode("segment.v1", meta))],
                on_delivery=delivered,
                partition=part,
            )
            summary.segment_bytes += len(data)
        else:
            locale, text = rng.choice(ABUSIVE if rng.random() < load.abusive_share else BENIGN)
            doc = {
                "message_id": f"{sid}-m{ev.n:05d}",
                "stream_id": sid,
                "user_id": f"viewer-{rng.randrange(50):03d}",
                "text": text,
                "sent_at": iso_ms(t0_wall + timedelta(seconds=ev.at_s)),
                "locale": locale,
            }
            producer.produce(
                names.chat,
                key=sid.encode(),
                value=codec.encode("chat.v1", doc),
                on_delivery=delivered,
                partition=part,
            )
        producer.poll(0)
    left = producer.flush(60)
    if left:
        summary.errors.append(f"{left} records not acknowledged within 60 s")
    return summary


def chat_texts(n: int, seed: int = 7, abusive_share: float = 0.25) -> Sequence[str]:
    """``n`` chat lines drawn like :func:`produce` draws them (for isolated chat costs)."""
    rng = random.Random(seed)
    return [rng.choice(ABUSIVE if rng.random() < abusive_share else BENIGN)[1] for _ in range(n)]
