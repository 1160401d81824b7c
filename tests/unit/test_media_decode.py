"""pipeline.media.decode: sampling, timestamps, limits and hostile inputs."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from pipeline import errors as err
from pipeline.media import decode as decode_module
from pipeline.media.decode import MediaLimits, SamplingStrategy, decode_segment
from pipeline.simulate.synth import encoder_available
from tests.unit.media_fixtures import audio_only, other_video_codec, segment, solid_colour

LIMITS = MediaLimits()


@pytest.fixture(scope="module")
def ts_4s() -> bytes:
    return segment()


@pytest.fixture(scope="module")
def segments(ts_4s: bytes) -> dict[str, bytes]:
    return {"mpegts": ts_4s, "mp4": segment(container="mp4")}


# --- sampling and timestamps ------------------------------------------------


def test_keyframes_strategy_gives_one_frame_per_gop(ts_4s: bytes) -> None:
    seg = decode_segment(ts_4s, "mpegts", limits=LIMITS, strategy="keyframes")
    assert [f.pts_ms for f in seg.frames] == [0, 2000]
    assert all(f.keyframe for f in seg.frames)
    assert seg.decoded_frames == 2  # non-key frames were never decoded
    assert (seg.container, seg.codec, seg.width, seg.height) == ("mpegts", "h264", 320, 180)
    assert seg.duration_ms == 4000


def test_fps_strategy_samples_a_time_grid(ts_4s: bytes) -> None:
    seg = decode_segment(ts_4s, "mpegts", limits=LIMITS, strategy="fps", sample_fps=2.0)
    assert [f.pts_ms for f in seg.frames] == [0, 500, 1000, 1500, 2000, 2500, 3000, 3500]
    assert [i for i, f in enumerate(seg.frames) if f.keyframe] == [0, 4]
    assert seg.decoded_frames == 120


def test_fps_strategy_with_a_fractional_rate(ts_4s: bytes) -> None:
    seg = decode_segment(ts_4s, "mpegts", limits=LIMITS, strategy="fps", sample_fps=0.75)
    assert [f.pts_ms for f in seg.frames] == [0, 1333, 2666]


def test_timestamps_are_relative_to_the_segment_start() -> None:
    # seq 7 of a 4 s cadence starts 28 s into the stream; pts_ms still starts at 0.
    for container in ("mpegts", "mp4", "mkv"):
        seg = decode_segment(segment(container=container, seq=7), container, limits=LIMITS)
        assert [f.pts_ms for f in seg.frames] == [0, 2000], container


def test_frames_are_bgr_uint8(ts_4s: bytes) -> None:
    image = decode_segment(ts_4s, "mpegts", limits=LIMITS).frames[0].image
    assert image.shape == (180, 320, 3) and image.dtype == np.uint8
    assert image.flags["C_CONTIGUOUS"]
    # A pure blue frame comes back blue in channel 0 (OpenCV order).
    got = decode_segment(solid_colour((255, 0, 0)), "mpegts", limits=LIMITS).frames[0].image
    b, g, r = (float(got[..., c].mean()) for c in range(3))
    assert b > 200 and g < 60 and r < 60


def test_max_side_px_downscales_keeping_aspect() -> None:
    data = segment(width=1280, height=720, duration_ms=2000)
    seg = decode_segment(data, "mpegts", limits=LIMITS, max_side_px=320)
    assert seg.frames[0].image.shape == (180, 320, 3)
    assert (seg.width, seg.height) == (1280, 720)  # header size, not the sample's
    same = decode_segment(data, "mpegts", limits=LIMITS, max_side_px=4000)
    assert same.frames[0].image.shape == (720, 1280, 3)


def test_odd_sizes() -> None:
    seg = decode_segment(segment(width=642, height=362, duration_ms=1000), "mpegts", limits=LIMITS)
    assert seg.frames[0].image.shape == (362, 642, 3)
    if encoder_available("vp9"):
        data = segment(width=641, height=361, duration_ms=1000, codec="vp9", container="webm")
        seg = decode_segment(data, "webm", limits=LIMITS, max_side_px=101)
        assert (seg.width, seg.height) == (641, 361)
        assert seg.frames[0].image.shape == (57, 101, 3)


@pytest.mark.parametrize(
    ("codec", "container"),
    [
        ("h264", "mov"),
        ("h264", "fmp4"),
        ("hevc", "mp4"),
        ("vp8", "webm"),
        ("vp9", "webm"),
        ("av1", "mkv"),
    ],
)
def test_other_codecs_and_containers(
    codec: str, container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not encoder_available(codec):
        pytest.skip(f"no {codec} encoder here")
    monkeypatch.setenv("SVT_LOG", "1")
    data = segment(codec=codec, container=container)
    seg = decode_segment(data, container, limits=LIMITS)
    assert seg.codec == codec
    assert [f.pts_ms for f in seg.frames] == [0, 2000]
    assert seg.decoded_frames == 2
    fps = decode_segment(data, container, limits=LIMITS, strategy="fps", sample_fps=1.0)
    assert [f.pts_ms for f in fps.frames] == [0, 1000, 2000, 3000]


def test_bad_arguments_are_value_errors(ts_4s: bytes) -> None:
    with pytest.raises(ValueError):
        decode_segment(ts_4s, "mpegts", limits=LIMITS, strategy="all")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        decode_segment(ts_4s, "mpegts", limits=LIMITS, strategy="fps", sample_fps=0)
    with pytest.raises(ValueError):
        decode_segment(ts_4s, "mpegts", limits=LIMITS, max_side_px=0)


# --- limits -------------------------------------------------------------------


def test_resolution_limits(ts_4s: bytes) -> None:
    with pytest.raises(err.ResolutionTooLarge):
        decode_segment(ts_4s, "mpegts", limits=MediaLimits(max_width=160))
    with pytest.raises(err.ResolutionTooLarge):
        decode_segment(ts_4s, "mpegts", limits=MediaLimits(max_height=100))
    with pytest.raises(err.ResolutionTooLarge):
        decode_segment(ts_4s, "mpegts", limits=MediaLimits(max_pixels=320 * 179))


@pytest.mark.parametrize("container", ["mpegts", "mp4"])
def test_duration_limit(container: str) -> None:
    data = segment(container=container)
    with pytest.raises(err.DurationTooLong):
        decode_segment(data, container, limits=MediaLimits(max_duration_ms=3000))
    assert (
        decode_segment(data, container, limits=MediaLimits(max_duration_ms=4000)).duration_ms
        == 4000
    )


def test_decoded_frame_limit(ts_4s: bytes) -> None:
    with pytest.raises(err.TooManyFrames):
        decode_segment(ts_4s, "mpegts", limits=MediaLimits(max_decoded_frames=10), strategy="fps")
    with pytest.raises(err.TooManyFrames):
        decode_segment(ts_4s, "mpegts", limits=MediaLimits(max_decoded_frames=1))
    seg = decode_segment(ts_4s, "mpegts", limits=MediaLimits(max_decoded_frames=2))
    assert seg.decoded_frames == 2


def test_payload_limits(ts_4s: bytes) -> None:
    with pytest.raises(err.EmptyPayload):
        decode_segment(b"", "mpegts", limits=LIMITS)
    with pytest.raises(err.PayloadTooLarge):
        decode_segment(ts_4s, "mpegts", limits=MediaLimits(max_bytes=len(ts_4s) - 1))


# --- refused inputs -------------------------------------------------------------


@pytest.mark.parametrize("container", ["avi", "hls", "concat", "MP4", "", "mov,mp4", "image2"])
def test_unsupported_container_names(ts_4s: bytes, container: str) -> None:
    with pytest.raises(err.UnsupportedContainer):
        decode_segment(ts_4s, container, limits=LIMITS)


def test_audio_only_segment_has_no_video() -> None:
    with pytest.raises(err.NoVideoStream):
        decode_segment(audio_only("mp2", "mpegts"), "mpegts", limits=LIMITS)


def test_disallowed_video_codec() -> None:
    with pytest.raises(err.UnsupportedCodec):
        decode_segment(other_video_codec("mpeg2video", "mpegts"), "mpegts", limits=LIMITS)
    with pytest.raises(err.UnsupportedCodec):
        decode_segment(other_video_codec("mpeg4", "mov"), "mov", limits=LIMITS)


def _no_open(*args: object, **kwargs: object) -> None:
    raise AssertionError("av.open must not be reached")


@pytest.mark.parametrize(
    "payload",
    [
        b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{target}\n",
        b"\xef\xbb\xbf  #EXTM3U\n#EXTINF:2.0,\nfile://{target}\n",
        b"ffconcat version 1.0\nfile '{target}'\n",
        b"file '{target}'\n",
        b"v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nm=video 5004 RTP/AVP 96\n",
        b'<?xml version="1.0"?>\n<MPD><BaseURL>file://{target}</BaseURL></MPD>\n',
        b"just some text, no media in here\n" * 4,
    ],
)
def test_indirection_is_refused_without_opening(
    payload: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "sentinel.ts"  # never created: nothing may even look for it
    monkeypatch.setattr(av, "open", _no_open)
    data = payload.replace(b"{target}", str(target).encode())
    for container in ("mpegts", "mp4", "mkv"):
        with pytest.raises(err.NotMedia):
            decode_segment(data, container, limits=LIMITS)
    assert not target.exists()


def test_nested_opens_are_refused_even_past_the_sniffer(tmp_path: Path) -> None:
    # Defence in depth: even a demuxer that follows playlists cannot open anything.
    sentinel = tmp_path / "sentinel.ts"
    sentinel.write_bytes(segment(duration_ms=1000))
    playlist = (
        f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\nfile://{sentinel}\n#EXT-X-ENDLIST\n"
    )
    with (
        pytest.raises(err.NotMedia, match="another resource"),
        decode_module._open_input(playlist.encode(), "hls"),
    ):
        pass


@pytest.mark.parametrize("container", ["mpegts", "mp4", "mov", "mkv", "webm"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_bytes_are_corrupt(container: str, seed: int) -> None:
    data = np.random.default_rng(seed).bytes(64 * 1024)
    with pytest.raises(err.CorruptMedia):
        decode_segment(data, container, limits=LIMITS)


@pytest.mark.parametrize("container", ["mpegts", "mp4"])
@pytest.mark.parametrize("keep", ["head", "tail"])
@pytest.mark.parametrize("cut", [0.25, 0.5, 0.75])
@pytest.mark.parametrize("strategy", ["keyframes", "fps"])
def test_truncation_gives_frames_or_corrupt(
    *, container: str, keep: str, cut: float, strategy: SamplingStrategy, segments: dict[str, bytes]
) -> None:
    data = segments[container]
    at = int(len(data) * cut)
    try:
        seg = decode_segment(data[:at] if keep == "head" else data[at:], container, limits=LIMITS,
                             strategy=strategy, sample_fps=30)  # fmt: skip
    except err.CorruptMedia:
        return  # a tail without mp4's moov box or without any key frame
    assert 0 < seg.decoded_frames < 120
    assert all(0 <= f.pts_ms <= 4000 for f in seg.frames)
    assert keep == "tail" or seg.frames[0].pts_ms == 0


def test_tail_of_a_gop_has_no_key_frame_at_its_start(ts_4s: bytes) -> None:
    # Cut a quarter in: mid first GOP, so decoding starts at the next key frame.
    tail = ts_4s[(len(ts_4s) // 4) // 188 * 188 :]
    seg = decode_segment(tail, "mpegts", limits=LIMITS, strategy="fps", sample_fps=30)
    assert 0 < seg.decoded_frames <= 60
    assert seg.frames[0].keyframe and seg.frames[0].pts_ms > 0
    keyed = decode_segment(tail, "mpegts", limits=LIMITS)
    assert len(keyed.frames) == 1 and keyed.frames[0].pts_ms > 0


def test_leading_damage_does_not_hide_the_rest() -> None:
    # Evasion check: junk or a key-frame-less GOP tail in front of a good segment
    # must not make the whole segment undecodable (it would go unmoderated).
    good = segment(seq=8)
    junk = np.random.default_rng(1).bytes(5000)
    seg = decode_segment(junk + good, "mpegts", limits=LIMITS)
    assert [f.pts_ms for f in seg.frames] == [0, 2000]
    previous = segment(seq=7)
    tail = previous[int(len(previous) * 0.75) // 188 * 188 :]
    seg = decode_segment(tail + good, "mpegts", limits=LIMITS, strategy="fps", sample_fps=1)
    assert seg.decoded_frames >= 120
    assert [f.keyframe for f in seg.frames].count(True) >= 1
    assert 4000 < seg.duration_ms <= 5000


@pytest.mark.parametrize("container", ["mpegts", "mp4", "mkv"])
@pytest.mark.parametrize("seed", range(8))
def test_bit_flips_never_crash(container: str, seed: int) -> None:
    data = bytearray(segment(container=container, duration_ms=1000, seq=seed))
    rng = np.random.default_rng(seed)
    for pos in rng.integers(0, len(data), size=40):
        data[pos] ^= 1 << int(rng.integers(0, 8))
    try:
        seg = decode_segment(bytes(data), container, limits=LIMITS, strategy="fps", sample_fps=30)
    except err.MediaError:
        return
    for frame in seg.frames:
        assert frame.image.dtype == np.uint8 and frame.image.ndim == 3
