"""``streamwarden scan`` internals on generated files, with fake models (no weights needed)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from inference.frames import FrameModel, InputSpec
from inference.scoring import MultiFrameScorer
from inference.testing import FakeBackend, two_class_by_mean
from pipeline import errors as err
from pipeline.cli_scan import ScanRow, iter_windows, scan_file
from pipeline.policy import parse_policy
from pipeline.simulate.synth import encode_segment

POLICY = parse_policy(
    """
schema: policy.v1
version: scan-test
rules:
  nsfw-end:
    {kind: score, category: nsfw, input: segment, act_at: 0.95, review_at: 0.5,
     window: {n: 1, m: 1, unit: frames}, ladder: video, first_action: end_stream,
     last_action: end_stream}
  nsfw-warn-candidate:
    {kind: score, category: nsfw, input: segment, mode: shadow, act_at: 0.5,
     window: {n: 2, m: 2, unit: frames}, ladder: video, first_action: warn,
     last_action: end_stream}
"""
)


def scorer() -> MultiFrameScorer:
    model = FrameModel(
        name="bright",
        version="v1",
        onnx_path=Path("/nonexistent.onnx"),
        input=InputSpec(name="in", size_hw=(4, 4), layout="NCHW"),
        output_name="probs",
        categories={"nsfw": 1},
    )
    backend = FakeBackend({"bright": two_class_by_mean("probs", low=0.0, high=255.0)})
    return MultiFrameScorer(backend, [model])


def video(tmp_path: Path, name: str, container: str, codec: str = "h264") -> Path:
    data = encode_segment(
        stream_id="scan", seq=1, width=160, height=96, fps=10, duration_ms=6000,
        gop_frames=10, codec=codec, container=container,
    )  # fmt: skip
    path = tmp_path / name
    path.write_bytes(data)
    return path


async def test_image_is_scored_with_the_policy_decision(tmp_path: Path) -> None:
    path = tmp_path / "white.png"
    cv2.imwrite(str(path), np.full((20, 30, 3), 255, np.uint8))
    progress: list[tuple[int, int]] = []
    kind, rows = await scan_file(
        path, scorer(), POLICY, on_progress=lambda d, t: progress.append((d, t))
    )
    assert kind == "image" and progress == [(1, 1)]
    [row] = rows
    assert row.scores == {"nsfw": pytest.approx(1.0)}
    assert row.decision == {
        "action": "end_stream", "category": "nsfw", "rule": "nsfw-end", "score": 1.0,
        "outcomes": [{"rule": "nsfw-end", "category": "nsfw", "kind": "act", "score": 1.0,
                      "shadow": False, "step": 3, "action": "end_stream"}],
    }  # fmt: skip
    assert row.ocr is None
    assert row.as_doc()["by_model"] == {"bright": {"nsfw": 1.0}}


@pytest.mark.parametrize(("name", "container"), [("clip.ts", "mpegts"), ("clip.mp4", "mp4")])
async def test_video_is_scanned_in_windows_with_continuous_times(
    tmp_path: Path, name: str, container: str
) -> None:
    path = video(tmp_path, name, container)
    windows = list(iter_windows(path, "mpegts" if name.endswith(".ts") else "mp4", 2000))
    assert [start for start, _, _ in windows] == [0, 2000, 4000]
    assert {c for _, _, c in windows} == {"mpegts"}  # H.264 is remuxed into MPEG-TS
    progress: list[tuple[int, int]] = []
    kind, rows = await scan_file(
        path, scorer(), POLICY, every_ms=500, ocr_every=0, window_s=2,
        on_progress=lambda d, t: progress.append((d, t)),
    )  # fmt: skip
    assert kind == "video"
    assert [r.pts_ms for r in rows] == list(range(0, 6000, 500))
    assert [r.index for r in rows] == list(range(12))
    assert all(isinstance(r, ScanRow) and set(r.scores) == {"nsfw"} for r in rows)
    # The policy sees the file as a stream: the shadow rule's 2-of-2 window fills across
    # frames (its act, hold and clear are listed), but a shadow rule never decides.
    kinds = {(o["rule"], o["kind"]) for r in rows for o in r.decision["outcomes"]}  # type: ignore[attr-defined]
    assert {("nsfw-warn-candidate", "act"), ("nsfw-end", "review")} <= kinds
    assert {r.decision["action"] for r in rows} <= {"review", "allow"}
    assert len(progress) == 3 and progress[-1][0] >= 5000


async def test_unknown_and_broken_files(tmp_path: Path) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(err.UnsupportedContainer, match="unknown file type"):
        await scan_file(other, scorer(), POLICY)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(err.CorruptMedia, match="not a readable image"):
        await scan_file(broken, scorer(), POLICY)
    fake_ts = tmp_path / "fake.ts"
    fake_ts.write_bytes(b"\x00" * 1000)
    with pytest.raises(err.MediaError):
        await scan_file(fake_ts, scorer(), POLICY)
