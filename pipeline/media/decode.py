"""Decode one livestream segment (bytes) into sampled BGR frames, safely.

The bytes are hostile: the container name picks an explicit demuxer from an
allow-list (no probing, never a filename); playlists, concat scripts and SDP are
refused before FFmpeg sees them; the demuxer may open nothing else
(``format_whitelist``, no mov drefs, an ``io_open`` hook that refuses); codec,
size, duration and frame count are bounded by :class:`MediaLimits`. Errors: :mod:`pipeline.errors`.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, NoReturn

import av
import av.container
import numpy as np
import numpy.typing as npt
from av.video.stream import VideoStream

from pipeline import errors as err
from pipeline.media.sampling import THUMB_PX, SceneDetector, luma_thumbnail

__all__ = ["DecodedSegment", "MediaLimits", "SampledFrame", "SamplingStrategy", "decode_segment"]

log = logging.getLogger(__name__)

SamplingStrategy = Literal["keyframes", "fps", "scene"]

# Container name (as producers declare it) -> the one FFmpeg demuxer used for it.
CONTAINER_DEMUXERS: dict[str, str] = {
    "mpegts": "mpegts",
    "mp4": "mov",
    "fmp4": "mov",
    "mov": "mov",
    "webm": "matroska",
    "mkv": "matroska",
}
# Canonical codec names (AVCodecDescriptor), not decoder names (av1 -> libdav1d).
ALLOWED_CODECS: frozenset[str] = frozenset({"h264", "hevc", "vp8", "vp9", "av1"})

# External data references and absolute paths would make mov open other files.
_DEMUXER_OPTIONS = {"mov": {"enable_drefs": "0", "use_absolute_path": "0"}}
_SNIFF_BYTES = 1024
# Text that makes FFmpeg (or a player) fetch other resources.
_INDIRECTION_MARKERS = (b"#EXTM3U", b"#EXT-X-", b"ffconcat version", b"<MPD", b"<?xml", b"<smil")
_TEXT_BYTES = frozenset(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D}
_GRID_TOLERANCE_S = Fraction(1, 1000)  # Matroska/WebM store 33.33 ms as 33
# Pixel formats whose first plane is 8-bit luma: a scene thumbnail reads it in place.
_LUMA_FIRST_FORMATS = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21", "gray"}
)


@dataclass(frozen=True)
class MediaLimits:
    """Bounds on one segment; anything beyond them is refused, not truncated."""

    max_bytes: int = 16 * 1024 * 1024
    max_width: int = 3840
    max_height: int = 2160
    max_pixels: int = 3840 * 2160
    max_duration_ms: int = 30_000
    max_decoded_frames: int = 1000


@dataclass(frozen=True)
class SampledFrame:
    """One decoded frame: ``image`` is (H, W, 3) uint8 BGR (OpenCV order)."""

    pts_ms: int  # from the segment start (its first packet)
    image: npt.NDArray[np.uint8]
    keyframe: bool


@dataclass(frozen=True)
class DecodedSegment:
    container: str
    codec: str
    width: int  # coded size from the stream header, before any downscale
    height: int
    duration_ms: int
    frames: tuple[SampledFrame, ...]
    decoded_frames: int  # frames the decoder produced, sampled or not
    decode_errors: int = 0  # damaged packets skipped (or a demux error ending it)


def _sniff(data: bytes, limits: MediaLimits) -> None:
    if not data:
        raise err.EmptyPayload("segment payload is empty")
    if len(data) > limits.max_bytes:
        raise err.PayloadTooLarge(f"segment is {len(data)} bytes, limit {limits.max_bytes}")
    head = data[:_SNIFF_BYTES].lstrip(b"\xef\xbb\xbf \t\r\n")
    for marker in _INDIRECTION_MARKERS:
        if marker in head:
            raise err.NotMedia(f"payload looks like a playlist or script ({marker!r}), not media")
    if head.startswith((b"v=0", b"file ")):
        raise err.NotMedia("payload looks like an SDP description or concat list, not media")
    if head and all(byte in _TEXT_BYTES for byte in head):
        raise err.NotMedia("payload is plain text, not media")


def _refuse_nested_open(url: str, flags: int, options: dict[str, str]) -> NoReturn:
    """``io_open`` hook: a segment must be self-contained, so no demuxer may open more."""
    del flags, options
    raise err.NotMedia(f"segment tried to open another resource: {url[:200]!r}")


def _open_input(data: bytes, demuxer: str) -> av.container.InputContainer:
    options = {
        "format_whitelist": demuxer,
        # No frame decoding to guess a frame rate while opening (3 ms of a 9 ms key-frame
        # pass on a 720p segment): timestamps come from the packets, the rate is unused.
        "fpsprobesize": "0",
        **_DEMUXER_OPTIONS.get(demuxer, {}),
    }
    return av.open(  # a file object, never a name: FFmpeg gets no path or URL to follow
        io.BytesIO(data),
        "r",
        format=demuxer,
        container_options=options,
        io_open=_refuse_nested_open,
    )


def _check_size(width: int, height: int, limits: MediaLimits, where: str) -> None:
    if width > limits.max_width or height > limits.max_height or width * height > limits.max_pixels:
        raise err.ResolutionTooLarge(
            f"{where} is {width}x{height}, limit {limits.max_width}x{limits.max_height} "
            f"and {limits.max_pixels} pixels"
        )


def _pick_video_stream(container: av.container.InputContainer) -> tuple[VideoStream, str]:
    videos = list(container.streams.video)
    if not videos:
        raise err.NoVideoStream("segment has no video stream")
    seen: list[str] = []
    for stream in videos:
        ctx = stream.codec_context
        codec = ctx.codec.canonical_name if ctx is not None else "unknown"
        if codec in ALLOWED_CODECS:
            return stream, codec
        seen.append(codec)
    raise err.UnsupportedCodec(f"video codec(s) {seen} not in {sorted(ALLOWED_CODECS)}")


def _to_bgr(frame: av.VideoFrame, max_side_px: int | None) -> npt.NDArray[np.uint8]:
    """BGR pixels; scaled by swscale (keeping aspect) so the longer side fits max_side_px."""
    longer = max(frame.width, frame.height)
    if max_side_px is None or longer <= max_side_px:
        return np.ascontiguousarray(frame.to_ndarray(format="bgr24"))
    w, h = (max(1, round(side * max_side_px / longer)) for side in (frame.width, frame.height))
    small = frame.reformat(width=w, height=h, format="bgr24", interpolation="AREA")
    return np.ascontiguousarray(small.to_ndarray())


def _thumbnail(frame: av.VideoFrame) -> npt.NDArray[np.uint8]:
    """The scene thumbnail: from the luma plane in place, or via swscale for other formats."""
    if frame.format.name in _LUMA_FIRST_FORMATS:
        plane = frame.planes[0]
        rows = np.frombuffer(memoryview(plane), np.uint8, count=plane.line_size * plane.height)
        luma = rows.reshape(plane.height, plane.line_size)[:, : plane.width]
    else:  # 10-bit, RGB...: let swscale make a small gray picture first
        side = 2 * THUMB_PX
        gray = frame.reformat(width=side, height=side, format="gray").to_ndarray()
        luma = np.asarray(gray, dtype=np.uint8)
    return luma_thumbnail(luma)


class _Walk:
    """One pass over a video stream's packets: bounds, key-frame skipping, sampling."""

    def __init__(
        self,
        container: av.container.InputContainer,
        limits: MediaLimits,
        *,
        strategy: SamplingStrategy,
        sample_fps: float,
        max_side_px: int | None,
        scene_threshold: float,
        scene_check_fps: float,
    ) -> None:
        self.container, self.limits, self.max_side_px = container, limits, max_side_px
        self.keyframes_only = strategy == "keyframes"
        self.scene = SceneDetector(scene_threshold) if strategy == "scene" else None
        grid_fps = scene_check_fps if self.scene is not None else sample_fps
        self.grid_fps = Fraction(grid_fps).limit_denominator(1000)
        self.next_grid_k = 0
        self.stream, self.codec = _pick_video_stream(container)
        ctx = self.stream.codec_context
        self.width, self.height = ctx.width, ctx.height
        _check_size(self.width, self.height, limits, "stream header")
        # No check of the header's duration (Matroska writes the end time): packets bound it.
        self.time_base = self.stream.time_base or Fraction(0)
        if self.time_base <= 0:
            raise err.CorruptMedia("video stream has no usable time base")
        self.frames: list[SampledFrame] = []
        self.start: int | None = None
        self.end_ticks = self.decoded = self.errors = 0
        # The duration bound in integers: end_ticks * tb * 1000 > max_ms, without a Fraction
        # per packet (a Fraction product costs more than the check is worth on every packet).
        self.bound_lhs = self.time_base.numerator * 1000
        self.bound_rhs = limits.max_duration_ms * self.time_base.denominator
        self.last_error: Exception | None = None
        self.key_flags_seen = False

    def run(self) -> None:
        ctx = self.stream.codec_context
        ctx.options = {"max_pixels": str(self.limits.max_pixels)}  # also bounds mid-stream SPS
        # Slice threads only: frame threads cost ~20 % more CPU over a whole GOP (measured on
        # 720p/1080p synth segments) and twice the time on key frames alone; a worker decodes
        # segments in parallel (SW_DECODE_THREADS): CPU, not one segment's latency, bounds it.
        ctx.thread_type = "SLICE"
        if self.keyframes_only:
            ctx.skip_frame = "NONKEY"
        packets = self.container.demux(self.stream)
        while True:
            try:
                packet = next(packets, None)
            except av.FFmpegError as exc:  # keep what decoded before the damage
                self._error(exc)
                self._feed(None)
                break
            if packet is None:
                break
            self._packet(packet)
        if self.decoded == 0:
            msg = f"segment decoded to zero frames ({self.errors} decode errors)"
            raise err.CorruptMedia(msg) from self.last_error

    def _error(self, exc: Exception) -> None:
        self.errors += 1
        self.last_error = exc
        log.debug("decode error %d: %s", self.errors, exc)

    def _packet(self, packet: av.Packet) -> None:
        ts = packet.pts if packet.pts is not None else packet.dts
        if ts is not None:
            self.start = ts if self.start is None else self.start
            self.end_ticks = max(self.end_ticks, ts - self.start + max(0, packet.duration or 0))
            if self.end_ticks * self.bound_lhs > self.bound_rhs:
                raise err.DurationTooLong(f"segment runs past {self.limits.max_duration_ms} ms")
        if self.keyframes_only and packet.size > 0:
            # Some decoders (vp9) ignore skip_frame: once the container has
            # shown that it flags key packets, do not even hand over the rest.
            self.key_flags_seen |= packet.is_keyframe
            if self.key_flags_seen and not packet.is_keyframe:
                return
        self._feed(packet)

    def _feed(self, packet: av.Packet | None) -> None:
        """Decode one packet (None drains the decoder); a damaged one is counted, skipped."""
        try:
            frames = self.stream.decode(packet)
        except av.FFmpegError as exc:  # one damaged packet must not hide the rest
            self._error(exc)
            return
        for frame in frames:
            self._frame(frame)

    def _frame(self, frame: av.VideoFrame) -> None:
        self.decoded += 1
        if self.decoded > self.limits.max_decoded_frames:
            raise err.TooManyFrames(
                f"segment decodes to over {self.limits.max_decoded_frames} frames"
            )
        _check_size(frame.width, frame.height, self.limits, "decoded frame")
        ts = frame.pts if frame.pts is not None else frame.dts
        if ts is None or self.start is None or (self.keyframes_only and not frame.key_frame):
            return
        t_s = max(Fraction(0), (ts - self.start) * self.time_base)
        if not self.keyframes_only:
            # Keep the first frame at or after each grid point k / sample_fps.
            grid_pos = (t_s + _GRID_TOLERANCE_S) * self.grid_fps
            if grid_pos < self.next_grid_k:
                return
            self.next_grid_k = int(grid_pos) + 1
            if self.scene is not None and not self.scene.consider(_thumbnail(frame)):
                return
        image = _to_bgr(frame, self.max_side_px)
        self.frames.append(SampledFrame(int(t_s * 1000), image, bool(frame.key_frame)))

    def result(self, container_name: str) -> DecodedSegment:
        log.debug("decoded %s/%s frames=%d kept=%d errors=%d", container_name, self.codec,
                  self.decoded, len(self.frames), self.errors)  # fmt: skip
        return DecodedSegment(
            container=container_name,
            codec=self.codec,
            width=self.width,
            height=self.height,
            duration_ms=int(self.end_ticks * self.time_base * 1000),
            frames=tuple(self.frames),
            decoded_frames=self.decoded,
            decode_errors=self.errors,
        )


