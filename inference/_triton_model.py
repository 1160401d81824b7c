"""Triton Python-backend model that runs one ONNX file with onnxruntime (CPU).

Not imported by streamwarden: :func:`inference.repository.export_repository`
copies this file as ``<model>/1/model.py`` next to ``model.onnx``, and
Triton's Python-backend stub runs it with the server's own environment (numpy,
onnxruntime, ``triton_python_backend_utils``). It must import nothing from
this project.

Each ``execute`` call receives one dynamic batch (several requests). Their
inputs are concatenated along the batch dimension, run as ONE
``session.run``, and the outputs split back by each request's batch size; an
output whose first dimension does not add up fails every request of the batch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # imported outside Triton's stub: tests put a stand-in here
    pb_utils = None


def _parameter(config: dict[str, Any], key: str, default: str) -> str:
    value = config.get("parameters", {}).get(key, {}).get("string_value")
    return str(value) if value else default


class TritonPythonModel:
    """One onnxruntime session per model instance."""

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        path = Path(args["model_repository"]) / args["model_version"] / "model.onnx"
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(_parameter(config, "intra_op_threads", "1"))
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.input_names = [tensor["name"] for tensor in config["input"]]
        self.output_names = [tensor["name"] for tensor in config["output"]]
        self.output_dtypes = {
            name: pb_utils.triton_string_to_numpy(
                pb_utils.get_output_config_by_name(config, name)["data_type"]
            )
            for name in self.output_names
        }

    def execute(self, requests: list[Any]) -> list[Any]:
        try:
            feeds = [
                {
                    name: pb_utils.get_input_tensor_by_name(request, name).as_numpy()
                    for name in self.input_names
                }
                for request in requests
            ]
            sizes = [int(feed[self.input_names[0]].shape[0]) for feed in feeds]
            for feed, size in zip(feeds, sizes, strict=True):
                if any(array.shape[0] != size for array in feed.values()):
                    raise ValueError("inputs of one request have different batch sizes")
            joined = {
                name: feeds[0][name]
                if len(feeds) == 1
                else np.concatenate([feed[name] for feed in feeds])
                for name in self.input_names
            }
            outputs = self.session.run(self.output_names, joined)
            total = sum(sizes)
            for name, output in zip(self.output_names, outputs, strict=True):
                if output.ndim == 0 or output.shape[0] != total:
                    raise ValueError(
                        f"output {name!r} has shape {output.shape}, expected {total} rows "
                        f"for request batch sizes {sizes}"
                    )
            bounds = np.cumsum(sizes)[:-1]
            parts = [np.split(output, bounds) for output in outputs]
        except Exception as exc:  # every request of the batch gets the error
            error = pb_utils.TritonError(f"{type(exc).__name__}: {exc}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        responses = []
        for index in range(len(requests)):
            tensors = [
                pb_utils.Tensor(
                    name, np.ascontiguousarray(part[index], dtype=self.output_dtypes[name])
                )
                for name, part in zip(self.output_names, parts, strict=True)
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses

    def finalize(self) -> None:
        self.session = None
