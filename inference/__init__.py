"""Inference: the backend seam, the models, the micro-batcher and the scorers.

The public names are re-exported here and imported lazily (PEP 562), so
``import inference.backend`` does not load onnxruntime, OpenCV or scikit-learn.

    from inference import EmbeddedOnnxBackend, MicroBatcher, MultiFrameScorer, load_registry

    registry = load_registry()                      # inference/models.yaml, or your own file
    backend = EmbeddedOnnxBackend(registry.onnx_files())
    batcher = MicroBatcher(backend, registry.batching, per_model=registry.per_model_batching)
    scorer = MultiFrameScorer(batcher, registry.frame_models,
                              ocr=registry.build_ocr(batcher), ocr_schedule=registry.ocr_schedule)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inference.backend import InferenceBackend, TensorSpec
    from inference.batcher import BatchPolicy, MicroBatcher
    from inference.frames import FrameModel, FrameScorer, InputSpec, load_frame_model
    from inference.ocr import OcrEngine, OcrLine, ppocr_models
    from inference.onnx_backend import EmbeddedOnnxBackend
    from inference.registry import ModelRegistry, load_registry
    from inference.scoring import FrameAnalysis, MultiFrameScorer, OcrSchedule
    from inference.text import ChatScorer, TextScore

_EXPORTS: dict[str, str] = {
    "InferenceBackend": "inference.backend",
    "TensorSpec": "inference.backend",
    "BatchPolicy": "inference.batcher",
    "MicroBatcher": "inference.batcher",
    "FrameModel": "inference.frames",
    "FrameScorer": "inference.frames",
    "InputSpec": "inference.frames",
    "load_frame_model": "inference.frames",
    "OcrEngine": "inference.ocr",
    "OcrLine": "inference.ocr",
    "ppocr_models": "inference.ocr",
    "EmbeddedOnnxBackend": "inference.onnx_backend",
    "ModelRegistry": "inference.registry",
    "load_registry": "inference.registry",
    "FrameAnalysis": "inference.scoring",
    "MultiFrameScorer": "inference.scoring",
    "OcrSchedule": "inference.scoring",
    "ChatScorer": "inference.text",
    "TextScore": "inference.text",
}

__all__ = [
    "BatchPolicy",
    "ChatScorer",
    "EmbeddedOnnxBackend",
    "FrameAnalysis",
    "FrameModel",
    "FrameScorer",
    "InferenceBackend",
    "InputSpec",
    "MicroBatcher",
    "ModelRegistry",
    "MultiFrameScorer",
    "OcrEngine",
    "OcrLine",
    "OcrSchedule",
    "TensorSpec",
    "TextScore",
    "load_frame_model",
    "load_registry",
    "ppocr_models",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'inference' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
