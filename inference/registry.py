"""The model registry: a YAML (or JSON) file says which models run and what they feed.

The default, :data:`DEFAULT_REGISTRY` (``inference/models.yaml``, shipped in
the package), runs the built-in classifiers and OCR; its comments document the
format. A platform adds its own ONNX classifier by listing it with its input
spec, output tensor and the category each output column feeds, then pointing
the worker (or ``streamwarden scan --registry``) at that file: no code change.

Everything is checked at load time: unknown keys, bad values, missing ONNX
files and duplicate model names raise :class:`~pipeline.errors.ConfigError`.
Whether the file's tensors match the ONNX graph is checked when the backend
loads it (the embedded backend reads each model's signature).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from inference._resources import package_file, sha256_file
from inference.backend import InferenceBackend
from inference.batcher import BatchPolicy
from inference.frames import BUILTIN_FRAME_MODELS, FrameModel, InputSpec
from inference.ocr import OcrEngine, PpOcrModels, ppocr_models
from inference.ocr_det import DetParams
from inference.ocr_tess import TesseractReader
from inference.scoring import OcrSchedule
from pipeline.errors import ConfigError

__all__ = ["DEFAULT_REGISTRY", "ModelRegistry", "OcrConfig", "load_registry"]

DEFAULT_REGISTRY = Path(__file__).with_name("models.yaml")

_Strict = ConfigDict(extra="forbid", frozen=True)
_Positive = Annotated[int, Field(ge=1)]


class _InputConfig(BaseModel):
    model_config = _Strict
    name: str
    size_hw: tuple[_Positive, _Positive] = (224, 224)
    resize_hw: tuple[_Positive, _Positive] | None = None
    layout: Literal["NHWC", "NCHW"] = "NCHW"
    colour: Literal["BGR", "RGB"] = "RGB"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: float = 1.0
    fit: Literal["crop", "blurpad"] = "crop"
    dtype: Literal["float32", "float16"] = "float32"


class _FrameModelConfig(BaseModel):
    model_config = _Strict
    name: str | None = None
    enabled: bool = True
    builtin: str | None = None
    onnx: Path | None = None
    package: str | None = None
    file: str | None = None
    version: str | None = None
    input: _InputConfig | None = None
    output: str | None = None
    activation: Literal["none", "softmax", "sigmoid"] = "none"
    categories: dict[str, Annotated[int, Field(ge=0)]] | None = None
    max_batch: _Positive | None = None

    @model_validator(mode="after")
    def _one_source(self) -> _FrameModelConfig:
        sources = [self.builtin is not None, self.onnx is not None, self.package is not None]
        if sum(sources) != 1:
            raise ValueError("give exactly one of builtin, onnx, package (+ file)")
        if (self.package is None) != (self.file is None):
            raise ValueError("package and file go together")
        custom = [self.input, self.output, self.categories]
        if self.builtin is None and any(v is None for v in custom):
            raise ValueError("a custom model needs input, output and categories")
        if self.builtin is not None and any(v is not None for v in custom):
            raise ValueError("a builtin model takes no input/output/categories")
        if self.builtin is None and self.name is None:
            raise ValueError("a custom model needs a name")
        if self.categories is not None and not self.categories:
            raise ValueError("categories must not be empty")
        return self


class OcrConfig(BaseModel):
    """The registry's ``ocr`` section."""

    model_config = _Strict
    enabled: bool = True
    every_nth_frame: _Positive = 1
    max_per_segment: Annotated[int, Field(ge=0)] = 1
    every_nth_segment: _Positive = 1
    min_confidence: Annotated[float, Field(ge=0, le=1)] = 0.5
    det_limit_side_px: Annotated[int, Field(ge=32)] = 736
    max_batch: _Positive = 8
    cyrillic: bool = True
    tessdata: Path | None = None


class _BatchingConfig(BaseModel):
    model_config = _Strict
    max_batch: _Positive = 16
    max_wait_ms: Annotated[float, Field(ge=0)] = 5.0
    max_queue: _Positive = 256
    max_inflight: _Positive = 1


class _RegistryConfig(BaseModel):
    model_config = _Strict
    version: Literal[1] = 1
    frame_models: list[_FrameModelConfig] = Field(default_factory=list)
    ocr: OcrConfig = Field(default_factory=lambda: OcrConfig(enabled=False))
    batching: _BatchingConfig = Field(default_factory=_BatchingConfig)


