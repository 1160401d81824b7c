"""streamwarden: real-time moderation of livestream segments and chat on Kafka."""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress

from pipeline.bench.cli import bench_app
from pipeline.cli_control import control_app
from pipeline.cli_media import bank_app, inspect
from pipeline.cli_policy import kpi, policy_app
from pipeline.cli_scan import scan
from pipeline.errors import StreamwardenError
from pipeline.logs import setup_logging
from pipeline.settings import KafkaSettings, WorkerSettings
from pipeline.topics import TopicNames, apply_topics, create_state_topics, state_partitions

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
topics_app = typer.Typer(no_args_is_help=True, help="Topic declarations.")
app.add_typer(topics_app, name="topics")
app.add_typer(bank_app, name="bank")
app.add_typer(bench_app, name="bench")
app.add_typer(policy_app, name="policy")
app.add_typer(control_app, name="control")
app.command()(inspect)
app.command()(scan)
app.command()(kpi)
console = Console(soft_wrap=True)
err_console = Console(stderr=True)

_ACTION_STYLE = {
    "allow": "green",
    "review": "yellow",
    "warn": "yellow",
    "delete_message": "red",
    "timeout_user": "red",
    "blur": "red",
    "age_restrict": "red",
    "end_stream": "bold red",
    "suspend_user": "bold red",
    "lift": "green",
}


def _names() -> TopicNames:
    return TopicNames.with_prefix(KafkaSettings().topic_prefix)


@topics_app.command("apply")
def topics_apply() -> None:
    """Create or update every streamwarden topic, and the state changelogs of SW_APP_ID
    (idempotent)."""
    kafka = KafkaSettings()
    changes = apply_topics(kafka, _names(), app_id=WorkerSettings().app_id)
    for change in changes:
        console.print(f"[green]✓[/] {change}")
    console.print(f"topics up to date on {kafka.bootstrap_servers} ({len(changes)} changes)")


@app.command()
def worker(
    loglevel: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
    apply: Annotated[bool, typer.Option(help="apply topic declarations first")] = True,
) -> None:
    """Run the Faust worker (segments, chat, strikes and verdicts agents) until interrupted.

    A policy file that does not validate stops it first, naming each problem's line."""
    from pipeline.policy import load_policy
    from pipeline.worker import run_worker

    settings = WorkerSettings()
    policy = load_policy(settings.policy_file)  # PolicyError: file:line for every problem
    kafka = KafkaSettings()
    if apply:
        apply_topics(kafka, _names(), app_id=settings.app_id)
    else:  # the group's own state changelogs, created when missing (Kafka Streams does alike)
        create_state_topics(kafka, _names(), settings.app_id)
    partitions = state_partitions(kafka, _names(), settings.app_id)  # ConfigError if wrong
    run_worker(settings, kafka, loglevel=loglevel, policy=policy, state_partitions=partitions)


