"""Media commands: ``streamwarden inspect`` (one segment through the media stage) and
``streamwarden bank add|list`` (the PDQ hash bank).

``inspect`` exits 0 when the segment decodes, 3 when the media stage rejects it (the
reason code is printed), 2 on a usage or configuration error.
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.parse
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from pipeline.errors import InputError, UnsupportedContainer
from pipeline.settings import WorkerSettings

if TYPE_CHECKING:
    from pipeline.media.bank import HashBank

__all__ = ["EXTENSION_CONTAINERS", "REJECTED_EXIT_CODE", "bank_app", "guess_container", "inspect"]

REJECTED_EXIT_CODE = 3
# File extension -> container name of the allow-list (never a guess by FFmpeg's probing).
EXTENSION_CONTAINERS: dict[str, str] = {
    ".ts": "mpegts",
    ".m2ts": "mpegts",
    ".mts": "mpegts",
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".m4s": "fmp4",
    ".mov": "mov",
    ".mkv": "mkv",
    ".webm": "webm",
}
_STRATEGIES = ("keyframes", "fps", "scene")

bank_app = typer.Typer(no_args_is_help=True, help="The PDQ hash bank of known violating images.")
_out = Console(soft_wrap=True, highlight=False)
_err = Console(stderr=True, soft_wrap=True, highlight=False)


def guess_container(name: str) -> str:
    """The container for a file name or URI path, from its extension only."""
    suffix = PurePosixPath(name).suffix.lower()
    try:
        return EXTENSION_CONTAINERS[suffix]
    except KeyError:
        known = ", ".join(sorted(EXTENSION_CONTAINERS))
        raise UnsupportedContainer(
            f"cannot tell the container of {name!r} from its extension ({known}); pass --container"
        ) from None


def _read(target: str, settings: WorkerSettings) -> tuple[bytes, str]:
    """The bytes of a local file, file:// or http(s):// URI through the worker's fetcher.

    Returns the bytes and the name to guess the container from. A local file (or file://)
    is allowed in its own folder: the investigator named it; every other fetch rule holds.
    """
    from pipeline.media import fetch_segment

    def fetch(uri: str, roots: tuple[Path, ...]) -> bytes:
        return fetch_segment(
            uri,
            max_bytes=settings.segment_max_bytes,
            file_roots=roots,
            timeout_s=settings.fetch_timeout_s,
        )

    parts = urllib.parse.urlsplit(target)
    if parts.scheme == "file":
        path = Path(urllib.parse.unquote(parts.path))
        return fetch(target, (Path(os.path.realpath(path)).parent,)), parts.path
    if parts.scheme == "" or Path(target).exists():
        path = Path(target).absolute()
        return fetch(path.as_uri(), (Path(os.path.realpath(path)).parent,)), path.name
    return fetch(target, ()), parts.path  # http(s), or refused with uri_not_allowed


def inspect_segment(
    data: bytes,
    container: str,
    *,
    settings: WorkerSettings,
    strategy: str,
    fps: float,
    scene_threshold: float,
    scene_check_fps: float,
    max_side_px: int | None,
    bank: HashBank | None = None,
    max_hamming: int = 31,
) -> dict[str, Any]:
    """Demux, sample and hash one segment as the worker would; InputError if rejected."""
    from pipeline.media import decode_segment, pdq_hash
    from pipeline.segments import media_limits

    media = decode_segment(
        data,
        container,
        limits=media_limits(settings),
        strategy=strategy,  # type: ignore[arg-type]  # checked by the caller
        sample_fps=fps,
        max_side_px=max_side_px,
        scene_threshold=scene_threshold,
        scene_check_fps=scene_check_fps,
    )
    frames = []
    for f in media.frames:
        pdq = pdq_hash(f.image)
        frame: dict[str, Any] = {
            "pts_ms": f.pts_ms,
            "keyframe": f.keyframe,
            "width": int(f.image.shape[1]),
            "height": int(f.image.shape[0]),
            "pdq": pdq.hex,
            "quality": pdq.quality,
        }
        if bank is not None:
            match = None
            if pdq.quality >= settings.pdq_min_quality:
                match = bank.match(pdq, max_distance=max_hamming)
            frame["match"] = (
                {"id": match.entry.id, "category": match.entry.category, "hamming": match.distance}
                if match is not None
                else None
            )
        frames.append(frame)
    return {
        "bytes": len(data),
        "container": media.container,
        "codec": media.codec,
        "width": media.width,
        "height": media.height,
        "duration_ms": media.duration_ms,
        "decoded_frames": media.decoded_frames,
        "decode_errors": media.decode_errors,
        "sampling": {
            "strategy": strategy,
            "fps": fps,
            "scene_threshold": scene_threshold,
            "scene_check_fps": scene_check_fps,
        },
        "frames": frames,
    }


def _print_report(source: str, report: dict[str, Any]) -> None:
    r = report
    _out.print(
        f"[bold]{source}[/]: {r['container']}/{r['codec']} {r['width']}x{r['height']} "
        f"{r['duration_ms']} ms, {r['bytes']} bytes, {r['decoded_frames']} frames decoded, "
        f"{r['decode_errors']} decode errors"
    )
    table = Table(title=f"{len(r['frames'])} sampled ({r['sampling']['strategy']})")
    for column in ("#", "pts ms", "key"):
        table.add_column(column, justify="right")
    table.add_column("PDQ", overflow="fold")
    table.add_column("quality", justify="right")
    with_bank = "bank" in r
    if with_bank:
        table.add_column("bank match")
    for i, f in enumerate(r["frames"]):
        row = [str(i), str(f["pts_ms"]), "K" if f["keyframe"] else "", f["pdq"], str(f["quality"])]
        if with_bank:
            m = f.get("match")
            row.append(f"[red]{m['id']} ({m['category']}, {m['hamming']} bits)[/]" if m else "-")
        table.add_row(*row)
    _out.print(table)


def inspect(
    target: Annotated[str, typer.Argument(metavar="FILE_OR_URI", help="file, file:// or http(s)")],
    container: Annotated[
        str | None, typer.Option(help="mpegts, mp4, fmp4, mov, mkv, webm (default: extension)")
    ] = None,
    strategy: Annotated[str, typer.Option(help="keyframes, fps or scene")] = "keyframes",
    fps: Annotated[float | None, typer.Option(help="fps strategy rate (SW_SAMPLE_FPS)")] = None,
    scene_threshold: Annotated[float | None, typer.Option(help="(SW_SCENE_THRESHOLD)")] = None,
    scene_check_fps: Annotated[float | None, typer.Option(help="(SW_SCENE_CHECK_FPS)")] = None,
    max_side_px: Annotated[
        int | None, typer.Option(help="downscale frames (SW_FRAME_MAX_SIDE_PX); 0: full size")
    ] = None,
    bank: Annotated[Path | None, typer.Option(help="match frames against this hash bank")] = None,
    max_hamming: Annotated[int | None, typer.Option(help="bank match radius (bits)")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="one JSON document")] = False,
) -> None:
    """Run fetch, demux, sampling and PDQ hashing on one segment and show what was found."""
    from pipeline.media.bank import read_bank

    settings = WorkerSettings()
    if strategy not in _STRATEGIES:
        raise typer.BadParameter(f"--strategy must be one of {', '.join(_STRATEGIES)}")
    hash_bank = read_bank(bank) if bank is not None else None
    s = settings
    side = s.frame_max_side_px if max_side_px is None else max_side_px
    try:
        data, name = _read(target, settings)
        report = inspect_segment(
            data,
            container or guess_container(name),
            settings=settings,
            strategy=strategy,
            fps=settings.sample_fps if fps is None else fps,
            scene_threshold=settings.scene_threshold
            if scene_threshold is None
            else scene_threshold,
            scene_check_fps=settings.scene_check_fps
            if scene_check_fps is None
            else scene_check_fps,
            max_side_px=side or None,
            bank=hash_bank,
            max_hamming=settings.hash_match_max_hamming if max_hamming is None else max_hamming,
        )
    except InputError as exc:
        if json_output:
            doc = {"source": target, "rejected": True, "reason": exc.reason, "message": str(exc)}
            sys.stdout.write(orjson.dumps(doc).decode() + "\n")
        else:
            _err.print(f"[red]rejected[/] [bold]{exc.reason}[/]: {exc}")
        raise typer.Exit(REJECTED_EXIT_CODE) from None
    if hash_bank is not None:
        report["bank"] = {"path": str(bank), "entries": len(hash_bank)}
    if json_output:
        doc = {"source": target, "rejected": False, **report}
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        _print_report(target, report)


@bank_app.command("add")
def bank_add(
    images: Annotated[list[Path], typer.Argument(metavar="IMAGE...", help="pictures to ban")],
    bank: Annotated[Path, typer.Option(help="the bank file (JSON Lines), created if missing")],
    category: Annotated[str, typer.Option(help="e.g. csam, terror, ncii ([A-Za-z0-9_.:-])")],
    min_quality: Annotated[
        int | None, typer.Option(help="refuse flatter pictures (SW_PDQ_MIN_QUALITY)")
    ] = None,
) -> None:
    """Hash IMAGE... with PDQ and add them to the bank (id: the file's sha256, 16 hex)."""
    import cv2
    import numpy as np

    from pipeline.media.bank import NAME_PATTERN, BankEntry, read_bank, write_bank
    from pipeline.media.pdq import pdq_hash
    from pipeline.records import utc_now_iso

    if not NAME_PATTERN.match(category):
        raise typer.BadParameter(f"{category!r}: use [A-Za-z0-9_.:-]", param_hint="--category")
    floor = WorkerSettings().pdq_min_quality if min_quality is None else min_quality
    entries = list(read_bank(bank).entries) if bank.exists() else []
    known = {e.id for e in entries}
    added, failed = [], 0
    for path in images:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            _err.print(f"[red]skipped[/] {path}: not a readable image")
            failed += 1
            continue
        pdq = pdq_hash(np.asarray(image, dtype=np.uint8))
        entry_id = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        if pdq.quality < floor:
            _err.print(f"[red]skipped[/] {path}: PDQ quality {pdq.quality} < {floor} (too flat)")
            failed += 1
            continue
        if entry_id in known:
            _out.print(f"[dim]already in the bank[/] {path} ({entry_id})")
            continue
        entry = BankEntry(entry_id, category, pdq, source=path.name, added_at=utc_now_iso())
        entries.append(entry)
        known.add(entry_id)
        added.append(entry)
        _out.print(f"[green]added[/] {entry_id} {category} {pdq.hex} q={pdq.quality} {path}")
    if added:
        write_bank(bank, entries)
    _out.print(f"{bank}: {len(added)} added, {len(entries)} entries")
    if failed:
        raise typer.Exit(1)


@bank_app.command("list")
def bank_list(
    bank: Annotated[Path, typer.Option(help="the bank file (JSON Lines)")],
    json_output: Annotated[bool, typer.Option("--json", help="JSON Lines, as stored")] = False,
) -> None:
    """Show the bank's entries."""
    from pipeline.media.bank import read_bank

    entries = read_bank(bank).entries
    if json_output:
        for e in entries:
            sys.stdout.write(orjson.dumps(e.as_doc()).decode() + "\n")
        return
    table = Table(title=f"{bank}: {len(entries)} entries")
    for column in ("id", "category", "PDQ", "quality", "source", "added"):
        table.add_column(column, overflow="fold")
    for e in entries:
        row = (e.id, e.category, e.pdq.hex, str(e.pdq.quality), e.source or "", e.added_at or "")
        table.add_row(*row)
    _out.print(table)
