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


def _x26x_params(gop_frames: int, bitrate_bps: int | None = None) -> str:
    params = f"keyint={gop_frames}:min-keyint={gop_frames}:scenecut=0"
    if bitrate_bps is not None:  # average bitrate, held near the target by a 1 s VBV buffer
        kbps = max(1, bitrate_bps // 1000)
        params += f":bitrate={kbps}:vbv-maxrate={kbps}:vbv-bufsize={kbps}"
    return params


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


def _encoder_spec(
    codec: str, fps: int, gop_frames: int, bitrate_bps: int | None = None
) -> _EncoderSpec:
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
            "x264-params": _x26x_params(gop_frames, bitrate_bps),
        }
    elif encoder == "libx265":
        options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "x265-params": _x26x_params(gop_frames, bitrate_bps) + ":log-level=error",
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


_GRAIN_MARGIN_PX = 64


def _grain_field(width: int, height: int, seed: int, sigma: float) -> npt.NDArray[np.int16]:
    """Gaussian grain a little larger than the frame; each frame reads it at another offset."""
    rng = np.random.default_rng(seed)
    shape = (height + _GRAIN_MARGIN_PX, width + _GRAIN_MARGIN_PX, 1)
    return np.rint(rng.normal(0.0, sigma, shape)).astype(np.int16)


def _add_grain(
    img: npt.NDArray[np.uint8], field: npt.NDArray[np.int16], frame_index: int
) -> npt.NDArray[np.uint8]:
    height, width = img.shape[:2]
    dy = (frame_index * 37) % _GRAIN_MARGIN_PX
    dx = (frame_index * 53 + 11) % _GRAIN_MARGIN_PX
    noisy = img + field[dy : dy + height, dx : dx + width]  # int16: no wrap-around
    return np.clip(noisy, 0, 255).astype(np.uint8)


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
    bitrate_bps: int | None = None,
    grain: float = 0.0,
) -> bytes:
    """Encode one synthetic, independently decodable segment and return its bytes.

    ``bitrate_bps``: a target average bitrate (x264/x265: ABR with a 1 s VBV buffer; other
    encoders: their own rate control); None: constant quality (x264's CRF 23).
    ``grain``: camera-like noise, the standard deviation in 8-bit levels of a grain that
    moves every frame (0: clean). Clean synthetic motion costs an encoder almost nothing
    between key frames; with grain 2, 720p30 fills 3 Mbit/s like a camera would.
    Raises UnsupportedCodec / UnsupportedContainer when this FFmpeg build
    cannot make the requested combination, ValueError on bad sizes.
    """
    if bitrate_bps is not None and bitrate_bps < 1000:
        raise ValueError(f"bitrate_bps must be >= 1000, got {bitrate_bps}")
    if not 0 <= grain <= 64:
        raise ValueError(f"grain must be in [0, 64], got {grain}")
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
    spec = _encoder_spec(codec, fps, gop, bitrate_bps)
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
    noise = _grain_field(width, height, seed, grain) if grain > 0 else None

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
        if bitrate_bps is not None:
            stream.codec_context.bit_rate = bitrate_bps
        for i in range(n_frames):
            img = _draw_frame(
                base, width=width, height=height, seed=seed, frame_index=i, labels=labels
            )
            if noise is not None:
                img = _add_grain(img, noise, i)
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts = first_pts + i
            frame.time_base = Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()