@dataclass(frozen=True)
class ModelRegistry:
    """The loaded registry: models resolved to files, ready to build scorers from."""

    frame_models: tuple[FrameModel, ...]
    ocr_models: PpOcrModels | None
    ocr_config: OcrConfig
    ocr_schedule: OcrSchedule
    batching: BatchPolicy
    per_model_batching: Mapping[str, BatchPolicy] = field(default_factory=dict)
    source: Path = DEFAULT_REGISTRY

    def onnx_files(self, *, ocr: bool = True) -> dict[str, Path]:
        """``{model name: ONNX path}`` of every model to load in a backend (OCR's if ``ocr``)."""
        files = {m.name: m.onnx_path for m in self.frame_models}
        if ocr and self.ocr_models is not None:
            files |= self.ocr_models.onnx_files()
        return files

    def build_ocr(self, backend: InferenceBackend) -> OcrEngine | None:
        """The OCR engine on ``backend`` (loads tesseract when Cyrillic is on); None if off."""
        if self.ocr_models is None:
            return None
        config = self.ocr_config
        reader = TesseractReader(tessdata=config.tessdata) if config.cyrillic else None
        return OcrEngine(
            backend,
            self.ocr_models,
            det=DetParams(limit_side_px=config.det_limit_side_px),
            cyrillic=reader,
            min_confidence=config.min_confidence,
            max_batch=config.max_batch,
        )


def _short_hash(path: Path) -> str:
    return "sha256." + sha256_file(path)[:12]


def _custom_model(entry: _FrameModelConfig, base: Path) -> FrameModel:
    assert entry.input is not None and entry.output is not None and entry.categories is not None
    if entry.onnx is not None:
        path = entry.onnx if entry.onnx.is_absolute() else base / entry.onnx
        if not path.is_file():
            raise ConfigError(f"frame model {entry.name!r}: ONNX file not found: {path}")
    else:
        assert entry.package is not None and entry.file is not None
        path = package_file(entry.package, entry.file)
    spec = entry.input
    return FrameModel(
        name=str(entry.name),
        version=entry.version or _short_hash(path),
        onnx_path=path,
        input=InputSpec(
            name=spec.name,
            size_hw=spec.size_hw,
            resize_hw=spec.resize_hw,
            layout=spec.layout,
            colour=spec.colour,
            mean=spec.mean,
            scale=spec.scale,
            fit=spec.fit,
            dtype=np.dtype(spec.dtype),
        ),
        output_name=entry.output,
        categories=dict(entry.categories),
        activation=entry.activation,
    )


def _frame_model(entry: _FrameModelConfig, base: Path) -> FrameModel:
    if entry.builtin is None:
        return _custom_model(entry, base)
    factory = BUILTIN_FRAME_MODELS.get(entry.builtin)
    if factory is None:
        raise ConfigError(
            f"unknown builtin {entry.builtin!r}; known: {sorted(BUILTIN_FRAME_MODELS)}"
        )
    model = factory()
    if entry.name is not None and entry.name != model.name:
        model = FrameModel(
            entry.name, model.version, model.onnx_path, model.input,
            model.output_name, model.categories, model.activation,
        )  # fmt: skip
    return model


def _read(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML too
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read model registry {path}: {exc}") from exc


def load_registry(path: Path | str | None = None) -> ModelRegistry:
    """Load and resolve a registry file (default: the shipped ``models.yaml``)."""
    source = Path(path) if path is not None else DEFAULT_REGISTRY
    try:
        config = _RegistryConfig.model_validate(_read(source) or {})
    except ValidationError as exc:
        raise ConfigError(f"model registry {source} is invalid:\n{exc}") from exc
    entries = [e for e in config.frame_models if e.enabled]
    models = tuple(_frame_model(e, source.parent) for e in entries)
    names = [m.name for m in models]
    ocr = config.ocr
    ocr_models = ppocr_models() if ocr.enabled else None
    reserved = set(ocr_models.onnx_files()) if ocr_models else set()
    clashes = sorted({n for n in names if names.count(n) > 1 or n in reserved})
    if clashes:
        raise ConfigError(f"model registry {source}: model names used twice: {clashes}")
    b = config.batching
    default = BatchPolicy(b.max_batch, b.max_wait_ms, b.max_queue, b.max_inflight)
    per_model = {
        m.name: BatchPolicy(e.max_batch, b.max_wait_ms, b.max_queue, b.max_inflight)
        for m, e in zip(models, entries, strict=True)
        if e.max_batch is not None
    }
    if ocr_models is not None:
        # Detection inputs are whole frames: small batches keep latency and memory down.
        per_model[ocr_models.det_name] = BatchPolicy(
            min(ocr.max_batch, b.max_batch), b.max_wait_ms, b.max_queue, b.max_inflight
        )
    return ModelRegistry(
        frame_models=models,
        ocr_models=ocr_models,
        ocr_config=ocr,
        ocr_schedule=OcrSchedule(
            ocr.every_nth_frame, ocr.max_per_segment, ocr.enabled, ocr.every_nth_segment
        ),
        batching=default,
        per_model_batching=per_model,
        source=source,
    )
