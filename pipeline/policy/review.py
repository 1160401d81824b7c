"""Human review: the evidence a review task carries, and reviewer verdicts. Pure code.

A review task (``review_task.v1``) is created for every live ``review`` outcome. A reviewer
needs to *see* what the model saw, so its evidence holds, as applicable:

* ``thumbnail``: the JPEG of the top-scoring frame, inline (base64, small) or by reference
  (``uri`` + ``sha256``; the review topic allows 4 MiB per record, keep tasks far below);
* ``frame_time`` / ``segment_seq`` / ``frame_pts_ms``: where in the stream it is;
* ``ocr_text``: the text read from the frame, and what the text rules found in it;
* ``chat_window``: the chat lines around the moment (``before_s``/``after_s``), or around the
  flagged message, with the flagged one marked.

The verdict (``review_verdict.v1``) comes back on its own topic: confirm or overturn.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pipeline import codec
from pipeline.records import deterministic_id, parse_iso

THUMBNAIL_INLINE_MAX_BYTES = 64 * 1024
CHAT_WINDOW_MAX_LINES = 50


@dataclass(frozen=True)
class Thumbnail:
    sha256: str
    width_px: int
    height_px: int
    size_bytes: int
    jpeg_b64: str | None = None  # inline when at most THUMBNAIL_INLINE_MAX_BYTES
    uri: str | None = None  # else (or also) where the JPEG is stored

    def as_doc(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def make_thumbnail(
    jpeg: bytes,
    width_px: int,
    height_px: int,
    *,
    uri: str | None = None,
    max_inline_bytes: int = THUMBNAIL_INLINE_MAX_BYTES,
) -> Thumbnail:
    """Describe an encoded JPEG; inline it when small, else require a ``uri``."""
    inline = len(jpeg) <= max_inline_bytes
    if not inline and uri is None:
        raise ValueError(f"thumbnail of {len(jpeg)} bytes is too large to inline: give a uri")
    return Thumbnail(
        sha256=hashlib.sha256(jpeg).hexdigest(),
        width_px=width_px,
        height_px=height_px,
        size_bytes=len(jpeg),
        jpeg_b64=base64.b64encode(jpeg).decode() if inline else None,
        uri=uri,
    )


@dataclass(frozen=True)
class ChatContextLine:
    message_id: str
    user_id: str
    sent_at: str  # RFC 3339
    text: str

    def as_doc(self, *, flagged: bool = False) -> dict[str, Any]:
        doc: dict[str, Any] = dict(self.__dict__)
        doc["text"] = self.text[:500]
        if flagged:
            doc["flagged"] = True
        return doc


def chat_window(
    lines: Iterable[ChatContextLine],
    at: str,
    *,
    before_s: float = 30.0,
    after_s: float = 10.0,
    max_lines: int = CHAT_WINDOW_MAX_LINES,
    flagged_message_id: str | None = None,
) -> list[dict[str, Any]]:
    """The chat lines sent within ``[at - before_s, at + after_s]``, oldest first, at most
    ``max_lines`` (the ones nearest to ``at`` are kept)."""
    t0 = parse_iso(at).timestamp()
    inside = [
        (parse_iso(ln.sent_at).timestamp(), ln)
        for ln in lines
        if t0 - before_s <= parse_iso(ln.sent_at).timestamp() <= t0 + after_s
    ]
    nearest = sorted(inside, key=lambda p: abs(p[0] - t0))[:max_lines]
    return [
        ln.as_doc(flagged=ln.message_id == flagged_message_id)
        for _, ln in sorted(nearest, key=lambda p: p[0])
    ]


@dataclass(frozen=True)
class ReviewEvidence:
    """Everything a reviewer sees for one review task (``review_task.v1`` evidence item)."""

    score: float
    act_at: float | None = None
    review_at: float | None = None
    segment_seq: int | None = None
    frame_pts_ms: int | None = None
    frame_time: str | None = None
    message_id: str | None = None
    text: str | None = None
    thumbnail: Thumbnail | None = None
    ocr_text: str | None = None
    text_findings: Mapping[str, Any] | None = None
    chat_window: tuple[Mapping[str, Any], ...] = ()

    def as_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            if value is None or value == ():
                continue
            if isinstance(value, Thumbnail):
                doc[key] = value.as_doc()
            elif key == "chat_window":
                doc[key] = [dict(x) for x in value]
            elif key == "text_findings":
                doc[key] = dict(value)
            else:
                doc[key] = value
        return doc


def make_verdict(
    task_id: str,
    verdict: Literal["confirm", "overturn"],
    reviewer: str,
    decided_at: str,
    **optional: Any,
) -> dict[str, Any]:
    """A validated ``review_verdict.v1`` document (id: task + reviewer + time)."""
    doc = {
        "schema": "review_verdict.v1",
        "id": deterministic_id("verdict", task_id, reviewer, decided_at),
        "task_id": task_id,
        "verdict": verdict,
        "reviewer": reviewer,
        "decided_at": decided_at,
        **{k: v for k, v in optional.items() if v is not None},
    }
    codec.validate("review_verdict.v1", doc)
    return doc
