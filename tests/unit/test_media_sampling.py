"""pipeline.media.sampling and the scene strategy of pipeline.media.decode."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from pipeline.media import decode as decode_module
from pipeline.media.decode import MediaLimits, decode_segment
from pipeline.media.sampling import (
    THUMB_PX,
    SamplePlan,
    SamplingConfig,
    SamplingOverrides,
    SceneDetector,
    StreamSampling,
    luma_thumbnail,
    plan_for,
)

LIMITS = MediaLimits()


def still(seed: int, size: tuple[int, int] = (96, 160)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    return cv2.resize(small, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)


def cuts(images: list[np.ndarray], frames_each: int, fps: int = 25) -> bytes:
    """H.264 in MPEG-TS: each image held for ``frames_each`` frames (hard cuts between)."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = (
            images[0].shape[1],
            images[0].shape[0],
            "yuv420p",
        )
        stream.codec_context.gop_size = 1000  # one key frame: cuts are not key frames
        n = 0
        for image in images:
            for _ in range(frames_each):
                frame = av.VideoFrame.from_ndarray(image, format="bgr24")
                frame.pts, frame.time_base = n, Fraction(1, fps)
                out.mux(stream.encode(frame))
                n += 1
        out.mux(stream.encode(None))
    return buf.getvalue()


# --- config and plans -----------------------------------------------------------


def test_config_validates_and_merges_overrides() -> None:
    base = SamplingConfig(fps=2.0)
    merged = base.merged({"strategy": "fps"})
    assert (merged.strategy, merged.fps) == ("fps", 2.0)  # unset fields keep the base's
    assert base.merged({"strategy": "scene", "scene_threshold": 30}).scene_threshold == 30
    for bad in ({"fps": 0}, {"fps": 31}, {"scene_threshold": 0}, {"strategy": "all"}):
        with pytest.raises(ValueError):
            base.merged(bad)
    with pytest.raises(ValueError, match="unknown"):
        base.merged({"turbo": True})


def test_plan_for_each_strategy() -> None:
    assert plan_for(SamplingConfig()) == SamplePlan("keyframes", 1.0)
    assert plan_for(SamplingConfig("fps", fps=3)).strategy == "fps"
    scene = plan_for(SamplingConfig("scene", scene_threshold=20, scene_check_fps=2))
    assert (scene.strategy, scene.scene_threshold, scene.scene_check_fps) == ("scene", 20, 2)
    adaptive = SamplingConfig("adaptive", adaptive_fps=4)
    assert plan_for(adaptive).strategy == "keyframes"
    dense = plan_for(adaptive, boosted=True)
    assert (dense.strategy, dense.fps, dense.boosted, dense.label) == (
        "fps",
        4,
        True,
        "adaptive-dense",
    )
    assert plan_for(SamplingConfig("fps"), boosted=True).boosted is False


def test_adaptive_boosts_near_a_threshold_then_relaxes_on_stream_time() -> None:
    cfg = SamplingConfig("adaptive", adaptive_fps=5, adaptive_trigger_score=0.4, adaptive_hold_s=10)
    s = StreamSampling(cfg)
    t0 = 1_795_600_000_000
    assert s.plan("a", t0).strategy == "keyframes"
    assert s.observe("a", t0 + 2000, 0.39) is False  # not near enough
    assert s.plan("a", t0 + 2000).strategy == "keyframes"
    assert s.observe("a", t0 + 4000, 0.6) is True  # boost until 4 s + 10 s
    assert s.plan("a", t0 + 4000) == SamplePlan("fps", 5, boosted=True)
    assert s.plan("a", t0 + 13_999).boosted
    assert s.plan("b", t0 + 4000).strategy == "keyframes"  # per stream
    assert not s.plan("a", t0 + 14_000).boosted  # relaxed
    s.observe("a", t0 + 6000, 0.9)  # a later score extends, an earlier end never shortens
    s.observe("a", t0 + 5000, 0.9)
    assert s.plan("a", t0 + 15_999).boosted and not s.plan("a", t0 + 16_000).boosted


