"""Review evidence shapes: thumbnail, OCR text, chat window."""

from __future__ import annotations

import base64

import pytest

from pipeline.policy import ChatContextLine, ReviewEvidence, chat_window, make_thumbnail


def line(i: int, second: int) -> ChatContextLine:
    return ChatContextLine(f"m{i}", f"u{i}", f"2026-11-25T10:00:{second:02d}.000Z", f"line {i}")


def test_small_thumbnail_is_inlined() -> None:
    jpeg = b"\xff\xd8\xff" + b"x" * 100
    t = make_thumbnail(jpeg, 160, 90)
    assert base64.b64decode(t.jpeg_b64 or "") == jpeg
    assert t.as_doc()["size_bytes"] == len(jpeg) and "uri" not in t.as_doc()


def test_large_thumbnail_needs_a_uri() -> None:
    jpeg = b"x" * 100
    with pytest.raises(ValueError, match="uri"):
        make_thumbnail(jpeg, 1, 1, max_inline_bytes=10)
    t = make_thumbnail(jpeg, 1, 1, uri="file:///thumbs/abc.jpg", max_inline_bytes=10)
    assert t.jpeg_b64 is None and t.uri == "file:///thumbs/abc.jpg" and len(t.sha256) == 64


def test_chat_window_keeps_the_nearest_lines_in_order() -> None:
    lines = [line(i, s) for i, s in enumerate([0, 10, 20, 25, 29, 31, 40, 55])]
    got = chat_window(lines, "2026-11-25T10:00:30.000Z", before_s=10, after_s=10, max_lines=3,
                      flagged_message_id="m5")  # fmt: skip
    assert [g["message_id"] for g in got] == ["m3", "m4", "m5"]
    assert got[2]["flagged"] and "flagged" not in got[0]


def test_evidence_doc_drops_what_is_absent() -> None:
    ev = ReviewEvidence(
        score=0.61,
        act_at=0.8,
        review_at=0.5,
        segment_seq=4,
        frame_time="2026-11-25T10:00:30.000Z",
        thumbnail=make_thumbnail(b"jpg", 2, 2),
        ocr_text="CALL 8 912",
        text_findings={"phones": ["8912"]},
        chat_window=tuple(chat_window([line(1, 29)], "2026-11-25T10:00:30.000Z")),
    )
    doc = ev.as_doc()
    assert set(doc) == {"score", "act_at", "review_at", "segment_seq", "frame_time", "thumbnail",
                        "ocr_text", "text_findings", "chat_window"}  # fmt: skip
    assert doc["chat_window"][0]["text"] == "line 1"
