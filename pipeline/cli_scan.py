"""``streamwarden scan FILE``: score one video file or image offline, frame by frame.

The investigator's tool on an escalation: every sampled frame's scores (merged
and per model), the text OCR read in it, and the decision the policy would take
on it, as a table or ``--json``. The policy engine sees the file as a live
stream whose every sampled frame is a segment: temporal windows, hysteresis and
escalation apply across frames as they would live (an image is one sample), and
shadow rules' decisions are listed with the live ones.

A video file can be far longer than a livestream segment (``MediaLimits``: 30 s,
16 MiB, 1000 frames), and decoding it in one go would hold every sampled frame
in memory. So the file is cut into *windows* of about ``--window-s`` seconds at
key frames, each remuxed without re-encoding (MPEG-TS for H.264/HEVC,
Matroska for VP8/VP9/AV1) and decoded by :func:`pipeline.media.decode_segment`
with the ``fps`` strategy, the same hardened decoder the worker uses; only one
window's frames are in memory at a time. Window limits are raised for offline
use (a window runs to the first key frame after ``--window-s``).
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import Progress

from pipeline import errors as err
from pipeline.outputs import outcome_summary
from pipeline.policy import (
    SEVERITY,
    FrameScores,
    Policy,
    SegmentObservation,
    VideoState,
    decide_segment,
)

__all__ = ["ScanRow", "iter_windows", "scan", "scan_file"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})
VIDEO_SUFFIXES = {
    ".ts": "mpegts",
    ".m2ts": "mpegts",
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".webm": "webm",
    ".mkv": "mkv",
}
_ANNEX_B = frozenset({"h264", "hevc"})  # remux into MPEG-TS; the rest into Matroska


@dataclass(frozen=True)
class ScanRow:
    """One sampled frame's findings."""

    index: int
    pts_ms: int
    scores: dict[str, float]
    by_model: dict[str, dict[str, float]]
    ocr: list[dict[str, object]] | None
    decision: dict[str, object]

    def as_doc(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "pts_ms": self.pts_ms,
            "scores": {k: round(v, 6) for k, v in self.scores.items()},
            "by_model": {
                m: {k: round(v, 6) for k, v in s.items()} for m, s in self.by_model.items()
            },
            "ocr": self.ocr,
            "decision": self.decision,
        }


def _refuse_nested_open(url: str, flags: int, options: dict[str, str]) -> NoReturn:
    del flags, options
    raise err.NotMedia(f"file tried to open another resource: {url[:200]!r}")


def iter_windows(path: Path, container: str, window_ms: int) -> Iterator[tuple[int, bytes, str]]:
    """``(start_ms, window bytes, window container)``: the file cut at key frames.

    Start times are from the file's first video packet. Only the first video
    stream with an allowed codec is kept; the demuxer is the one named by the
    container (never probed) and may open nothing else.
    """
    import av

    from pipeline.media import ALLOWED_CODECS, CONTAINER_DEMUXERS

    demuxer = CONTAINER_DEMUXERS[container]
    options = {"format_whitelist": demuxer}
    if demuxer == "mov":
        options |= {"enable_drefs": "0", "use_absolute_path": "0"}
    try:
        with (
            path.open("rb") as fh,
            av.open(
                fh, "r", format=demuxer, container_options=options, io_open=_refuse_nested_open
            ) as source,
        ):
            streams = [
                s
                for s in source.streams.video
                if s.codec_context is not None
                and s.codec_context.codec.canonical_name in ALLOWED_CODECS
            ]
            if not streams:
                raise err.NoVideoStream(f"{path.name}: no video stream in {sorted(ALLOWED_CODECS)}")
            stream = streams[0]
            codec = stream.codec_context.codec.canonical_name
            out_format, out_container = (
                ("mpegts", "mpegts") if codec in _ANNEX_B else ("matroska", "mkv")
            )
            time_base = stream.time_base or Fraction(1, 90000)
            first: int | None = None
            buffer: io.BytesIO | None = None
            sink: Any = None
            out_stream: Any = None
            window_start = 0
            for packet in source.demux(stream):
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is None or packet.size == 0:
                    continue
                first = ts if first is None else first
                t_ms = int((ts - first) * time_base * 1000)
                if sink is not None and packet.is_keyframe and t_ms - window_start >= window_ms:
                    sink.close()
                    assert buffer is not None
                    yield window_start, buffer.getvalue(), out_container
                    sink = None
                if sink is None:
                    buffer = io.BytesIO()
                    sink = av.open(buffer, "w", format=out_format)
                    out_stream = sink.add_stream_from_template(stream)
                    window_start = max(0, t_ms)
                packet.stream = out_stream
                sink.mux(packet)
            if sink is not None:
                sink.close()
                assert buffer is not None
                yield window_start, buffer.getvalue(), out_container
    except av.FFmpegError as exc:
        raise err.CorruptMedia(f"{path.name}: FFmpeg could not read it: {exc}") from exc


