"""Test doubles for the inference seam (no onnxruntime, no model files).

:class:`FakeBackend` implements :class:`~inference.backend.InferenceBackend`
with deterministic answers and records every call, so logic built on top of
inference (frame scoring, policy, agents) is tested without real models::

    backend = FakeBackend({"open_nsfw": two_class_by_mean("outputs")})
    scorer = FrameScorer(backend, model, max_batch=4)
    await scorer.score(frames)
    assert [call.batch_size for call in backend.calls] == [4, 1]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from inference.backend import TensorSpec, check_inputs
from pipeline.errors import InferenceError

__all__ = ["FakeBackend", "FakeCall", "Responder", "constant_rows", "two_class_by_mean"]

Responder = Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]
"""Maps a request's inputs to the outputs the fake model returns."""


@dataclass(frozen=True, slots=True)
class FakeCall:
    """One recorded ``infer`` call; ``inputs`` are copies taken at call time."""

    model: str
    inputs: Mapping[str, np.ndarray]

    @property
    def batch_size(self) -> int:
        return int(next(iter(self.inputs.values())).shape[0])


def _batch_size(inputs: Mapping[str, np.ndarray]) -> int:
    return int(next(iter(inputs.values())).shape[0]) if inputs else 0


def constant_rows(output_name: str, row: Sequence[float]) -> Responder:
    """Every sample gets the same output ``row`` (e.g. ``[0.9, 0.1]``)."""
    template = np.asarray(row, dtype=np.float32)

    def respond(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {output_name: np.tile(template, (_batch_size(inputs), 1))}

    return respond


def two_class_by_mean(output_name: str, low: float = -128.0, high: float = 128.0) -> Responder:
    """``[1 - p, p]`` per sample with ``p = clip((mean(sample) - low) / (high - low), 0, 1)``.

    Deterministic and content-dependent: a frame's score depends on that frame
    only, so order and batching mistakes show up in tests. The defaults suit
    mean-subtracted 0..255 pixels (open_nsfw: black 0.05, mid-grey 0.55, white 1.0).
    """

    def respond(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = next(iter(inputs.values()))
        means = batch.reshape(batch.shape[0], -1).mean(axis=1, dtype=np.float64)
        positive = np.clip((means - low) / (high - low), 0.0, 1.0).astype(np.float32)
        return {output_name: np.stack([1.0 - positive, positive], axis=1)}

    return respond


class FakeBackend:
    """In-memory :class:`~inference.backend.InferenceBackend` for unit tests.

    ``responders`` answer per model name; an unknown model raises
    :class:`InferenceError` like a real backend. With ``signatures`` the inputs
    are checked exactly as :class:`~inference.onnx_backend.EmbeddedOnnxBackend`
    checks them. ``fail_next(exc)`` makes the next call raise ``exc``.
    """

    name = "fake"

    def __init__(
        self,
        responders: Mapping[str, Responder],
        *,
        signatures: Mapping[str, Sequence[TensorSpec]] | None = None,
    ) -> None:
        self._responders = dict(responders)
        self._signatures = dict(signatures or {})
        self._failures: list[BaseException] = []
        self.calls: list[FakeCall] = []
        self.closed = False

    def fail_next(self, exc: BaseException) -> None:
        self._failures.append(exc)

    async def infer(self, model: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.closed:
            raise InferenceError(f"backend {self.name} is closed")
        responder = self._responders.get(model)
        if responder is None:
            raise InferenceError(
                f"unknown model {model!r}; this backend serves {sorted(self._responders)}"
            )
        if model in self._signatures:
            check_inputs(model, self._signatures[model], inputs)
        self.calls.append(FakeCall(model, {k: np.array(v, copy=True) for k, v in inputs.items()}))
        if self._failures:
            raise self._failures.pop(0)
        return responder(inputs)

    async def close(self) -> None:
        self.closed = True