def decode_segment(
    data: bytes,
    container: str,
    *,
    limits: MediaLimits,
    strategy: SamplingStrategy = "keyframes",
    sample_fps: float = 1.0,
    max_side_px: int | None = None,
    scene_threshold: float = 12.0,
    scene_check_fps: float = 5.0,
) -> DecodedSegment:
    """Demux and decode one segment, keeping key frames, frames on an fps grid, or scene changes.

    ``scene``: on a ``scene_check_fps`` grid, a frame whose gray thumbnail differs from the
    last kept one by at least ``scene_threshold`` (mean absolute luma difference, 0-255);
    the first frame is always kept. See :mod:`pipeline.media.sampling`.

    Raises a :class:`pipeline.errors.MediaError` subclass for every bad input;
    ValueError only for bad arguments (a caller bug).
    """
    bad_side = max_side_px is not None and max_side_px < 1
    bad_scene = not scene_threshold > 0 or not scene_check_fps > 0
    if strategy not in ("keyframes", "fps", "scene") or not sample_fps > 0 or bad_side or bad_scene:
        raise ValueError(f"bad sampling {strategy=} {sample_fps=} {max_side_px=}")
    demuxer = CONTAINER_DEMUXERS.get(container)
    if demuxer is None:
        raise err.UnsupportedContainer(f"{container!r} not in {sorted(CONTAINER_DEMUXERS)}")
    _sniff(data, limits)
    try:
        with _open_input(data, demuxer) as opened:
            walk = _Walk(
                opened,
                limits,
                strategy=strategy,
                sample_fps=sample_fps,
                max_side_px=max_side_px,
                scene_threshold=scene_threshold,
                scene_check_fps=scene_check_fps,
            )
            walk.run()
            return walk.result(container)
    except av.FFmpegError as exc:
        raise err.CorruptMedia(f"FFmpeg could not read the {container} segment: {exc}") from exc
    except (ValueError, OverflowError, ZeroDivisionError) as exc:
        raise err.CorruptMedia(f"malformed {container} segment: {exc}") from exc
