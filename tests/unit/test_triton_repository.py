"""Triton model repository export: config.pbtxt text, folder layout, the Python-backend model."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from inference import _triton_model
from inference.frames import InputSpec, open_nsfw
from inference.repository import (
    MODEL_TEMPLATE,
    TensorConfig,
    default_preferred_batch_sizes,
    export_repository,
    main,
    render_config,
)
from pipeline.errors import ConfigError

IMAGE = TensorConfig("input:0", np.dtype(np.float32), (224, 224, 3))
PROBS = TensorConfig("outputs", np.dtype(np.float32), (2,))


def parse(text: str) -> Any:
    """Parse with Triton's own ModelConfig proto: unknown fields or enums fail here."""
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def test_cpu_config_is_a_batched_python_model() -> None:
    text = render_config("open_nsfw", "cpu", [IMAGE], [PROBS], max_queue_delay_us=500, instances=2)
    config = parse(text)
    assert config.name == "open_nsfw"
    assert config.backend == "python"
    assert config.max_batch_size == 32
    assert [(t.name, list(t.dims)) for t in config.input] == [("input:0", [224, 224, 3])]
    assert [(t.name, list(t.dims)) for t in config.output] == [("outputs", [2])]
    assert config.input[0].data_type == model_config_pb2.TYPE_FP32
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8, 16, 32]
    assert [(g.count, g.kind) for g in config.instance_group] == [
        (2, model_config_pb2.ModelInstanceGroup.KIND_CPU)
    ]
    assert config.parameters["intra_op_threads"].string_value == "1"
    assert not config.optimization.execution_accelerators.gpu_execution_accelerator


def test_gpu_config_uses_onnxruntime_with_tensorrt_fp16() -> None:
    text = render_config("m", "gpu", [IMAGE], [PROBS], max_batch_size=8, comment="made by a test")
    assert text.startswith("# made by a test\n")
    config = parse(text)
    assert config.backend == "onnxruntime"
    assert config.max_batch_size == 8
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    (accelerator,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.name == "tensorrt"
    assert accelerator.parameters["precision_mode"] == "FP16"
    assert "intra_op_threads" not in config.parameters


def test_variable_dims_and_types() -> None:
    tokens = TensorConfig("ids", np.dtype(np.int64), (-1,))
    mask = TensorConfig("mask", np.dtype(np.uint8), (-1, 4))
    config = parse(render_config("t", "cpu", [tokens, mask], [PROBS]))
    assert [list(t.dims) for t in config.input] == [[-1], [-1, 4]]
    assert [t.data_type for t in config.input] == [
        model_config_pb2.TYPE_INT64,
        model_config_pb2.TYPE_UINT8,
    ]


@pytest.mark.parametrize(
    ("max_batch_size", "expected"), [(1, (1,)), (4, (4,)), (6, (4, 6)), (32, (4, 8, 16, 32))]
)
def test_default_preferred_batch_sizes(max_batch_size: int, expected: tuple[int, ...]) -> None:
    assert default_preferred_batch_sizes(max_batch_size) == expected


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_batch_size": 0},
        {"instances": 0},
        {"max_queue_delay_us": -1},
        {"preferred_batch_sizes": [64]},
        {"target": "tpu"},
        {"inputs": [TensorConfig("s", np.dtype(np.str_), (1,))]},
        {"outputs": []},
    ],
)
def test_bad_settings_raise_config_error(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"name": "m", "target": "cpu", "inputs": [IMAGE], "outputs": [PROBS]}
    with pytest.raises(ConfigError):
        render_config(**(args | kwargs))


def test_export_writes_cpu_and_gpu_folders(tmp_path: Path) -> None:
    model = open_nsfw()
    (cpu,) = export_repository(tmp_path / "cpu", "cpu", [model], max_batch_size=16)
    assert cpu == tmp_path / "cpu" / "open_nsfw"
    assert sorted(p.name for p in (cpu / "1").iterdir()) == ["model.onnx", "model.py"]
    assert (cpu / "1" / "model.py").read_bytes() == MODEL_TEMPLATE.read_bytes()
    assert (cpu / "1" / "model.onnx").read_bytes() == model.onnx_path.read_bytes()
    config = parse((cpu / "config.pbtxt").read_text())
    assert (config.backend, config.max_batch_size) == ("python", 16)
    assert [t.name for t in config.input] == [model.input.name]
    assert [t.name for t in config.output] == [model.output_name]
    assert model.version in (cpu / "config.pbtxt").read_text()

    (gpu,) = export_repository(tmp_path / "gpu", "gpu", [model])
    assert sorted(p.name for p in (gpu / "1").iterdir()) == ["model.onnx"]
    assert parse((gpu / "config.pbtxt").read_text()).backend == "onnxruntime"

    (cpu / "1" / "stale.txt").write_text("x")  # a re-export replaces the folder whole
    export_repository(tmp_path / "cpu", "cpu", [model])
    assert not (cpu / "1" / "stale.txt").exists()


