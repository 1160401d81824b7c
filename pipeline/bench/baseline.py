"""The baseline: the plain loop a team writes first, run on the same backlog records.

A confluent-kafka poll loop, one message at a time: a segment is opened with PyAV and EVERY
frame is decoded (no key-frame skipping); the frames the worker's sampling would pick are
converted to BGR and each model scores them one frame at a time (batch 1, the same ONNX
files, preprocessing and ONNX Runtime thread count as the worker); a chat line is scored on
its own. The result is produced, flushed, and the offset committed synchronously after every
message. No executor, no batching across streams, no near-duplicate suppression. With OCR on
(SW_OCR_ENABLED and the registry's ``ocr``), the same OCR engine reads the frames the
registry's schedule picks, one frame at a time, at the decoded resolution.

Sampling: ``keyframes`` infers the key frames, ``fps`` the first frame at or after each point
of the ``SW_SAMPLE_FPS`` grid; other strategies fall back to key frames (the cheap mode).

Runs as ``python -m pipeline.bench.baseline SPEC.json`` (so that its CPU is its own) and
prints one JSON document; :func:`run_baseline` starts it from a benchmark case.
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from pipeline.settings import KafkaSettings, WorkerSettings
from pipeline.topics import SEGMENT_MAX_MESSAGE_BYTES, TopicNames

__all__ = ["run_baseline"]


class _Models:
    """The worker's frame models as plain ONNX Runtime sessions, scored one frame at a time."""

    def __init__(self, settings: WorkerSettings) -> None:
        import onnxruntime as ort

        from inference.registry import load_registry
        from inference.text import ChatScorer
        from pipeline.segments import ocr_schedule

        registry = load_registry(settings.model_registry_path)
        files = registry.onnx_files(ocr=False)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = settings.onnx_threads
        self.frames = [
            (m, ort.InferenceSession(str(files[m.name]), opts, providers=["CPUExecutionProvider"]))
            for m in registry.frame_models
        ]
        self.buffers = {m.name: m.input.empty_batch(1) for m, _ in self.frames}
        self.chat = ChatScorer()
        self.fps = settings.sample_fps if settings.sampling == "fps" else None
        self.ocr = None  # the same OCR engine, on the frames the registry's schedule picks
        if settings.ocr_enabled and registry.ocr_models is not None:
            from inference.onnx_backend import EmbeddedOnnxBackend

            ocr_backend = EmbeddedOnnxBackend(
                registry.ocr_models.onnx_files(), intra_op_threads=settings.onnx_threads
            )
            self.ocr = registry.build_ocr(ocr_backend)
        self.ocr_pick = ocr_schedule(settings, registry).pick
        self.loop = asyncio.new_event_loop()

    def segment(self, data: bytes, seq: int, counts: Counter[str]) -> dict[str, float]:
        """Decode every frame; score the picked ones model by model, batch 1; OCR."""
        import av
        import numpy as np

        scores: dict[str, float] = {}
        picked: list[np.ndarray] = []
        with av.open(io.BytesIO(data), mode="r", format="mpegts") as container:
            stream = container.streams.video[0]
            next_s = 0.0
            for frame in container.decode(stream):  # every frame
                counts["frames_decoded"] += 1
                t = float(frame.time or 0.0)
                if self.fps is None:
                    pick = bool(frame.key_frame)
                else:
                    pick = t + 1e-6 >= next_s
                    next_s = max(next_s, t) + 1 / self.fps if pick else next_s
                if not pick:
                    continue
                image = frame.to_ndarray(format="bgr24")
                picked.append(image)
                counts["frames_inferred"] += 1
                for model, session in self.frames:  # one frame at a time
                    batch = model.preprocess_into([image], self.buffers[model.name])
                    out = session.run([model.output_name], {model.input.name: batch})[0]
                    for cat, score in model.scores_from_output(out, 1)[0].items():
                        scores[cat] = max(score, scores.get(cat, 0.0))
        if self.ocr is not None:
            for i in self.ocr_pick(len(picked), seq):  # one frame at a time
                self.loop.run_until_complete(self.ocr.read([picked[i]]))
                counts["frames_ocr"] += 1
        return scores

    def chat_line(self, value: bytes) -> float:
        text = orjson.loads(value).get("text", "")
        return float(self.chat.score([str(text)])[0].toxicity)


def _assign(consumer: Any, ranges: dict[str, dict[str, list[int]]]) -> dict[tuple[str, int], int]:
    from confluent_kafka import TopicPartition

    ends, parts = {}, []
    for topic, by_partition in ranges.items():
        for p, (lo, hi) in by_partition.items():
            if hi > lo:
                parts.append(TopicPartition(topic, int(p), lo))
                ends[(topic, int(p))] = hi
    consumer.assign(parts)
    return ends


