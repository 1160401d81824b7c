"""Write a Triton model repository for the frame models.

Each :class:`~inference.frames.FrameModel` becomes ``<out>/<model.name>/``
with ``config.pbtxt`` and version folder ``1/``; model and tensor names are
the ONNX ones, exactly what the model uses on
:class:`~inference.onnx_backend.EmbeddedOnnxBackend`, so one
:class:`~inference.frames.FrameScorer` works on either backend.

* ``gpu``: ``backend: "onnxruntime"``, ``1/model.onnx``, ``KIND_GPU`` and the
  TensorRT FP16 accelerator (for the NGC Triton image).
* ``cpu``: ``backend: "python"``, ``1/model.py`` (:mod:`inference._triton_model`,
  onnxruntime in the server's environment) beside ``1/model.onnx``: the
  onnxruntime backend is not in any PyPI build of Triton.

:func:`render_config` is pure (tensors in, text out); :func:`export_repository`
reads the ONNX signatures and writes files. ``python -m inference.repository
--target cpu --out DIR`` exports the built-in frame models.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort

from inference.frames import BUILTIN_FRAME_MODELS, FrameModel, load_frame_model
from inference.onnx_backend import ORT_DTYPES
from pipeline.errors import ConfigError

__all__ = ["TensorConfig", "default_preferred_batch_sizes", "export_repository", "render_config"]

log = logging.getLogger(__name__)

Target = Literal["cpu", "gpu"]

_TRITON_TYPES: dict[np.dtype, str] = {
    np.dtype(np.float32): "TYPE_FP32",
    np.dtype(np.float16): "TYPE_FP16",
    np.dtype(np.float64): "TYPE_FP64",
    np.dtype(np.uint8): "TYPE_UINT8",
    np.dtype(np.int8): "TYPE_INT8",
    np.dtype(np.int32): "TYPE_INT32",
    np.dtype(np.int64): "TYPE_INT64",
    np.dtype(np.bool_): "TYPE_BOOL",
}
MODEL_TEMPLATE = Path(__file__).with_name("_triton_model.py")
TENSORRT_WORKSPACE_BYTES = 1 << 30


@dataclass(frozen=True, slots=True)
class TensorConfig:
    """One input or output as Triton declares it: dims WITHOUT the batch dim (-1 = any)."""

    name: str
    dtype: np.dtype
    dims: tuple[int, ...]


def default_preferred_batch_sizes(max_batch_size: int) -> tuple[int, ...]:
    """Powers of two from 4 up to ``max_batch_size``, and ``max_batch_size`` itself."""
    sizes = [size for size in (4, 8, 16, 32, 64, 128, 256) if size < max_batch_size]
    return (*sizes, max_batch_size)


def _quote(text: str) -> str:
    return json.dumps(text)  # a valid protobuf text-format string for names we accept


def _tensors(kind: str, tensors: Sequence[TensorConfig]) -> list[str]:
    lines = [f"{kind} ["]
    for index, tensor in enumerate(tensors):
        data_type = _TRITON_TYPES.get(np.dtype(tensor.dtype))
        if data_type is None:
            raise ConfigError(f"{kind} {tensor.name!r}: dtype {tensor.dtype} has no Triton type")
        dims = ", ".join(str(d) for d in tensor.dims)
        lines += [
            "  {",
            f"    name: {_quote(tensor.name)}",
            f"    data_type: {data_type}",
            f"    dims: [ {dims} ]",
            "  }" + ("," if index < len(tensors) - 1 else ""),
        ]
    return [*lines, "]"]


def render_config(
    name: str,
    target: Target,
    inputs: Sequence[TensorConfig],
    outputs: Sequence[TensorConfig],
    *,
    max_batch_size: int = 32,
    max_queue_delay_us: int = 2000,
    preferred_batch_sizes: Sequence[int] | None = None,
    instances: int = 1,
    intra_op_threads: int = 1,
    comment: str = "",
) -> str:
    """The ``config.pbtxt`` text of one model (pure)."""
    if target not in ("cpu", "gpu"):
        raise ConfigError(f"target must be 'cpu' or 'gpu', got {target!r}")
    if max_batch_size < 1 or max_queue_delay_us < 0 or instances < 1 or intra_op_threads < 1:
        raise ConfigError(
            "max_batch_size, instances and intra_op_threads must be >= 1, max_queue_delay_us >= 0"
        )
    preferred = tuple(preferred_batch_sizes or default_preferred_batch_sizes(max_batch_size))
    if any(size < 1 or size > max_batch_size for size in preferred):
        raise ConfigError(f"preferred batch sizes {preferred} must lie in 1..{max_batch_size}")
    if not inputs or not outputs:
        raise ConfigError(f"model {name!r}: needs at least one input and one output")
    lines = [f"# {comment}"] if comment else []
    lines += [
        f"name: {_quote(name)}",
        'backend: "python"' if target == "cpu" else 'backend: "onnxruntime"',
        f"max_batch_size: {max_batch_size}",
        *_tensors("input", inputs),
        *_tensors("output", outputs),
        "dynamic_batching {",
        f"  preferred_batch_size: [ {', '.join(str(size) for size in preferred)} ]",
        f"  max_queue_delay_microseconds: {max_queue_delay_us}",
        "}",
        "instance_group [",
        "  {",
        f"    count: {instances}",
        f"    kind: {'KIND_CPU' if target == 'cpu' else 'KIND_GPU'}",
        "  }",
        "]",
    ]
    if target == "cpu":
        lines += [
            "parameters: {",
            '  key: "intra_op_threads"',
            f'  value: {{ string_value: "{intra_op_threads}" }}',
            "}",
        ]
    else:
        lines += [
            "optimization {",
            "  execution_accelerators {",
            "    gpu_execution_accelerator: [",
            "      {",
            '        name: "tensorrt"',
            '        parameters { key: "precision_mode" value: "FP16" }',
            "        parameters { key: "
            f'"max_workspace_size_bytes" value: "{TENSORRT_WORKSPACE_BYTES}" }}',
            "      }",
            "    ]",
            "  }",
            "}",
        ]
    return "\n".join(lines) + "\n"


def onnx_tensors(path: Path) -> tuple[list[TensorConfig], list[TensorConfig]]:
    """Inputs and outputs of an ONNX file with the batch (first) dimension removed.

    Raises ConfigError unless every tensor has a dynamic first dimension and a
    dtype Triton knows.
    """
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises untyped pybind errors
        raise ConfigError(f"onnxruntime cannot load {path}: {exc}") from exc

    def convert(args: Sequence[ort.NodeArg]) -> list[TensorConfig]:
        tensors = []
        for arg in args:
            dims = [d if isinstance(d, int) and d >= 0 else -1 for d in arg.shape]
            dtype = ORT_DTYPES.get(arg.type)
            if dtype is None or not dims or dims[0] != -1:
                raise ConfigError(
                    f"{path.name}: tensor {arg.name!r} ({arg.type}, shape {arg.shape}) "
                    "needs a known dtype and a dynamic batch dimension"
                )
            tensors.append(TensorConfig(arg.name, dtype, tuple(dims[1:])))
        return tensors

    return convert(session.get_inputs()), convert(session.get_outputs())


def _check_frame_model(
    model: FrameModel, inputs: Sequence[TensorConfig], outputs: Sequence[TensorConfig]
) -> None:
    spec = model.input.tensor_spec()
    want = TensorConfig(spec.name, spec.dtype, tuple(d or -1 for d in spec.shape[1:]))
    if list(inputs) != [want]:
        raise ConfigError(f"model {model.name!r}: ONNX inputs {inputs} are not {want}")
    if model.output_name not in {tensor.name for tensor in outputs}:
        raise ConfigError(f"model {model.name!r}: ONNX has no output {model.output_name!r}")


def export_repository(
    out: Path,
    target: Target,
    models: Sequence[FrameModel],
    *,
    max_batch_size: int = 32,
    max_queue_delay_us: int = 2000,
    instances: int = 1,
    intra_op_threads: int = 1,
) -> list[Path]:
    """Write one model folder per model under ``out``; returns the folders.

    A model's folder is replaced whole; other folders in ``out`` are left alone.
    """
    names = [model.name for model in models]
    if len(set(names)) != len(names):
        raise ConfigError(f"duplicate model names in {names}")
    written = []
    for model in models:
        if not model.name or model.name.startswith(".") or any(c in model.name for c in '/\\"'):
            raise ConfigError(f"model name {model.name!r} cannot be a Triton model folder")
        inputs, outputs = onnx_tensors(Path(model.onnx_path))
        _check_frame_model(model, inputs, outputs)
        text = render_config(
            model.name,
            target,
            inputs,
            outputs,
            max_batch_size=max_batch_size,
            max_queue_delay_us=max_queue_delay_us,
            instances=instances,
            intra_op_threads=intra_op_threads,
            comment=f"streamwarden {model.name} {model.version} ({target}); generated, do not edit",
        )
        folder = Path(out) / model.name
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "1").mkdir(parents=True)
        (folder / "config.pbtxt").write_text(text)
        shutil.copyfile(model.onnx_path, folder / "1" / "model.onnx")
        if target == "cpu":
            shutil.copyfile(MODEL_TEMPLATE, folder / "1" / "model.py")
        log.info("exported model=%s target=%s folder=%s", model.name, target, folder)
        written.append(folder)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference.repository", description=__doc__)
    parser.add_argument("--target", choices=["cpu", "gpu"], required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--model",
        action="append",
        choices=sorted(BUILTIN_FRAME_MODELS),
        help="built-in frame model to export (repeatable; default: all)",
    )
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-queue-delay-us", type=int, default=2000)
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--intra-op-threads", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    models = [load_frame_model(name) for name in args.model or sorted(BUILTIN_FRAME_MODELS)]
    export_repository(
        args.out,
        args.target,
        models,
        max_batch_size=args.max_batch_size,
        max_queue_delay_us=args.max_queue_delay_us,
        instances=args.instances,
        intra_op_threads=args.intra_op_threads,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
