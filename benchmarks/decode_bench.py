"""Decode benchmark: what the media stage costs per strategy, beside the bare-decode floor.

Inputs: 4 s H.264/MPEG-TS segments, 30 fps, 2 s GOP, made by ``pipeline.simulate.synth``:
720p30 at 3 Mbit/s and 1080p30 at 6 Mbit/s with a little camera-like grain (so the encoder
really spends those bitrates), and the same without grain ("-clean": synthetic motion that
inter frames encode almost for free; the encoder undershoots the bitrate).

Each strategy (keyframes, fps=1, fps=5, scene, and "every frame" for contrast) runs the
worker's path on one segment: fetch (file://) + demux + decode + sample (downscaled to
SW_FRAME_MAX_SIDE_PX) + preprocess (open_nsfw's input via ``FrameModel.preprocess_into``
into a preallocated batch). Two floors are measured with bare PyAV, opened and threaded
as the worker does, no pixel conversion: every frame decoded ("full decode") and key
frames only. CPU time is ``time.process_time`` (all threads of the process), the median
of ``--repeats`` runs after a warm-up; runs of all cases are interleaved round by round
so that load from elsewhere falls on every case alike.

    python benchmarks/decode_bench.py                # about 1 min on 2 cores
    python benchmarks/decode_bench.py --quick        # smoke run: small segments, 1 repeat

Writes ``decode.json`` and ``decode.png`` to ``--out-dir`` (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import av  # noqa: E402
import numpy as np  # noqa: E402
import orjson  # noqa: E402

from inference.frames import FrameModel, open_nsfw  # noqa: E402
from pipeline.media import MediaLimits, decode_segment, fetch_segment  # noqa: E402
from pipeline.media.pdq import pdq_hash  # noqa: E402
from pipeline.settings import WorkerSettings  # noqa: E402
from pipeline.simulate.synth import encode_segment  # noqa: E402

SCHEMA = "decode-bench.v1"
FPS = 30
GOP_S = 2
# Clean synthetic motion costs x264 almost nothing between key frames: it cannot even fill
# 3 Mbit/s at 720p. A little moving grain, as a camera sensor gives, makes the inter frames
# carry real residual and the segments hit their nominal bitrate. Both are measured.
GRAIN = 2.0


@dataclass(frozen=True)
class Input:
    label: str
    width: int
    height: int
    bitrate_bps: int
    grain: float = GRAIN  # camera-like noise (synth); 0: clean synthetic motion


@dataclass(frozen=True)
class Strategy:
    name: str
    strategy: str
    params: dict[str, float]


FULL_INPUTS = (
    Input("720p30", 1280, 720, 3_000_000),
    Input("1080p30", 1920, 1080, 6_000_000),
    Input("720p30-clean", 1280, 720, 3_000_000, grain=0.0),
    Input("1080p30-clean", 1920, 1080, 6_000_000, grain=0.0),
)
QUICK_INPUTS = (Input("240p30", 426, 240, 400_000), Input("360p30", 640, 360, 800_000))


def strategies(settings: WorkerSettings) -> tuple[Strategy, ...]:
    scene = {
        "scene_threshold": settings.scene_threshold,
        "scene_check_fps": settings.scene_check_fps,
    }
    return (
        Strategy("keyframes", "keyframes", {}),
        Strategy("fps=1", "fps", {"sample_fps": 1.0}),
        Strategy("fps=5", "fps", {"sample_fps": 5.0}),
        Strategy("scene", "scene", scene),
        Strategy("every frame", "fps", {"sample_fps": float(FPS)}),  # no sampling at all
    )


@dataclass
class Case:
    """One thing to time; runs of all cases are interleaved round by round, so load from
    elsewhere on the machine falls on every case alike."""

    key: tuple[str, str]  # (input label, floor or strategy name)
    fn: Callable[[], Any]
    cpu_ms: list[float] = field(default_factory=list)
    wall_ms: list[float] = field(default_factory=list)
    result: Any = None

    def once(self) -> None:
        c0, w0 = time.process_time(), time.perf_counter()
        self.result = self.fn()
        self.cpu_ms.append((time.process_time() - c0) * 1000)
        self.wall_ms.append((time.perf_counter() - w0) * 1000)


def measure(cases: Sequence[Case], repeats: int) -> None:
    """One warm-up run each, then ``repeats`` rounds over all cases (start rotating)."""
    for case in cases:
        case.fn()
    for r in range(repeats):
        for i in range(len(cases)):
            cases[(i + r) % len(cases)].once()


def bare_decode(data: bytes, *, keyframes_only: bool) -> int:
    """The floor: open + demux + decode as ``decode_segment`` does them, no pixel conversion."""
    options = {"fpsprobesize": "0"}  # as pipeline.media.decode opens a segment
    with av.open(io.BytesIO(data), "r", format="mpegts", container_options=options) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        ctx.thread_type = "SLICE"
        if keyframes_only:
            ctx.skip_frame = "NONKEY"
        n = 0
        for packet in container.demux(stream):
            if keyframes_only and packet.size > 0 and not packet.is_keyframe:
                continue
            for frame in stream.decode(packet):
                n += frame.key_frame if keyframes_only else 1
        return n


def pipeline_run(
    uri: str,
    root: Path,
    strategy: Strategy,
    *,
    settings: WorkerSettings,
    model: FrameModel,
    batch: np.ndarray,
) -> tuple[int, int, float]:
    """One segment the worker's way; (sampled frames, decoded frames, preprocess CPU ms)."""
    data = fetch_segment(
        uri, max_bytes=settings.segment_max_bytes, file_roots=(root,), timeout_s=10.0
    )
    limits = MediaLimits(max_decoded_frames=10_000)
    seg = decode_segment(
        data,
        "mpegts",
        limits=limits,
        strategy=strategy.strategy,  # type: ignore[arg-type]
        max_side_px=settings.frame_max_side_px,
        **strategy.params,  # type: ignore[arg-type]
    )
    c0 = time.process_time()
    images = [f.image for f in seg.frames]
    for start in range(0, len(images), batch.shape[0]):
        model.preprocess_into(images[start : start + batch.shape[0]], batch)
    return len(seg.frames), seg.decoded_frames, (time.process_time() - c0) * 1000


