"""Synthetic livestream segments: real encoded video, made in memory.

``encode_segment`` draws moving content (a scrolling gradient and shapes whose
motion depends on the stream id and the sequence number, so every segment of
every stream differs) with burned-in text, encodes it with a software encoder
and muxes it into one independently decodable segment (a key frame first).

Segments of one stream carry continuous timestamps, as a live packager would
write them: segment ``seq`` starts at ``seq * duration`` (wrapping every hour).
"""

from __future__ import annotations

import io
import logging
import zlib
from dataclasses import dataclass
from fractions import Fraction

import av
import cv2
import numpy as np
import numpy.typing as npt

from pipeline.errors import UnsupportedCodec, UnsupportedContainer

__all__ = ["SYNTH_CODECS", "SYNTH_CONTAINERS", "encode_segment", "encoder_available"]

log = logging.getLogger(__name__)

_TIMESTAMP_WRAP_S = 3600


@dataclass(frozen=True)
class _EncoderSpec:
    encoder: str
    options: dict[str, str]
    containers: frozenset[str]


def _x26x_params(gop_frames: int) -> str:
    return f"keyint={gop_frames}:min-keyint={gop_frames}:scenecut=0"


# codec -> (FFmpeg encoder, containers it may go into)
SYNTH_CODECS: dict[str, tuple[str, frozenset[str]]] = {
    "h264": ("libx264", frozenset({"mpegts", "mp4", "fmp4", "mov", "mkv"})),
    "hevc": ("libx265", frozenset({"mpegts", "mp4", "fmp4", "mov", "mkv"})),
    "vp8": ("libvpx", frozenset({"webm", "mkv"})),
    "vp9": ("libvpx-vp9", frozenset({"webm", "mkv", "mp4", "fmp4"})),
    "av1": ("libsvtav1", frozenset({"webm", "mkv", "mp4", "fmp4"})),
}

# container -> (FFmpeg muxer, muxer options)
_FRAGMENTED_MP4 = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}
SYNTH_CONTAINERS: dict[str, tuple[str, dict[str, str]]] = {
    "mpegts": ("mpegts", {}),
    "mp4": ("mp4", _FRAGMENTED_MP4),
    "fmp4": ("mp4", _FRAGMENTED_MP4),
    "mov": ("mov", {}),
    "webm": ("webm", {}),
    "mkv": ("matroska", {}),
}


def encoder_available(codec: str) -> bool:
    """True when this FFmpeg build has the software encoder for ``codec``."""
    entry = SYNTH_CODECS.get(codec)
    return entry is not None and entry[0] in av.codecs_available


def _encoder_spec(codec: str, fps: int, gop_frames: int) -> _EncoderSpec:
    entry = SYNTH_CODECS.get(codec)
    if entry is None:
        raise UnsupportedCodec(
            f"synth cannot encode codec {codec!r}; known: {sorted(SYNTH_CODECS)}"
        )
    encoder, containers = entry
    if encoder not in av.codecs_available:
        raise UnsupportedCodec(f"encoder {encoder!r} for {codec!r} is not in this FFmpeg build")
    options: dict[str, str]
    if encoder == "libx264":
        options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "x264-params": _x26x_params(gop_frames),
        }
    elif encoder == "libx265":
        options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "x265-params": _x26x_params(gop_frames) + ":log-level=error",
        }
    elif encoder in ("libvpx", "libvpx-vp9"):
        options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
        if encoder == "libvpx-vp9":
            options["row-mt"] = "1"
    else:  # libsvtav1
        options = {"preset": "10", "svtav1-params": f"keyint={gop_frames}:scd=0:pred-struct=1"}
    log.debug("encoder %s fps=%d gop_frames=%d", encoder, fps, gop_frames)
    return _EncoderSpec(encoder=encoder, options=options, containers=containers)


def _seed(stream_id: str, seq: int) -> int:
    return zlib.crc32(f"{stream_id}/{seq}".encode())


def _base_gradient(width: int, height: int, seed: int) -> npt.NDArray[np.uint8]:
    """A colourful gradient twice as wide as the frame, to scroll through."""
    xs = np.linspace(0.0, 4.0 * np.pi, 2 * width, dtype=np.float32)[None, :]
    ys = np.linspace(0.0, 2.0 * np.pi, height, dtype=np.float32)[:, None]
    phase = (seed % 360) * np.pi / 180.0
    b = 127.5 + 127.5 * np.sin(xs + phase) * np.cos(ys * 0.5)
    g = 127.5 + 127.5 * np.sin(xs * 0.5 + ys + 2.0 * phase)
    r = 127.5 + 127.5 * np.cos(xs * 0.25 - ys * 0.75 + 3.0 * phase)
    return np.ascontiguousarray(np.stack([b, g, r], axis=-1).astype(np.uint8))


