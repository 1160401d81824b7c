"""The inference seam: one async method between the pipeline and a model runtime.

Everything that scores frames or text talks to an :class:`InferenceBackend`;
the embedded onnxruntime backend (:mod:`inference.onnx_backend`) and the test
double (:mod:`inference.testing`) both implement it, and a remote backend
(Triton, ...) can be added without touching the callers.

Signature checks live here so every backend rejects a bad request the same way:
:func:`check_inputs` raises :class:`~pipeline.errors.InferenceError` naming the
model, the tensor and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from pipeline.errors import InferenceError

__all__ = ["InferenceBackend", "TensorSpec", "check_inputs"]


class InferenceBackend(Protocol):
    """Runs named models on named input tensors; never blocks the event loop."""

    name: str

    async def infer(self, model: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run ``model`` on ``inputs`` and return its outputs by name.

        Raises:
            InferenceError: unknown model, inputs that do not match the model's
                signature, or a runtime failure.
        """
        ...

    async def close(self) -> None:
        """Release sessions, threads and connections; ``infer`` fails after this."""
        ...


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input of a model: name, shape (``None`` = any size) and dtype."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype

    def describe(self) -> str:
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}[{dims}]:{self.dtype}"


def check_inputs(
    model: str, expected: Sequence[TensorSpec], inputs: Mapping[str, np.ndarray]
) -> None:
    """Raise :class:`InferenceError` unless ``inputs`` match ``expected`` exactly.

    Names must be the same set; each array must be a numpy array of the
    declared dtype and rank, and every fixed dimension must match.
    """
    want = {spec.name: spec for spec in expected}
    missing = sorted(want.keys() - inputs.keys())
    unexpected = sorted(inputs.keys() - want.keys())
    if missing or unexpected:
        raise InferenceError(
            f"model {model!r}: input names do not match the signature "
            f"(missing {missing}, unexpected {unexpected}; "
            f"expected {[s.describe() for s in expected]})"
        )
    for name, spec in want.items():
        array = inputs[name]
        if not isinstance(array, np.ndarray):
            raise InferenceError(
                f"model {model!r}: input {name!r} is {type(array).__name__}, "
                f"expected a numpy array {spec.describe()}"
            )
        if array.dtype != spec.dtype:
            raise InferenceError(
                f"model {model!r}: input {name!r} has dtype {array.dtype}, "
                f"expected {spec.describe()}"
            )
        fits = array.ndim == len(spec.shape) and all(
            want_dim is None or want_dim == got
            for want_dim, got in zip(spec.shape, array.shape, strict=True)
        )
        if not fits:
            raise InferenceError(
                f"model {model!r}: input {name!r} has shape {tuple(array.shape)}, "
                f"expected {spec.describe()}"
            )