def test_export_rejects_a_model_that_does_not_match_its_onnx(tmp_path: Path) -> None:
    model = open_nsfw()
    wrong_size = dataclasses.replace(model, input=InputSpec(name="input:0", size_hw=(100, 100)))
    wrong_output = dataclasses.replace(model, output_name="probabilities")
    for bad in (wrong_size, wrong_output):
        with pytest.raises(ConfigError):
            export_repository(tmp_path, "cpu", [bad])
    with pytest.raises(ConfigError, match="duplicate"):
        export_repository(tmp_path, "cpu", [model, model])
    with pytest.raises(ConfigError):
        export_repository(tmp_path, "cpu", [dataclasses.replace(model, name="../x")])


def test_cli_exports_named_models(tmp_path: Path) -> None:
    assert main(["--target", "gpu", "--out", str(tmp_path), "--model", "open_nsfw"]) == 0
    assert (tmp_path / "open_nsfw" / "config.pbtxt").is_file()


# --- the Python-backend model, with a stand-in for triton_python_backend_utils ---------------


class FakeTensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        self.name, self.array = name, array

    def as_numpy(self) -> np.ndarray:
        return self.array


class FakeResponse:
    def __init__(self, output_tensors: list[FakeTensor], error: Any = None) -> None:
        self.tensors, self.error = {t.name: t.array for t in output_tensors}, error


class FakeSession:
    def __init__(self, extra_rows: int = 0) -> None:
        self.calls: list[Mapping[str, np.ndarray]] = []
        self.extra_rows = extra_rows

    def run(self, names: list[str], feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        self.calls.append(feed)
        rows = feed["x"].reshape(len(feed["x"]), -1).sum(axis=1)
        rows = np.concatenate([rows, np.zeros(self.extra_rows)])
        return [np.stack([rows, -rows], axis=1).astype(np.float64)]


def python_model(monkeypatch: pytest.MonkeyPatch, session: FakeSession) -> Any:
    fake = SimpleNamespace(
        get_input_tensor_by_name=lambda request, name: FakeTensor(name, request[name]),
        Tensor=FakeTensor,
        InferenceResponse=FakeResponse,
        TritonError=lambda message: message,
    )
    monkeypatch.setattr(_triton_model, "pb_utils", fake)
    model = _triton_model.TritonPythonModel()
    model.session = session
    model.input_names, model.output_names = ["x"], ["y"]
    model.output_dtypes = {"y": np.dtype(np.float32)}
    return model


def test_python_model_runs_a_dynamic_batch_as_one_run(monkeypatch: pytest.MonkeyPatch) -> None:
    session = FakeSession()
    model = python_model(monkeypatch, session)
    requests = [{"x": np.full((n, 2), n, dtype=np.float32)} for n in (1, 3, 2)]
    responses = model.execute(requests)
    assert len(session.calls) == 1 and session.calls[0]["x"].shape == (6, 2)
    assert [r.error for r in responses] == [None, None, None]
    assert [r.tensors["y"].shape for r in responses] == [(1, 2), (3, 2), (2, 2)]
    assert responses[1].tensors["y"].dtype == np.float32
    assert responses[1].tensors["y"][:, 0].tolist() == [6.0, 6.0, 6.0]  # its own rows
    assert responses[2].tensors["y"][:, 0].tolist() == [4.0, 4.0]


def test_python_model_fails_every_request_when_sizes_do_not_add_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = python_model(monkeypatch, FakeSession(extra_rows=1))
    requests = [{"x": np.ones((n, 2), dtype=np.float32)} for n in (2, 2)]
    responses = model.execute(requests)
    assert all("expected 4 rows" in str(r.error) for r in responses)
    assert all(not r.tensors for r in responses)