def _draw_frame(
    base: npt.NDArray[np.uint8],
    *,
    width: int,
    height: int,
    seed: int,
    frame_index: int,
    labels: list[str],
) -> npt.NDArray[np.uint8]:
    speed_px = 2 + seed % 7
    offset = (frame_index * speed_px) % width
    img = np.ascontiguousarray(base[:, offset : offset + width])
    # A bouncing circle and a sliding rectangle, both seeded by the stream.
    radius = max(4, min(width, height) // 8)
    span_x, span_y = max(1, width - 2 * radius), max(1, height - 2 * radius)
    t = frame_index + (seed >> 8) % 997
    cx = radius + abs((t * (3 + seed % 5)) % (2 * span_x) - span_x)
    cy = radius + abs((t * (2 + (seed >> 4) % 5)) % (2 * span_y) - span_y)
    colour = (int(seed & 0xFF), int((seed >> 8) & 0xFF), int((seed >> 16) & 0xFF))
    cv2.circle(img, (cx, cy), radius, colour, thickness=-1)
    rect_w, rect_h = max(2, width // 6), max(2, height // 10)
    rx = (t * 5) % max(1, width - rect_w)
    ry = height - rect_h - max(1, height // 20)
    cv2.rectangle(img, (rx, ry), (rx + rect_w, ry + rect_h), (255, 255, 255), thickness=-1)
    scale = max(0.3, height / 720.0)
    line_px = max(10, int(32 * scale))
    for i, label in enumerate([*labels, f"frame {frame_index}"]):
        org = (max(2, width // 64), line_px * (i + 1))
        cv2.putText(img, label, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(
            img, label, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA
        )
    return img


def encode_segment(
    *,
    stream_id: str,
    seq: int,
    width: int,
    height: int,
    fps: int,
    duration_ms: int,
    gop_frames: int | None = None,
    text: str | None = None,
    codec: str = "h264",
    container: str = "mpegts",
) -> bytes:
    """Encode one synthetic, independently decodable segment and return its bytes.

    Raises UnsupportedCodec / UnsupportedContainer when this FFmpeg build
    cannot make the requested combination, ValueError on bad sizes.
    """
    if width < 2 or height < 2 or fps < 1 or duration_ms < 1 or seq < 0:
        raise ValueError(
            f"bad segment shape {width}x{height} fps={fps} duration_ms={duration_ms} seq={seq}"
        )
    gop = gop_frames if gop_frames is not None else 2 * fps
    if gop < 1:
        raise ValueError(f"gop_frames must be >= 1, got {gop}")
    mux = SYNTH_CONTAINERS.get(container)
    if mux is None:
        raise UnsupportedContainer(
            f"synth cannot write container {container!r}; known: {sorted(SYNTH_CONTAINERS)}"
        )
    spec = _encoder_spec(codec, fps, gop)
    if spec.encoder in ("libx264", "libx265") and (width % 2 or height % 2):
        raise ValueError(f"{spec.encoder} with yuv420p needs even dimensions, got {width}x{height}")
    if container not in spec.containers:
        raise UnsupportedContainer(f"codec {codec!r} cannot go into container {container!r}")
    muxer, mux_options = mux

    n_frames = max(1, round(duration_ms * fps / 1000))
    first_pts = (seq * n_frames) % (fps * _TIMESTAMP_WRAP_S)
    seed = _seed(stream_id, seq)
    base = _base_gradient(width, height, seed)
    labels = [f"{stream_id} seq {seq}"] + ([text] if text else [])

    buf = io.BytesIO()
    with av.open(buf, mode="w", format=muxer, options=dict(mux_options)) as out:
        stream = out.add_stream(spec.encoder, rate=fps, options=dict(spec.options))
        if not isinstance(stream, av.VideoStream):
            raise UnsupportedCodec(f"{spec.encoder!r} did not make a video stream")
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        stream.codec_context.gop_size = gop
        stream.codec_context.max_b_frames = 0
        for i in range(n_frames):
            img = _draw_frame(
                base, width=width, height=height, seed=seed, frame_index=i, labels=labels
            )
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts = first_pts + i
            frame.time_base = Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()
