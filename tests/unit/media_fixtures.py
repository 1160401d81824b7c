"""Generated media for the media tests: nothing is read from the repository."""

from __future__ import annotations

import io
from fractions import Fraction
from typing import Any

import av
import numpy as np

from pipeline.simulate.synth import encode_segment

__all__ = ["audio_only", "other_video_codec", "segment", "solid_colour"]

_DEFAULTS: dict[str, Any] = {
    "stream_id": "decode-test",
    "seq": 7,
    "width": 320,
    "height": 180,
    "fps": 30,
    "duration_ms": 4000,
}


def segment(**overrides: Any) -> bytes:
    """A synthetic segment: 320x180, 30 fps, 4 s, H.264 in MPEG-TS, 2 s GOP unless overridden."""
    return encode_segment(**{**_DEFAULTS, **overrides})


def audio_only(codec: str = "mp2", fmt: str = "mpegts") -> bytes:
    """A segment holding one silent audio stream and no video."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=fmt) as out:
        stream = out.add_stream(codec, rate=48000, layout="mono")
        assert isinstance(stream, av.AudioStream)
        for i in range(10):
            samples = np.zeros((1, 1152), np.int16)
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            frame.sample_rate, frame.pts = 48000, i * 1152
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()


def _video(codec: str, fmt: str, image: np.ndarray, n_frames: int) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=fmt) as out:
        stream = out.add_stream(codec, rate=25)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = image.shape[1], image.shape[0], "yuv420p"
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()


def other_video_codec(codec: str, fmt: str) -> bytes:
    """Five black 64x64 frames in a codec the decoder must refuse (mpeg2video, mpeg4...)."""
    return _video(codec, fmt, np.zeros((64, 64, 3), np.uint8), 5)


def solid_colour(bgr: tuple[int, int, int]) -> bytes:
    """One 64x64 H.264 frame of a single BGR colour, in MPEG-TS."""
    image = np.empty((64, 64, 3), np.uint8)
    image[...] = bgr
    return _video("libx264", "mpegts", image, 1)