class _Decider:
    """The policy engine over a file's sampled frames, one observation per frame."""

    def __init__(self, policy: Policy, stream_id: str) -> None:
        self.policy = policy
        self.stream_id = stream_id
        self.state: VideoState | None = None

    def decide(self, index: int, pts_ms: int, analysis: Any) -> dict[str, object]:
        ocr = None if analysis.ocr is None else "\n".join(line.text for line in analysis.ocr)
        obs = SegmentObservation(
            self.stream_id,
            index,
            at_s=pts_ms / 1000,
            frames=(FrameScores(pts_ms, dict(analysis.scores)),),
            ocr_text=ocr,
        )
        self.state, evaluation = decide_segment(self.policy, self.state, obs)
        decision = evaluation.result_decision(analysis.scores)
        return {
            "action": decision.action,
            "category": decision.category,
            "rule": decision.rule,
            "score": round(float(decision.score), 6),
            "outcomes": [outcome_summary(o) for o in evaluation.outcomes],
        }


async def scan_file(
    path: Path,
    scorer: Any,
    policy: Policy,
    *,
    every_ms: int = 1000,
    ocr_every: int = 1,
    max_side_px: int = 1280,
    window_s: float = 20.0,
    on_progress: Any = None,
) -> tuple[str, list[ScanRow]]:
    """Score a file with a :class:`~inference.scoring.MultiFrameScorer`; ``(kind, rows)``.

    ``ocr_every``: OCR reads every Nth sampled frame (0: none). ``on_progress(done_ms,
    total_ms)`` is called after each window (and once for an image).
    """
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        import cv2

        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise err.CorruptMedia(f"{path.name}: not a readable image")
        analyses = await scorer.analyze([image], ocr_frames=[0] if ocr_every else [])
        if on_progress:
            on_progress(1, 1)
        return "image", [_row(0, 0, analyses[0], _Decider(policy, path.name))]
    container = VIDEO_SUFFIXES.get(suffix)
    if container is None:
        known = sorted(IMAGE_SUFFIXES | set(VIDEO_SUFFIXES))
        raise err.UnsupportedContainer(f"{path.name}: unknown file type; known: {known}")
    decider = _Decider(policy, path.name)
    return "video", await _scan_video(
        path, container, scorer, decider, every_ms, ocr_every, max_side_px, window_s, on_progress
    )


async def _scan_video(
    path: Path,
    container: str,
    scorer: Any,
    decider: _Decider,
    every_ms: int,
    ocr_every: int,
    max_side_px: int,
    window_s: float,
    on_progress: Any,
) -> list[ScanRow]:
    from pipeline.media import MediaLimits, decode_segment

    total_ms = _duration_ms(path, container)
    limits = MediaLimits(
        max_bytes=1 << 30, max_duration_ms=30 * 60 * 1000, max_decoded_frames=30 * 60 * 240
    )
    rows: list[ScanRow] = []
    loop = asyncio.get_running_loop()
    windows = iter_windows(path, container, int(window_s * 1000))
    while (window := await loop.run_in_executor(None, next, windows, None)) is not None:
        start_ms, data, window_container = window
        decode = functools.partial(
            decode_segment,
            data,
            window_container,
            limits=limits,
            strategy="fps",
            sample_fps=1000 / every_ms,
            max_side_px=max_side_px,
        )
        decoded = await loop.run_in_executor(None, decode)
        frames = [f.image for f in decoded.frames]
        first = len(rows)
        ocr_frames = [i for i in range(len(frames)) if ocr_every and (first + i) % ocr_every == 0]
        analyses = await scorer.analyze(frames, ocr_frames=ocr_frames)
        for i, (frame, analysis) in enumerate(zip(decoded.frames, analyses, strict=True)):
            rows.append(_row(first + i, start_ms + frame.pts_ms, analysis, decider))
        if on_progress:
            on_progress(min(start_ms + decoded.duration_ms, total_ms), total_ms)
    return rows


def _duration_ms(path: Path, container: str) -> int:
    """Header duration for the progress bar (0 when the container does not say)."""
    import av

    from pipeline.media import CONTAINER_DEMUXERS

    demuxer = CONTAINER_DEMUXERS[container]
    try:
        with path.open("rb") as fh, av.open(
            fh, "r", format=demuxer, container_options={"format_whitelist": demuxer},
            io_open=_refuse_nested_open,
        ) as source:  # fmt: skip
            return int((source.duration or 0) / 1000)
    except av.FFmpegError:
        return 0