def run(inputs: Sequence[Input], *, duration_s: float, repeats: int, work: Path) -> dict[str, Any]:
    settings = WorkerSettings()
    model = open_nsfw()
    batch = model.input.empty_batch(settings.frame_batch_max)
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "pyav": av.__version__,
            "libavcodec": ".".join(map(str, av.library_versions["libavcodec"])),
        },
        "config": {
            "duration_s": duration_s,
            "fps": FPS,
            "gop_s": GOP_S,
            "repeats": repeats,
            "statistic": "median",
            "max_side_px": settings.frame_max_side_px,
            "preprocess": f"{model.name} {model.input.batch_shape(1)[1:]} {model.input.layout} "
            f"{model.input.dtype} {model.input.colour}, batches of {settings.frame_batch_max}",
        },
        "inputs": [],
        "floors": [],
        "results": [],
        "summary": {},
    }
    segments: dict[str, tuple[Input, bytes, Path]] = {}  # label -> spec, bytes, file
    cases: list[Case] = []
    for spec in inputs:
        data = encode_segment(
            stream_id="bench", seq=1, width=spec.width, height=spec.height, fps=FPS,
            duration_ms=round(duration_s * 1000), gop_frames=GOP_S * FPS,
            bitrate_bps=spec.bitrate_bps, grain=spec.grain,
        )  # fmt: skip
        path = work / f"{spec.label}.ts"
        path.write_bytes(data)
        segments[spec.label] = (spec, data, path)
        doc["inputs"].append(
            {
                "label": spec.label,
                "width": spec.width,
                "height": spec.height,
                "frames": round(duration_s * FPS),
                "grain": spec.grain,
                "bytes": len(data),
                "target_bitrate_bps": spec.bitrate_bps,
                "actual_bitrate_bps": round(len(data) * 8 / duration_s),
            }
        )
        for name, key_only in (("full_decode", False), ("keyframes_decode", True)):
            fn = partial(bare_decode, data, keyframes_only=key_only)
            cases.append(Case((spec.label, name), fn))
        for strat in strategies(settings):
            fn = partial(
                pipeline_run,
                path.as_uri(),
                work,
                strat,
                settings=settings,
                model=model,
                batch=batch,
            )
            cases.append(Case((spec.label, strat.name), fn))
    measure(cases, repeats)
    timed = {c.key: c for c in cases}

    def cpu(label: str, name: str) -> float:
        return statistics.median(timed[(label, name)].cpu_ms)

    def wall(label: str, name: str) -> float:
        return statistics.median(timed[(label, name)].wall_ms)

    for label, (_, data, _) in segments.items():
        video_s = duration_s
        for name in ("full_decode", "keyframes_decode"):
            n = timed[(label, name)].result
            c = cpu(label, name)
            doc["floors"].append(
                {
                    "input": label,
                    "floor": name,
                    "decoded_frames": n,
                    "cpu_ms": round(c, 3),
                    "wall_ms": round(wall(label, name), 3),
                    "cpu_ms_per_video_s": round(c / video_s, 3),
                    "cpu_ms_per_frame": round(c / max(n, 1), 4),
                    "x_realtime_one_core": round(video_s * 1000 / c, 1) if c else None,
                }
            )
        overheads: dict[str, float] = {}
        for strat in strategies(settings):
            sampled, decoded, pre_ms = timed[(label, strat.name)].result
            c, w = cpu(label, strat.name), wall(label, strat.name)
            floor = "keyframes_decode" if strat.strategy == "keyframes" else "full_decode"
            overheads[strat.name] = c / cpu(label, floor)
            doc["results"].append(
                {
                    "input": label,
                    "strategy": strat.name,
                    "params": strat.params,
                    "sampled_frames": sampled,
                    "decoded_frames": decoded,
                    "cpu_ms": round(c, 3),
                    "wall_ms": round(w, 3),
                    "preprocess_cpu_ms_last_run": round(pre_ms, 3),
                    "sampled_frames_per_s": round(sampled / (w / 1000), 1),
                    "cpu_ms_per_sampled_frame": round(c / max(sampled, 1), 3),
                    "cpu_ms_per_video_s": round(c / video_s, 3),
                    "x_realtime_one_core": round(video_s * 1000 / c, 1) if c else None,
                    "floor": floor,
                    "overhead_vs_floor": round(overheads[strat.name], 2),
                    "vs_full_decode": round(c / cpu(label, "full_decode"), 3),
                }
            )
        full_per_s = cpu(label, "full_decode") / video_s
        keyframes_per_s = cpu(label, "keyframes") / video_s
        doc["summary"][label] = {
            "full_decode_cpu_ms_per_video_s": round(full_per_s, 3),
            "keyframes_cpu_ms_per_video_s": round(keyframes_per_s, 3),
            "keyframes_cheaper_than_full_decode_x": round(full_per_s / keyframes_per_s, 1),
            "keyframes_cheaper_than_every_frame_x": round(
                cpu(label, "every frame") / cpu(label, "keyframes"), 1
            ),
            "overhead_vs_floor": {k: round(v, 2) for k, v in overheads.items()},
            "pdq_cpu_ms_per_sampled_frame": pdq_cost(data, settings),
        }
    return doc