@app.command()
def simulate(
    streams: Annotated[int, typer.Option(min=1, help="concurrent livestreams")] = 2,
    duration_s: Annotated[float, typer.Option(min=0.1, help="seconds of video per stream")] = 10,
    segment_ms: Annotated[int, typer.Option(min=200, help="segment length")] = 2000,
    width: Annotated[int, typer.Option(min=16)] = 640,
    height: Annotated[int, typer.Option(min=16)] = 360,
    fps: Annotated[int, typer.Option(min=1)] = 30,
    chat_per_min: Annotated[float, typer.Option(min=0, help="chat lines per stream")] = 60,
    abusive_share: Annotated[float, typer.Option(min=0, max=1)] = 0.25,
    backlog: Annotated[bool, typer.Option(help="as fast as possible, not real time")] = False,
    run_id: Annotated[str | None, typer.Option(help="tag in stream ids (random)")] = None,
) -> None:
    """Produce synthetic livestreams (H.264 in MPEG-TS) and chat to Kafka."""
    from pipeline.simulate.produce import SimulationPlan, run_simulation

    plan_args: dict[str, Any] = {
        "streams": streams,
        "duration_s": duration_s,
        "segment_ms": segment_ms,
        "width": width,
        "height": height,
        "fps": fps,
        "chat_per_min": chat_per_min,
        "abusive_share": abusive_share,
        "realtime": not backlog,
    }
    if run_id:
        plan_args["run_id"] = run_id
    plan = SimulationPlan(**plan_args)
    with Progress(console=err_console, transient=True) as progress:
        task = progress.add_task("segments", total=plan.segments_per_stream * streams)
        summary = run_simulation(
            KafkaSettings(),
            _names(),
            plan,
            on_progress=lambda done, total: progress.update(task, completed=done),
        )
    console.print(
        f"run {plan.run_id}: {summary.segments} segments ({summary.segment_bytes / 1e6:.1f} MB), "
        f"{summary.chat} chat lines ({summary.abusive_chat} abusive) acknowledged"
    )
    if summary.errors:
        for e in summary.errors[:10]:
            err_console.print(f"[red]{e}")
        raise typer.Exit(1)


def render(role: str, doc: dict[str, Any]) -> str:
    """One line per output record, for humans."""
    src = doc.get("input", {})
    what = f"seq {src['seq']}" if "seq" in src else f"msg {src.get('message_id')}"
    if role == "dead_letters":
        s = doc["source"]
        return (
            f"[magenta]DEAD[/] {s['topic']}/{s['partition']}@{s['offset']} "
            f"[bold]{doc['reason']}[/]: {doc['message'][:100]}"
        )
    scores = " ".join(f"{k}={v:.2f}" for k, v in sorted(doc.get("scores", {}).items()))
    text = next((e["text"] for e in doc.get("evidence", []) if "text" in e), "")
    text = f' "{text[:60]}"' if text else ""
    if role == "results":
        style = _ACTION_STYLE.get(doc["decision"], "white")
        return (
            f"[dim]result[/] {src['stream_id']} {what} [{style}]{doc['decision']}[/] {scores}{text}"
        )
    if role == "actions":
        style = _ACTION_STYLE.get(doc["action"], "red")
        name = doc["action"].upper() + (f" {doc['lifts']}" if "lifts" in doc else "")
        return (
            f"[bold]ACTION[/] {src['stream_id']} {what} [{style}]{name}[/] "
            f"rule={doc['rule']} {scores}{text}"
        )
    return f"[yellow]REVIEW[/] {src['stream_id']} {what} rule={doc['rule']} {scores}{text}"


@app.command()
def tail(
    from_beginning: Annotated[bool, typer.Option(help="read the topics from the start")] = False,
    idle_timeout_s: Annotated[
        float | None, typer.Option(help="stop after this long without a record")
    ] = None,
    actions_only: Annotated[bool, typer.Option(help="hide allow/review results")] = False,
) -> None:
    """Live view of results, enforcement actions, review tasks and dead letters."""
    from pipeline.tail import iter_outputs

    for role, doc in iter_outputs(
        KafkaSettings(), _names(), from_beginning=from_beginning, idle_timeout_s=idle_timeout_s
    ):
        if actions_only and role == "results":
            continue
        console.print(render(role, doc), highlight=False)


@app.command()
def demo(
    streams: Annotated[int, typer.Option(min=1)] = 2,
    duration_s: Annotated[float, typer.Option(min=1)] = 20,
) -> None:
    """Start a worker, simulate livestreams, show the decisions, stop. Needs a running broker."""
    from pipeline.demo import run_demo

    raise typer.Exit(run_demo(streams=streams, duration_s=duration_s, console=console))


def main() -> None:
    setup_logging()
    try:
        app()
    except StreamwardenError as exc:
        err_console.print("[red]error:[/] ", end="")
        err_console.print(str(exc), markup=False, highlight=False)
        logging.getLogger("streamwarden").debug("fatal", exc_info=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
