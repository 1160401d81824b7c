"""``streamwarden bench``: end-to-end benchmarks through the real broker and real workers.

    streamwarden bench run        # e2e phases + isolated costs + the plain-loop baseline
    streamwarden bench capacity   # the most real-time streams one worker sustains
    streamwarden bench sweep batch-max --values 1,8,32
    streamwarden bench report     # redraw PNG + Markdown from the JSONs; summary.md

Each writes JSON + PNG + Markdown into --out-dir (benchmarks/results); the Markdown starts with
the command line that reproduces it. The broker is started with deploy/kafka/kafka.sh unless
SW_KAFKA_BOOTSTRAP_SERVERS is set; Triton with deploy/triton/triton.sh when a case uses it.
Also runnable as ``python -m pipeline.bench``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pipeline.bench.knobs import KNOBS, parse_values

if TYPE_CHECKING:  # the commands import the models, PyAV and Kafka clients: only when run
    from pipeline.bench.commands import Options

ROOT = Path(__file__).resolve().parents[2]

bench_app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="End-to-end benchmarks through the real broker and real worker processes. Each "
    "command writes JSON + PNG + Markdown into --out-dir, headed by the command line that "
    "reproduces it.",
)

Width = Annotated[int, typer.Option(min=16, help="segment width (px)")]
Height = Annotated[int, typer.Option(min=16, help="segment height (px)")]
Fps = Annotated[int, typer.Option(min=1, help="frames per second")]
Bitrate = Annotated[int, typer.Option(min=1000, help="target bitrate (bit/s)")]
Grain = Annotated[float, typer.Option(min=0, max=64, help="camera-like noise (0: clean)")]
SegmentMs = Annotated[int, typer.Option(min=200, help="segment length (ms); GOP = segment")]
Streams = Annotated[int, typer.Option(min=0, help="real-time livestreams (0: no real-time phase)")]
RealtimeS = Annotated[float, typer.Option(min=0, help="length of a real-time run (s)")]
ChatPerMin = Annotated[float, typer.Option(min=0, help="chat lines per minute per stream")]
BacklogSegments = Annotated[int, typer.Option(min=0, help="segments in the backlog phase")]
BacklogChat = Annotated[int, typer.Option(min=0, help="chat lines in the backlog phase")]
Workers = Annotated[int, typer.Option(min=1, help="worker processes (one consumer group)")]
Partitions = Annotated[int | None, typer.Option(min=1, help="input topic partitions (6)")]
Sets = Annotated[
    list[str] | None, typer.Option("--set", help="worker setting KEY=VALUE, e.g. SW_SAMPLING=fps")
]
Backend = Annotated[str | None, typer.Option(help="onnx or triton (SW_INFERENCE_BACKEND)")]
P99 = Annotated[float, typer.Option(min=0.01, help="p99 latency bound (s)")]
OutDir = Annotated[Path, typer.Option(help="where JSON, PNG and Markdown go")]
Quick = Annotated[bool, typer.Option(help="tiny sizes: a smoke run of a minute or two")]

_RESULTS = ROOT / "benchmarks" / "results"


def _options(
    *, width: int, height: int, fps: int, bitrate_bps: int, grain: float, segment_ms: int,
    streams: int, realtime_s: float, chat_per_min: float, backlog_segments: int,
    backlog_chat: int, workers: int, partitions: int | None, set_: list[str] | None,
    backend: str | None, p99_bound_s: float, out_dir: Path, quick: bool,
) -> Options:  # fmt: skip
    from pipeline.bench.commands import Options
    from pipeline.bench.load import SegmentSpec

    env = {}
    for item in set_ or []:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("SW_"):
            raise typer.BadParameter(f"--set wants SW_NAME=VALUE, got {item!r}")
        env[key] = value
    if backend:
        env["SW_INFERENCE_BACKEND"] = backend
    gop_s = segment_ms / 1000
    spec = SegmentSpec(width, height, fps, bitrate_bps, grain, segment_ms, gop_s)
    opts = Options(
        spec, 16, streams, realtime_s, chat_per_min, backlog_segments, backlog_chat, workers,
        partitions, env, p99_bound_s, out_dir, quick,
    )  # fmt: skip
    if quick:  # 360p, a few streams, seconds-long phases
        spec = SegmentSpec(640, 360, fps, 800_000, grain, segment_ms, gop_s)
        opts = Options(spec, 4, min(streams, 2), min(realtime_s, 6.0), chat_per_min,
                       min(backlog_segments, 6), min(backlog_chat, 100), workers, partitions,
                       env, p99_bound_s, out_dir, quick)  # fmt: skip
    return opts


@bench_app.command()
def run(
    width: Width = 1280,
    height: Height = 720,
    fps: Fps = 30,
    bitrate_bps: Bitrate = 3_000_000,
    grain: Grain = 2.0,
    segment_ms: SegmentMs = 2000,
    streams: Streams = 4,
    realtime_s: RealtimeS = 30.0,
    chat_per_min: ChatPerMin = 60.0,
    backlog_segments: BacklogSegments = 24,
    backlog_chat: BacklogChat = 1000,
    workers: Workers = 1,
    partitions: Partitions = None,
    set_: Sets = None,
    backend: Backend = None,
    p99_bound_s: P99 = 5.0,
    out_dir: OutDir = _RESULTS,
    quick: Quick = False,
    baseline: Annotated[bool, typer.Option(help="run the plain loop on the same backlog")] = True,
    efficiency: Annotated[bool, typer.Option(help="isolated costs and the bound")] = True,
    name: Annotated[str, typer.Option(help="file stem of the outputs")] = "e2e",
) -> None:
    """End to end: segment and chat backlogs, real-time livestreams, isolated costs, baseline."""
    opts = _options(
        width=width, height=height, fps=fps, bitrate_bps=bitrate_bps, grain=grain,
        segment_ms=segment_ms, streams=streams, realtime_s=realtime_s, chat_per_min=chat_per_min,
        backlog_segments=backlog_segments, backlog_chat=backlog_chat, workers=workers,
        partitions=partitions, set_=set_, backend=backend, p99_bound_s=p99_bound_s,
        out_dir=out_dir, quick=quick,
    )  # fmt: skip
    from pipeline.bench.commands import run_e2e

    doc = run_e2e(opts, baseline=baseline, isolated=efficiency, stem=name)
    typer.echo((opts.out_dir / f"{name}.md").read_text())
    if not doc["case"]["phases"].get("realtime", {}).get("complete", True):
        raise typer.Exit(1)


@bench_app.command()
def capacity(
    width: Width = 1280,
    height: Height = 720,
    fps: Fps = 30,
    bitrate_bps: Bitrate = 3_000_000,
    grain: Grain = 2.0,
    segment_ms: SegmentMs = 2000,
    realtime_s: RealtimeS = 30.0,
    chat_per_min: ChatPerMin = 60.0,
    workers: Workers = 1,
    partitions: Partitions = None,
    set_: Sets = None,
    backend: Backend = None,
    p99_bound_s: P99 = 5.0,
    out_dir: OutDir = _RESULTS,
    quick: Quick = False,
    start: Annotated[
        int | None, typer.Option(min=1, help="first count tried (default: estimated)")
    ] = None,
    growth: Annotated[
        float | None, typer.Option(min=1.01, help="step factor before bisecting (1.25; 2)")
    ] = None,
    max_streams: Annotated[int, typer.Option(min=1, help="largest count tried")] = 128,
    precision: Annotated[float, typer.Option(min=0, help="stop bisecting within this share")] = 0.1,
    max_trials: Annotated[int, typer.Option(min=1, help="runs at most")] = 8,
    name: Annotated[str, typer.Option(help="file stem of the outputs")] = "capacity",
) -> None:
    """Largest number of real-time streams with p99 under the bound and no growing lag."""
    opts = _options(
        width=width, height=height, fps=fps, bitrate_bps=bitrate_bps, grain=grain,
        segment_ms=segment_ms, streams=start or 8, realtime_s=realtime_s, chat_per_min=chat_per_min,
        backlog_segments=0, backlog_chat=0, workers=workers, partitions=partitions, set_=set_,
        backend=backend, p99_bound_s=p99_bound_s, out_dir=out_dir, quick=quick,
    )  # fmt: skip
    from pipeline.bench.capacity import run_capacity

    if quick:
        start, max_streams, max_trials = 1, min(max_streams, 2), min(max_trials, 2)
    run_capacity(
        opts,
        start=start,
        max_streams=max_streams,
        precision=precision,
        max_trials=max_trials,
        growth=growth,
        stem=name,
    )
    typer.echo((opts.out_dir / f"{name}.md").read_text())


@bench_app.command()
def sweep(
    knobs: Annotated[list[str], typer.Argument(help=f"one or more of: {', '.join(KNOBS)}")],
    values: Annotated[str | None, typer.Option(help="comma-separated (one knob only)")] = None,
    width: Width = 1280,
    height: Height = 720,
    fps: Fps = 30,
    bitrate_bps: Bitrate = 3_000_000,
    grain: Grain = 2.0,
    segment_ms: SegmentMs = 2000,
    streams: Streams = 4,
    realtime_s: RealtimeS = 15.0,
    chat_per_min: ChatPerMin = 60.0,
    backlog_segments: BacklogSegments = 16,
    backlog_chat: BacklogChat = 500,
    workers: Workers = 1,
    partitions: Partitions = None,
    set_: Sets = None,
    backend: Backend = None,
    p99_bound_s: P99 = 5.0,
    out_dir: OutDir = _RESULTS,
    quick: Quick = False,
) -> None:
    """Each value of each knob: one case (backlog + real time) -> sweep-<knob>.json/png/md."""
    unknown = [k for k in knobs if k not in KNOBS]
    if unknown:
        raise typer.BadParameter(f"unknown knobs {unknown}; known: {', '.join(KNOBS)}")
    if values is not None and len(knobs) != 1:
        raise typer.BadParameter("--values goes with exactly one knob")
    opts = _options(
        width=width, height=height, fps=fps, bitrate_bps=bitrate_bps, grain=grain,
        segment_ms=segment_ms, streams=streams, realtime_s=realtime_s, chat_per_min=chat_per_min,
        backlog_segments=backlog_segments, backlog_chat=backlog_chat, workers=workers,
        partitions=partitions, set_=set_, backend=backend, p99_bound_s=p99_bound_s,
        out_dir=out_dir, quick=quick,
    )  # fmt: skip
    from pipeline.bench.commands import run_sweep

    cache: dict[str, object] = {}  # a case two knobs share (their defaults) runs once
    for knob in knobs:
        try:
            chosen = parse_values(KNOBS[knob], values, quick=quick)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
        run_sweep(opts, knob, chosen, cache)
        typer.echo((opts.out_dir / f"sweep-{knob}.md").read_text())


@bench_app.command()
def report(out_dir: OutDir = _RESULTS) -> None:
    """Redraw each result's PNG and Markdown from its JSON; fold them all into summary.md."""
    from pipeline.bench.report import summarize

    typer.echo(str(summarize(out_dir)))


def main() -> None:
    from pipeline.logs import setup_logging

    setup_logging()
    bench_app(prog_name="streamwarden bench")
