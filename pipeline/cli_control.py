"""``streamwarden control set|clear|list``: per-stream sampling overrides on the control topic.

Register in ``pipeline.cli``::

    from pipeline.cli_control import control_app
    app.add_typer(control_app, name="control")

The records are ``control.v1`` (keyed by stream id on the compacted control topic); workers
apply them at once and re-read them at start (``pipeline.media.control``).
"""

from __future__ import annotations

import getpass
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from pipeline import codec
from pipeline.errors import SchemaError
from pipeline.media.control import read_to_end
from pipeline.records import InRecord, iso_ms
from pipeline.settings import KafkaSettings
from pipeline.topics import TopicNames

__all__ = ["control_app", "control_doc", "current_overrides"]

control_app = typer.Typer(no_args_is_help=True, help="Per-stream sampling overrides.")
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

Strategy = Annotated[
    str, typer.Option(help="keyframes, fps, scene or adaptive", show_default=False)
]


def control_doc(
    stream_id: str,
    sampling: dict[str, Any] | None,
    *,
    updated_by: str,
    reason: str | None = None,
    now: datetime | None = None,
) -> bytes:
    """A validated ``control.v1`` record (SchemaError if it is not one)."""
    doc: dict[str, Any] = {
        "stream_id": stream_id,
        "sampling": sampling,
        "updated_at": iso_ms(now or datetime.now(UTC)),
        "updated_by": updated_by,
    }
    if reason:
        doc["reason"] = reason
    return codec.encode("control.v1", doc)


def current_overrides(records: Sequence[InRecord]) -> dict[str, dict[str, Any]]:
    """The latest record per stream that still overrides it (what a worker would apply)."""
    latest: dict[str, dict[str, Any] | None] = {}
    for rec in records:
        if rec.value is None:
            latest[rec.key_text() or ""] = None
            continue
        try:
            doc = codec.decode("control.v1", rec.value)
        except SchemaError:
            continue  # the worker dead-letters it; it overrides nothing
        latest[str(doc["stream_id"])] = doc if doc["sampling"] is not None else None
    return {sid: doc for sid, doc in sorted(latest.items()) if doc is not None}


def _publish(stream_id: str, value: bytes) -> None:
    from pipeline.simulate.produce import make_producer

    kafka = KafkaSettings()
    topic = TopicNames.with_prefix(kafka.topic_prefix).control
    producer = make_producer(kafka)
    failed: list[Any] = []
    producer.produce(
        topic, key=stream_id.encode(), value=value, on_delivery=lambda err, _: failed.append(err)
    )
    if producer.flush(30) != 0 or any(err is not None for err in failed):
        err_console.print(f"[red]not acknowledged by the broker[/]: {topic} {failed}")
        raise typer.Exit(1)
    console.print(f"{topic} ← {value.decode()}", markup=False, highlight=False)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no $USER and no passwd entry (a bare container)
        return "unknown"


@control_app.command("set")
def set_override(
    stream_id: Annotated[str, typer.Argument(help="the livestream")],
    strategy: Strategy,
    fps: Annotated[float | None, typer.Option(help="frames/s of fps sampling")] = None,
    scene_threshold: Annotated[float | None, typer.Option(help="scene: luma difference")] = None,
    adaptive_fps: Annotated[float | None, typer.Option(help="adaptive: boosted frames/s")] = None,
    adaptive_hold_s: Annotated[float | None, typer.Option(help="adaptive: boost length")] = None,
    by: Annotated[str | None, typer.Option(help="who sets it (default: $USER)")] = None,
    reason: Annotated[str | None, typer.Option(help="why, for the audit trail")] = None,
) -> None:
    """Sample STREAM_ID differently from now on (fields left out take the workers' settings)."""
    optional = {
        "fps": fps,
        "scene_threshold": scene_threshold,
        "adaptive_fps": adaptive_fps,
        "adaptive_hold_s": adaptive_hold_s,
    }
    sampling = {"strategy": strategy} | {k: v for k, v in optional.items() if v is not None}
    try:
        value = control_doc(stream_id, sampling, updated_by=by or _user(), reason=reason)
    except SchemaError as exc:
        err_console.print(f"[red]invalid override[/]: {exc}")
        raise typer.Exit(2) from exc
    _publish(stream_id, value)


@control_app.command("clear")
def clear_override(
    stream_id: Annotated[str, typer.Argument(help="the livestream")],
    by: Annotated[str | None, typer.Option(help="who clears it (default: $USER)")] = None,
    reason: Annotated[str | None, typer.Option(help="why, for the audit trail")] = None,
) -> None:
    """Return STREAM_ID to the workers' settings (a record with ``sampling: null``)."""
    _publish(stream_id, control_doc(stream_id, None, updated_by=by or _user(), reason=reason))


@control_app.command("list")
def list_overrides(
    as_json: Annotated[bool, typer.Option("--json", help="JSON Lines")] = False,
) -> None:
    """The overrides in force: the latest record of each overridden stream."""
    kafka = KafkaSettings()
    docs = current_overrides(read_to_end(kafka, TopicNames.with_prefix(kafka.topic_prefix).control))
    if as_json:
        for doc in docs.values():
            typer.echo(orjson.dumps(doc).decode())
        return
    table = Table("stream", "sampling", "updated at", "by", "reason")
    for sid, doc in docs.items():
        sampling = " ".join(f"{k}={v}" for k, v in doc["sampling"].items())
        table.add_row(
            sid, sampling, doc["updated_at"], doc.get("updated_by", ""), doc.get("reason", "")
        )
    console.print(table)