def test_non_adaptive_streams_keep_no_state_and_overrides_win() -> None:
    overrides = SamplingOverrides()
    s = StreamSampling(SamplingConfig(), overrides)
    assert s.observe("a", 1000, 1.0) is False
    overrides.set("a", SamplingConfig("fps", fps=5))
    plan = s.plan("a", 0)
    assert (plan.strategy, plan.fps, plan.overridden) == ("fps", 5, True)
    assert s.plan("b", 0) == SamplePlan("keyframes", 1.0)
    assert len(overrides) == 1
    overrides.set("a", None)
    assert s.plan("a", 0) == SamplePlan("keyframes", 1.0) and len(overrides) == 0


def test_adaptive_state_is_bounded_least_recently_seen_first() -> None:
    s = StreamSampling(SamplingConfig("adaptive"), max_streams=2)
    for name in ("a", "b", "c"):
        s.observe(name, 0, 1.0)
    assert not s.plan("a", 0).boosted  # evicted: starts relaxed
    assert s.plan("b", 0).boosted and s.plan("c", 0).boosted


# --- scene detection ----------------------------------------------------------


def test_luma_thumbnail_and_scene_detector() -> None:
    plane = np.zeros((1080, 1920), np.uint8)
    thumb = luma_thumbnail(plane)
    assert thumb.shape == (THUMB_PX, THUMB_PX) and thumb.dtype == np.uint8
    det = SceneDetector(threshold=10)
    assert det.consider(thumb)  # the first one always counts
    assert not det.consider(thumb + 5)  # 5 < 10
    assert det.difference(thumb + 9) == 9
    assert det.consider(thumb + 10)
    # Slow drift adds up against the last kept thumbnail, not the previous frame.
    assert not det.consider(thumb + 16) and det.consider(thumb + 20)
    with pytest.raises(ValueError):
        luma_thumbnail(np.zeros((4, 4, 3), np.uint8))


def test_scene_strategy_keeps_the_first_frame_after_each_cut() -> None:
    data = cuts([still(1), still(2), still(2), still(3)], frames_each=25)  # cuts at 1 s and 3 s
    seg = decode_segment(data, "mpegts", limits=LIMITS, strategy="scene", scene_check_fps=25)
    assert [f.pts_ms for f in seg.frames] == [0, 1000, 3000]
    assert seg.decoded_frames == 100
    coarse = decode_segment(data, "mpegts", limits=LIMITS, strategy="scene", scene_check_fps=2)
    assert [f.pts_ms for f in coarse.frames] == [0, 1000, 3000]  # cuts on the 0.5 s grid


def test_scene_threshold_and_check_grid() -> None:
    data = cuts([still(4), still(5)], frames_each=20)  # a cut at 0.8 s
    seg = decode_segment(data, "mpegts", limits=LIMITS, strategy="scene", scene_check_fps=2)
    assert [f.pts_ms for f in seg.frames] == [0, 1000]  # seen at the next check point
    none = decode_segment(
        data, "mpegts", limits=LIMITS, strategy="scene", scene_threshold=255, scene_check_fps=25
    )
    assert [f.pts_ms for f in none.frames] == [0]


def test_scene_thumbnail_of_a_non_yuv_frame_matches_the_luma_path() -> None:
    image = still(6, (120, 200))
    rgb = av.VideoFrame.from_ndarray(image[:, :, ::-1].copy(), format="rgb24")
    yuv = rgb.reformat(format="yuv420p")
    a = decode_module._thumbnail(rgb).astype(int)
    b = decode_module._thumbnail(yuv).astype(int)
    assert a.shape == (THUMB_PX, THUMB_PX)
    # Same picture; the YUV plane is limited range (16-235), swscale's gray full range.
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99


def test_bad_scene_arguments() -> None:
    data = cuts([still(1)], frames_each=2)
    with pytest.raises(ValueError):
        decode_segment(data, "mpegts", limits=LIMITS, strategy="scene", scene_threshold=0)
    with pytest.raises(ValueError):
        decode_segment(data, "mpegts", limits=LIMITS, strategy="scene", scene_check_fps=0)
