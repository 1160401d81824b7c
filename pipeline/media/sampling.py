"""Which frames of a segment to look at: sampling strategies and per-stream state. Pure code.

Strategies (``SamplingConfig.strategy``):

* ``keyframes``: key frames only; non-key frames are never decoded (the cheap default);
* ``fps``: the first frame at or after each point of a ``fps`` time grid;
* ``scene``: a frame whose small gray thumbnail differs from the last sampled one by at
  least ``scene_threshold`` (mean absolute luma difference, 0-255), checked on a
  ``scene_check_fps`` grid; the first frame of a segment is always kept;
* ``adaptive``: key frames while the stream looks safe; once a segment's score reaches
  ``adaptive_trigger_score`` (near the policy's thresholds), ``adaptive_fps`` frames per
  second until ``adaptive_hold_s`` of stream time pass without another such score.

Time is the stream's own (segment ``started_at`` + offsets), never the worker's clock,
so a stream replayed in the same order is sampled the same way. A control record can
override a stream's configuration at run time (:class:`SamplingOverrides`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

import cv2
import numpy as np
import numpy.typing as npt

__all__ = [
    "DecodeStrategy",
    "SamplePlan",
    "SamplingConfig",
    "SamplingOverrides",
    "SceneDetector",
    "Strategy",
    "StreamSampling",
    "luma_thumbnail",
]

Strategy = Literal["keyframes", "fps", "scene", "adaptive"]
DecodeStrategy = Literal["keyframes", "fps", "scene"]  # what one segment's decode does
STRATEGIES: tuple[str, ...] = get_args(Strategy)

THUMB_PX = 64  # scene thumbnails are THUMB_PX x THUMB_PX gray
_MAX_FPS = 30.0


@dataclass(frozen=True, slots=True)
class SamplingConfig:
    """How one stream is sampled (the settings' default, or a control override)."""

    strategy: Strategy = "keyframes"
    fps: float = 1.0
    scene_threshold: float = 12.0
    scene_check_fps: float = 5.0
    adaptive_fps: float = 5.0
    adaptive_trigger_score: float = 0.35
    adaptive_hold_s: float = 30.0

    def __post_init__(self) -> None:
        rates = (self.fps, self.scene_check_fps, self.adaptive_fps)
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown sampling strategy {self.strategy!r}")
        if not all(0 < r <= _MAX_FPS for r in rates):
            raise ValueError(f"sampling rates must be in (0, {_MAX_FPS}], got {rates}")
        if not 0 < self.scene_threshold <= 255:
            raise ValueError(f"scene_threshold must be in (0, 255], got {self.scene_threshold}")
        if not 0 <= self.adaptive_trigger_score <= 1 or self.adaptive_hold_s < 0:
            raise ValueError("adaptive_trigger_score must be in [0, 1], adaptive_hold_s >= 0")

    def merged(self, fields: Mapping[str, Any]) -> SamplingConfig:
        """This config with ``fields`` (a control record's ``sampling`` object) laid over it."""
        unknown = set(fields) - set(self.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown sampling fields {sorted(unknown)}")
        return replace(self, **fields)


@dataclass(frozen=True, slots=True)
class SamplePlan:
    """What the decoder does with one segment."""

    strategy: DecodeStrategy
    fps: float = 1.0
    scene_threshold: float = 12.0
    scene_check_fps: float = 5.0
    boosted: bool = False  # adaptive sampling in its dense phase
    overridden: bool = False  # a control record chose the configuration

    @property
    def label(self) -> str:
        """For metrics: the strategy actually run, ``adaptive-dense`` while boosted."""
        return "adaptive-dense" if self.boosted else self.strategy


def plan_for(config: SamplingConfig, *, boosted: bool = False) -> SamplePlan:
    """The decode plan of ``config``; ``boosted`` only matters to ``adaptive``."""
    strategy: DecodeStrategy
    fps = config.fps
    if config.strategy == "adaptive":
        strategy, fps = ("fps", config.adaptive_fps) if boosted else ("keyframes", fps)
    else:
        strategy, boosted = config.strategy, False
    return SamplePlan(strategy, fps, config.scene_threshold, config.scene_check_fps, boosted)


def luma_thumbnail(luma: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """A THUMB_PX x THUMB_PX gray thumbnail of a luma plane (a 2-D uint8 view).

    Sub-sampling first, then area averaging: 40x cheaper than area-resizing the whole
    plane, and still averages enough pixels that encoder noise does not register.
    """
    if luma.ndim != 2 or luma.size == 0:
        raise ValueError(f"expected a 2-D luma plane, got shape {luma.shape}")
    step = max(1, min(luma.shape) // (2 * THUMB_PX))
    sub = luma[::step, ::step]
    thumb = cv2.resize(sub, (THUMB_PX, THUMB_PX), interpolation=cv2.INTER_AREA)
    return np.asarray(thumb, dtype=np.uint8)


class SceneDetector:
    """Keeps a thumbnail when it differs enough from the last kept one (within one segment).

    Comparing with the last *kept* thumbnail, not the previous frame, lets a slow fade
    or pan add up until it counts.
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._last: npt.NDArray[np.uint8] | None = None

    def difference(self, thumb: npt.NDArray[np.uint8]) -> float:
        """Mean absolute difference (0-255) from the last kept thumbnail; inf if none."""
        if self._last is None:
            return float("inf")
        return float(cv2.absdiff(thumb, self._last).mean())

    def consider(self, thumb: npt.NDArray[np.uint8]) -> bool:
        """True (and remember ``thumb``) when it starts a new scene."""
        if self.difference(thumb) < self.threshold:
            return False
        self._last = thumb
        return True


class SamplingOverrides:
    """Per-stream configurations set at run time (the control topic); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_stream: dict[str, SamplingConfig] = {}

    def set(self, stream_id: str, config: SamplingConfig | None) -> None:
        """Set ``stream_id``'s configuration; ``None`` clears it (back to the default)."""
        with self._lock:
            if config is None:
                self._by_stream.pop(stream_id, None)
            else:
                self._by_stream[stream_id] = config

    def get(self, stream_id: str) -> SamplingConfig | None:
        with self._lock:
            return self._by_stream.get(stream_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_stream)


@dataclass
class _AdaptiveState:
    boosted_until_ms: int | None = None  # stream time, epoch ms


class StreamSampling:
    """Plans each segment's sampling from the default, overrides and adaptive state.

    The adaptive state is kept for at most ``max_streams`` streams (least recently seen
    evicted: a forgotten stream starts relaxed). Thread-safe: segments are prepared in
    an executor.
    """

    def __init__(
        self,
        default: SamplingConfig,
        overrides: SamplingOverrides | None = None,
        *,
        max_streams: int = 10_000,
    ) -> None:
        if max_streams < 1:
            raise ValueError("max_streams must be >= 1")
        self.default = default
        self.overrides = overrides if overrides is not None else SamplingOverrides()
        self._max_streams = max_streams
        self._lock = threading.Lock()
        self._states: OrderedDict[str, _AdaptiveState] = OrderedDict()

    def config_for(self, stream_id: str) -> SamplingConfig:
        return self.overrides.get(stream_id) or self.default

    def plan(self, stream_id: str, start_ms: int) -> SamplePlan:
        """The plan of the segment of ``stream_id`` that starts at ``start_ms`` (epoch ms)."""
        override = self.overrides.get(stream_id)
        config = override or self.default
        boosted = False
        if config.strategy == "adaptive":
            with self._lock:
                state = self._states.get(stream_id)
                until = state.boosted_until_ms if state else None
            boosted = until is not None and start_ms < until
        plan = plan_for(config, boosted=boosted)
        return replace(plan, overridden=True) if override is not None else plan

    def observe(self, stream_id: str, end_ms: int, max_score: float) -> bool:
        """Feed a segment's highest score (any category); True when it boosts the stream."""
        config = self.config_for(stream_id)
        if config.strategy != "adaptive" or max_score < config.adaptive_trigger_score:
            return False
        until = end_ms + round(config.adaptive_hold_s * 1000)
        with self._lock:
            state = self._states.pop(stream_id, None) or _AdaptiveState()
            if state.boosted_until_ms is None or until > state.boosted_until_ms:
                state.boosted_until_ms = until
            self._states[stream_id] = state  # most recently seen last
            while len(self._states) > self._max_streams:
                self._states.popitem(last=False)
        return True