def _loop(spec: dict[str, Any]) -> dict[str, Any]:
    from confluent_kafka import Consumer, Producer

    from pipeline.segments import META_HEADER

    settings, kafka = WorkerSettings(), KafkaSettings()
    models = _Models(settings)
    consumer = Consumer(
        kafka.confluent_config()
        | {
            "group.id": spec["group"],
            "enable.auto.commit": False,
            "fetch.message.max.bytes": SEGMENT_MAX_MESSAGE_BYTES + 65536,
        }
    )
    producer = Producer(kafka.confluent_config() | {"partitioner": "murmur2_random"})
    ends = _assign(consumer, spec["ranges"])
    counts: Counter[str] = Counter()
    cpu_s: dict[str, float] = defaultdict(float)
    wall_s: dict[str, float] = defaultdict(float)
    t0, c0 = time.perf_counter(), time.process_time()
    while ends and time.perf_counter() - t0 < spec["max_s"]:
        msg = consumer.poll(1.0)
        if msg is None or msg.error() is not None:
            continue
        key, offset = (str(msg.topic()), int(msg.partition() or 0)), int(msg.offset() or 0)
        if key not in ends or offset >= ends[key]:
            continue
        c, w = time.process_time(), time.perf_counter()
        doc: dict[str, Any]
        if key[0] == spec["segments"]:
            seq = orjson.loads(dict(msg.headers() or [])[META_HEADER] or b"{}")["seq"]
            kind, doc = "segment", {"scores": models.segment(msg.value() or b"", seq, counts)}
        else:
            kind, doc = "chat", {"toxicity": models.chat_line(msg.value() or b"{}")}
        producer.produce(spec["results"], key=msg.key(), value=orjson.dumps(doc | {"kind": kind}))
        producer.flush(30)
        consumer.commit(message=msg, asynchronous=False)
        counts[kind] += 1
        cpu_s[kind] += time.process_time() - c
        wall_s[kind] += time.perf_counter() - w
        if offset + 1 >= ends[key]:
            del ends[key]
    total_wall_s, total_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    consumer.close()
    return {
        "segments": counts["segment"],
        "chat": counts["chat"],
        "frames_decoded": counts["frames_decoded"],
        "frames_inferred": counts["frames_inferred"],
        "frames_ocr": counts["frames_ocr"],
        "wall_s": round(total_wall_s, 3),
        "cpu_s": round(total_cpu_s, 3),
        "cpu_s_segments": round(cpu_s["segment"], 3),
        "cpu_s_chat": round(cpu_s["chat"], 3),
        "wall_s_segments": round(wall_s["segment"], 3),
        "wall_s_chat": round(wall_s["chat"], 3),
        "complete": not ends,
        "sampling": "keyframes" if models.fps is None else f"fps={models.fps:g}",
    }


def run_baseline(
    kafka: KafkaSettings,
    names: TopicNames,
    phases: Mapping[str, Any],
    cfg: Any,
    *,
    results_topic: str,
    workdir: Path,
) -> dict[str, Any]:
    """Run the loop on the offsets of the backlog phases (same records the worker had)."""
    ranges: dict[str, dict[str, list[int]]] = {}
    for phase in ("backlog_segments", "backlog_chat"):
        if phase in phases:
            o = phases[phase]["offsets"]
            ranges[o["topic"]] = {str(p): [o["low"][p], o["high"][p]] for p in o["high"]}
    spec = {
        "group": f"{names.segments}-baseline",
        "segments": names.segments,
        "results": results_topic,
        "ranges": ranges,
        "max_s": cfg.baseline_max_s,
    }
    spec_path = workdir / f"{names.segments}.baseline.json"
    spec_path.write_bytes(orjson.dumps(spec))
    env = {"SW_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, **dict(cfg.env)}
    run = subprocess.run(
        [sys.executable, "-m", "pipeline.bench.baseline", str(spec_path)],
        env=os.environ | env,
        capture_output=True,
        timeout=cfg.baseline_max_s + 120,
        check=False,
    )
    if run.returncode != 0:
        raise RuntimeError(f"baseline failed:\n{run.stderr.decode()[-3000:]}")
    doc: dict[str, Any] = orjson.loads(run.stdout.strip().splitlines()[-1])
    segs, chats, frames = doc["segments"], doc["chat"], doc["frames_inferred"]
    if segs:
        doc["segments_per_s"] = round(segs / max(doc["wall_s_segments"], 1e-9), 3)
        doc["frames_per_s"] = round(frames / max(doc["wall_s_segments"], 1e-9), 3)
        doc["cpu_ms_per_segment"] = round(1000 * doc["cpu_s_segments"] / segs, 2)
        doc["cpu_ms_per_frame"] = round(1000 * doc["cpu_s_segments"] / max(frames, 1), 2)
    if chats:
        doc["chat_per_s"] = round(chats / max(doc["wall_s_chat"], 1e-9), 3)
        doc["cpu_ms_per_chat"] = round(1000 * doc["cpu_s_chat"] / chats, 3)
    return doc


if __name__ == "__main__":
    result = _loop(orjson.loads(Path(sys.argv[1]).read_bytes()))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