def _row(index: int, pts_ms: int, analysis: Any, decider: _Decider) -> ScanRow:
    return ScanRow(
        index=index,
        pts_ms=pts_ms,
        scores=dict(analysis.scores),
        by_model={m: dict(s) for m, s in analysis.by_model.items()},
        ocr=None if analysis.ocr is None else [line.as_doc() for line in analysis.ocr],
        decision=decider.decide(index, pts_ms, analysis),
    )


def _render(row: ScanRow) -> str:
    seconds = row.pts_ms / 1000
    action = str(row.decision["action"])
    style = "green" if action == "allow" else "yellow" if action == "review" else "bold red"
    scores = " ".join(f"{k}={v:.3f}" for k, v in sorted(row.scores.items()))
    text = "" if not row.ocr else " | " + " / ".join(f'"{line["text"]}"' for line in row.ocr)
    return f"{seconds:9.2f}s  [{style}]{action:<12}[/] {scores}{text}"


async def _run(
    file: Path, registry: Path | None, every_ms: int, ocr_every: int, max_side_px: int,
    window_s: float, progress: Progress | None, policy_file: Path | None = None,
) -> tuple[str, list[ScanRow], tuple[tuple[str, str], ...], str]:  # fmt: skip
    from inference.batcher import MicroBatcher
    from inference.onnx_backend import EmbeddedOnnxBackend
    from inference.registry import load_registry
    from inference.scoring import MultiFrameScorer
    from pipeline.policy import load_policy
    from pipeline.settings import WorkerSettings

    settings = WorkerSettings()
    policy = load_policy(policy_file or settings.policy_file)
    models = load_registry(registry)
    files = models.onnx_files(ocr=ocr_every > 0)
    backend = EmbeddedOnnxBackend(files, intra_op_threads=settings.onnx_threads)
    batcher = MicroBatcher(backend, models.batching, per_model=models.per_model_batching)
    try:
        scorer = MultiFrameScorer(
            batcher, models.frame_models, ocr=models.build_ocr(batcher) if ocr_every else None
        )
        task = progress.add_task(file.name, total=None) if progress else None

        def report(done: int, total: int) -> None:
            if progress is not None and task is not None:
                progress.update(task, completed=done, total=total or None)

        kind, rows = await scan_file(
            file, scorer, policy, every_ms=every_ms, ocr_every=ocr_every,
            max_side_px=max_side_px, window_s=window_s, on_progress=report,
        )  # fmt: skip
        return kind, rows, scorer.model_versions, policy.version
    finally:
        await batcher.close()


def scan(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    json_output: Annotated[
        bool, typer.Option("--json", help="one JSON document on stdout")
    ] = False,
    every_ms: Annotated[
        int, typer.Option("--every-ms", min=1, help="sample a frame every N ms")
    ] = 1000,
    ocr_every: Annotated[
        int, typer.Option("--ocr-every", min=0, help="OCR every Nth sampled frame (0: no OCR)")
    ] = 1,
    max_side_px: Annotated[int, typer.Option(min=64, help="downscale frames to this side")] = 1280,
    window_s: Annotated[
        float, typer.Option(min=1, help="decode the video in windows this long")
    ] = 20,
    registry: Annotated[Path | None, typer.Option(help="model registry file (YAML/JSON)")] = None,
    policy: Annotated[
        Path | None, typer.Option(help="policy file (default: SW_POLICY_FILE)")
    ] = None,
) -> None:
    """Score a video file or image offline: per sampled frame the scores, OCR text, decision."""
    err_console = Console(stderr=True)
    with Progress(
        console=err_console, transient=True, disable=json_output and not sys.stderr.isatty()
    ) as progress:
        kind, rows, models, policy_version = asyncio.run(
            _run(file, registry, every_ms, ocr_every, max_side_px, window_s, progress, policy)
        )
    worst = max(rows, key=_severity, default=None)
    if json_output:
        doc = {
            "file": str(file),
            "kind": kind,
            "models": [{"name": n, "version": v} for n, v in models],
            "policy_version": policy_version,
            "frames": [row.as_doc() for row in rows],
            "worst": None if worst is None else worst.as_doc(),
        }
        sys.stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")
        return
    console = Console(soft_wrap=True)
    console.print(f"[bold]{file}[/] ({kind}, {len(rows)} frames) policy {policy_version}")
    console.print("models: " + ", ".join(f"{n}=={v}" for n, v in models), highlight=False)
    for row in rows:
        console.print(_render(row), highlight=False)
    if worst is not None:
        console.print(f"[bold]worst:[/] {_render(worst)}", highlight=False)


def _severity(row: ScanRow) -> tuple[int, float]:
    action = str(row.decision["action"])
    score = row.decision["score"]
    return (
        SEVERITY.index(action) if action in SEVERITY else 0,
        float(score) if isinstance(score, int | float) else 0.0,
    )
