"""pipeline.simulate.synth: real, independently decodable synthetic segments."""

from __future__ import annotations

import time

import numpy as np
import pytest

from pipeline.errors import UnsupportedCodec, UnsupportedContainer
from pipeline.media.decode import MediaLimits, decode_segment
from pipeline.simulate.synth import SYNTH_CODECS, encode_segment, encoder_available

LIMITS = MediaLimits()

COMBOS = [
    ("h264", "mpegts"),
    ("h264", "mp4"),
    ("h264", "mov"),
    ("h264", "mkv"),
    ("hevc", "mp4"),
    ("hevc", "mpegts"),
    ("vp8", "webm"),
    ("vp9", "webm"),
    ("av1", "mp4"),
    ("av1", "webm"),
]


@pytest.fixture(autouse=True)
def _quiet_svt(monkeypatch: pytest.MonkeyPatch) -> None:
    # SVT-AV1 logs its banner straight to stderr unless told otherwise.
    monkeypatch.setenv("SVT_LOG", "1")


def _seg(**overrides: object) -> bytes:
    args: dict[str, object] = {
        "stream_id": "stream-a",
        "seq": 0,
        "width": 320,
        "height": 180,
        "fps": 30,
        "duration_ms": 1000,
    }
    args.update(overrides)
    return encode_segment(**args)  # type: ignore[arg-type]


def test_h264_mpegts_is_a_real_transport_stream() -> None:
    data = _seg()
    assert data[0] == 0x47 and data[188] == 0x47  # TS sync bytes
    seg = decode_segment(data, "mpegts", limits=LIMITS, strategy="fps", sample_fps=30)
    assert (seg.codec, seg.width, seg.height) == ("h264", 320, 180)
    assert seg.decoded_frames == 30
    assert seg.duration_ms == 1000
    assert seg.frames[0].keyframe and seg.frames[0].pts_ms == 0


@pytest.mark.parametrize(("codec", "container"), COMBOS)
def test_codec_container_matrix_round_trips(codec: str, container: str) -> None:
    if not encoder_available(codec):
        pytest.skip(f"no {SYNTH_CODECS[codec][0]} encoder in this FFmpeg build")
    data = _seg(codec=codec, container=container, seq=4)
    seg = decode_segment(data, container, limits=LIMITS, strategy="fps", sample_fps=30)
    assert seg.codec == codec
    assert seg.decoded_frames == 30
    # Matroska/WebM store milliseconds (67), the others exact ticks (66).
    for frame, expected_ms in zip(seg.frames[:4], (0, 33, 66, 100), strict=True):
        assert abs(frame.pts_ms - expected_ms) <= 1
    assert seg.frames[0].keyframe


def test_gop_controls_key_frames_and_every_segment_starts_with_one() -> None:
    for seq in (0, 9):
        data = _seg(seq=seq, duration_ms=2000, gop_frames=15)
        seg = decode_segment(data, "mpegts", limits=LIMITS, strategy="keyframes")
        assert [f.pts_ms for f in seg.frames] == [0, 500, 1000, 1500]


def test_default_gop_is_two_seconds() -> None:
    seg = decode_segment(_seg(duration_ms=5000), "mpegts", limits=LIMITS)
    assert [f.pts_ms for f in seg.frames] == [0, 2000, 4000]


def test_segments_differ_by_stream_and_seq() -> None:
    def first_image(data: bytes) -> np.ndarray:
        return decode_segment(data, "mpegts", limits=LIMITS).frames[0].image

    a0 = first_image(_seg(stream_id="a", seq=0))
    a1 = first_image(_seg(stream_id="a", seq=1))
    b0 = first_image(_seg(stream_id="b", seq=0))
    assert np.abs(a0.astype(int) - a1.astype(int)).mean() > 5
    assert np.abs(a0.astype(int) - b0.astype(int)).mean() > 5


def test_content_moves_within_a_segment() -> None:
    data = _seg(duration_ms=1000)
    frames = decode_segment(data, "mpegts", limits=LIMITS, strategy="fps", sample_fps=2).frames
    assert len(frames) == 2
    assert np.abs(frames[0].image.astype(int) - frames[1].image.astype(int)).mean() > 5


def test_text_is_burned_in() -> None:
    plain = decode_segment(_seg(), "mpegts", limits=LIMITS).frames[0].image
    texted = decode_segment(_seg(text="HELLO MODERATOR"), "mpegts", limits=LIMITS).frames[0].image
    diff = np.abs(plain.astype(int) - texted.astype(int))
    assert diff.max() > 100  # white/black glyph pixels appear
    assert diff[90:, :].mean() < 1.0  # only the text lines (top) changed


def test_unknown_codec_and_container_are_refused() -> None:
    with pytest.raises(UnsupportedCodec):
        _seg(codec="mpeg2")
    with pytest.raises(UnsupportedContainer):
        _seg(container="avi")
    if encoder_available("vp9"):
        with pytest.raises(UnsupportedContainer):
            _seg(codec="vp9", container="mpegts")


def test_bad_shapes_are_value_errors() -> None:
    with pytest.raises(ValueError, match="even"):
        _seg(width=641, height=361)
    with pytest.raises(ValueError):
        _seg(duration_ms=0)
    with pytest.raises(ValueError):
        _seg(gop_frames=0)


def test_encode_640x360_2s_is_fast() -> None:
    _seg(width=640, height=360, duration_ms=2000)  # warm the encoder libraries
    started = time.perf_counter()
    _seg(width=640, height=360, duration_ms=2000, seq=1)
    elapsed_s = time.perf_counter() - started
    # ~0.09 s on a 2-core VM; the bound leaves room for a loaded CI box.
    assert elapsed_s < 2.0