def pdq_cost(data: bytes, settings: WorkerSettings) -> float:
    """Median CPU ms of one PDQ hash of a sampled frame (the worker hashes every one)."""
    seg = decode_segment(
        data, "mpegts", limits=MediaLimits(), strategy="fps", sample_fps=5.0,
        max_side_px=settings.frame_max_side_px,
    )  # fmt: skip
    costs = []
    for f in seg.frames:
        c0 = time.process_time()
        pdq_hash(f.image)
        costs.append((time.process_time() - c0) * 1000)
    return round(statistics.median(costs), 3)


def plot(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [i["label"] for i in doc["inputs"]]
    names = [r["strategy"] for r in doc["results"] if r["input"] == labels[0]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    width = 0.8 / (len(names) + 1)
    x = np.arange(len(labels))
    floor_of = {(f["input"], f["floor"]): f for f in doc["floors"]}
    full = [floor_of[(lbl, "full_decode")]["cpu_ms_per_video_s"] for lbl in labels]
    left.bar(x, full, width, label="full decode (floor)", color="0.6")
    for k, name in enumerate(names):
        rows = {r["input"]: r for r in doc["results"] if r["strategy"] == name}
        vals = [rows[lbl]["cpu_ms_per_video_s"] for lbl in labels]
        bars = left.bar(x + (k + 1) * width, vals, width, label=name)
        if name == "keyframes":
            for bar, lbl in zip(bars, labels, strict=True):
                ratio = doc["summary"][lbl]["keyframes_cheaper_than_full_decode_x"]
                left.annotate(f"{ratio:g}x\ncheaper", (bar.get_x() + width / 2, bar.get_height()),
                              ha="center", va="bottom", fontsize=8)  # fmt: skip
        per_frame = [rows[lbl]["cpu_ms_per_sampled_frame"] for lbl in labels]
        overhead = [rows[lbl]["overhead_vs_floor"] for lbl in labels]
        bars = right.bar(x + k * width * 1.25, per_frame, width * 1.25, label=name)
        for bar, ratio in zip(bars, overhead, strict=True):
            right.annotate(f"{ratio:g}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                           ha="center", va="bottom", fontsize=8)  # fmt: skip
    left.set_yscale("log")
    left.set_xticks(x + width * len(names) / 2, labels)
    left.set_ylabel("CPU ms per second of video (log)")
    left.set_title("fetch+demux+decode+sample+preprocess vs full decode")
    left.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncols=5)
    right.set_yscale("log")
    right.set_xticks(x + width * 1.25 * (len(names) - 1) / 2, labels)
    right.set_ylabel("CPU ms per sampled frame (log)")
    right.set_title("per sampled frame; labels: overhead over its floor")
    right.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncols=4)
    cfg = doc["config"]
    fig.suptitle(
        f"H.264/MPEG-TS {cfg['duration_s']:g} s segments, {cfg['fps']} fps, {cfg['gop_s']} s GOP; "
        f"median of {cfg['repeats']}; {doc['machine']['cpus']} CPUs",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(doc: dict[str, Any]) -> str:
    lines = [f"{'input':9} {'strategy':10} {'frames':>6} {'fr/s':>8} {'ms/frame':>9} "
             f"{'ms/video-s':>10} {'x floor':>8}"]  # fmt: skip
    for f in doc["floors"]:
        lines.append(
            f"{f['input']:9} {'[' + f['floor'] + ']':10} {f['decoded_frames']:>6} {'':>8} "
            f"{f['cpu_ms_per_frame']:>9.3f} {f['cpu_ms_per_video_s']:>10.2f} {'1':>8}"
        )
    for r in doc["results"]:
        lines.append(
            f"{r['input']:9} {r['strategy']:10} {r['sampled_frames']:>6} "
            f"{r['sampled_frames_per_s']:>8.1f} {r['cpu_ms_per_sampled_frame']:>9.3f} "
            f"{r['cpu_ms_per_video_s']:>10.2f} {r['overhead_vs_floor']:>8.2f}"
        )
    for label, s in doc["summary"].items():
        lines.append(
            f"{label}: key frames {s['keyframes_cheaper_than_full_decode_x']}x cheaper per "
            f"second of video than full decode; overhead over floor {s['overhead_vs_floor']}; "
            f"PDQ {s['pdq_cpu_ms_per_sampled_frame']} ms/frame"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small segments, 1 repeat")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (median)")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    inputs = QUICK_INPUTS if args.quick else FULL_INPUTS
    duration_s = 2.0 if args.quick else 4.0
    repeats = args.repeats or (1 if args.quick else 9)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sw-bench-") as tmp:
        doc = run(inputs, duration_s=duration_s, repeats=repeats, work=Path(tmp).resolve())
    doc["quick"] = bool(args.quick)
    (args.out_dir / "decode.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    plot(doc, args.out_dir / "decode.png")
    sys.stdout.write(report(doc) + "\n")
    sys.stdout.write(f"wrote {args.out_dir / 'decode.json'} and {args.out_dir / 'decode.png'}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
