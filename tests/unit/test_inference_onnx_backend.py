"""EmbeddedOnnxBackend on a tiny ONNX graph written here (no model package needed)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from inference.backend import TensorSpec
from inference.onnx_backend import EmbeddedOnnxBackend
from pipeline.errors import ConfigError, InferenceError

# --- a minimal protobuf writer, enough for ModelProto{graph: y = x + x} ---------------------


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


def double_model_bytes() -> bytes:
    """``y[N,3] = x[N,3] + x[N,3]`` as an ONNX file (IR 7, opset 13)."""
    node = _bytes(1, "x") + _bytes(1, "x") + _bytes(2, "y") + _bytes(3, "add") + _bytes(4, "Add")
    graph = (
        _bytes(1, node)
        + _bytes(2, "g")
        + _bytes(11, _value_info("x", ("N", 3)))
        + _bytes(12, _value_info("y", ("N", 3)))
    )
    return _int(1, 7) + _bytes(8, _bytes(1, "") + _int(2, 13)) + _bytes(7, graph)


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    path = tmp_path / "double.onnx"
    path.write_bytes(double_model_bytes())
    return path


async def test_runs_and_reads_signature(model_path: Path) -> None:
    backend = EmbeddedOnnxBackend({"double": model_path})
    try:
        assert backend.models == ("double",)
        assert backend.signature("double") == (TensorSpec("x", (None, 3), np.dtype(np.float32)),)
        x = np.arange(6, dtype=np.float32).reshape(2, 3)
        outputs = await backend.infer("double", {"x": x})
        assert set(outputs) == {"y"}
        np.testing.assert_array_equal(outputs["y"], 2 * x)
    finally:
        await backend.close()


async def test_event_loop_keeps_running_during_inference(model_path: Path) -> None:
    backend = EmbeddedOnnxBackend({"double": model_path})
    big = np.ones((4_000_000, 3), np.float32)  # tens of ms of work in onnxruntime
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        await asyncio.sleep(0)
        start = ticks
        outputs = await backend.infer("double", {"x": big})
        done = True
        await task
    finally:
        await backend.close()
    assert outputs["y"][0, 0] == 2.0
    assert ticks - start > 3  # a blocking run would allow at most one tick


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"x": np.zeros((2, 4), np.float32)}, "shape (2, 4)"),
        ({"x": np.zeros((2, 3, 1), np.float32)}, "shape (2, 3, 1)"),
        ({"x": np.zeros((2, 3), np.float64)}, "dtype float64"),
        ({"z": np.zeros((2, 3), np.float32)}, "missing ['x'], unexpected ['z']"),
        ({}, "missing ['x']"),
    ],
)
async def test_signature_mismatch_is_an_inference_error(
    model_path: Path, inputs: dict[str, np.ndarray], message: str
) -> None:
    backend = EmbeddedOnnxBackend({"double": model_path})
    try:
        with pytest.raises(InferenceError, match="double") as info:
            await backend.infer("double", inputs)
        assert message in str(info.value)
    finally:
        await backend.close()


async def test_unknown_model_and_closed_backend(model_path: Path) -> None:
    backend = EmbeddedOnnxBackend({"double": model_path})
    with pytest.raises(InferenceError, match=r"unknown model 'nope'.*\['double'\]"):
        await backend.infer("nope", {"x": np.zeros((1, 3), np.float32)})
    await backend.close()
    await backend.close()  # idempotent
    with pytest.raises(InferenceError, match="closed"):
        await backend.infer("double", {"x": np.zeros((1, 3), np.float32)})


async def test_concurrent_requests(model_path: Path) -> None:
    backend = EmbeddedOnnxBackend({"double": model_path}, max_concurrent_runs=2)
    try:
        xs = [np.full((i + 1, 3), i, np.float32) for i in range(6)]
        results = await asyncio.gather(*(backend.infer("double", {"x": x}) for x in xs))
        for x, out in zip(xs, results, strict=True):
            np.testing.assert_array_equal(out["y"], 2 * x)
    finally:
        await backend.close()


def test_bad_model_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        EmbeddedOnnxBackend({"m": tmp_path / "missing.onnx"})
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not an onnx file")
    with pytest.raises(ConfigError, match="cannot load"):
        EmbeddedOnnxBackend({"m": garbage})
    with pytest.raises(ConfigError):
        EmbeddedOnnxBackend({})
    with pytest.raises(ConfigError):
        EmbeddedOnnxBackend({"m": garbage}, intra_op_threads=0)


def test_a_free_extent_is_one_besides_the_batch() -> None:
    from inference.onnx_backend import has_free_extent

    f32 = np.dtype(np.float32)
    assert not has_free_extent((TensorSpec("x", (None, 224, 224, 3), f32),))
    assert has_free_extent((TensorSpec("x", (None, 3, None, None), f32),))
    assert has_free_extent(
        (TensorSpec("a", (1, 3), f32), TensorSpec("b", (None, 3, 48, None), f32))
    )


async def test_a_fixed_size_model_keeps_the_default_arena(model_path: Path) -> None:
    """The test model's input is (batch, 3): fixed besides the batch, so no shrinking."""
    backend = EmbeddedOnnxBackend({"double": model_path})
    try:
        assert backend.shrinking == frozenset()
    finally:
        await backend.close()
