"""In-process onnxruntime backend: CPU sessions run in a private thread pool.

``session.run`` releases the GIL, so running it in an executor keeps the event
loop free while the model computes. One session per model; onnxruntime allows
concurrent ``run`` calls on one session, so ``max_concurrent_runs`` bounds how
many batches compute at once (each with ``intra_op_threads`` threads).

A model whose inputs have a free extent besides the batch (the OCR detector and recogniser:
frames and text lines of any size) runs without memory patterns (one per input shape) and,
with ``shrink_arenas``, shrinks its memory arena after each run, which otherwise keeps the
largest activations it ever held. PP-OCRv4 detection on 720p batches of 1-8, one run of
``benchmarks/ort_memory_bench.py``: resident after the runs 3.0 GB with onnxruntime's defaults,
1.9 GB without patterns, 0.6 GB shrinking too; 199, 215 and 233 ms a frame (±10 % between
runs here). Fixed-size classifiers keep the defaults.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort

from inference.backend import TensorSpec, check_inputs
from pipeline.errors import ConfigError, InferenceError

__all__ = ["EmbeddedOnnxBackend"]

log = logging.getLogger(__name__)

# onnxruntime type strings -> numpy dtypes for the inputs we can check.
ORT_DTYPES: dict[str, np.dtype] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(double)": np.dtype(np.float64),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(int8)": np.dtype(np.int8),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(bool)": np.dtype(np.bool_),
}


def has_free_extent(signature: tuple[TensorSpec, ...]) -> bool:
    """True when an input accepts any size in a dimension other than the batch."""
    return any(None in spec.shape[1:] for spec in signature)


def _signature(model: str, session: ort.InferenceSession) -> tuple[TensorSpec, ...]:
    specs = []
    for arg in session.get_inputs():
        dtype = ORT_DTYPES.get(arg.type)
        if dtype is None:
            raise ConfigError(
                f"model {model!r}: input {arg.name!r} has unsupported type {arg.type}"
            )
        # Symbolic ("batch", "unk__653") or missing dimensions accept any size.
        shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in arg.shape)
        specs.append(TensorSpec(name=arg.name, shape=shape, dtype=dtype))
    return tuple(specs)


class EmbeddedOnnxBackend:
    """Runs ONNX models in this process on onnxruntime's CPUExecutionProvider.

    Sessions are created (and the files read) in ``__init__``: build it once at
    start-up, not per request.

    Raises:
        ConfigError: a model file is missing or onnxruntime cannot load it.
    """

    name = "onnx-embedded"

    def __init__(
        self,
        models: Mapping[str, Path],
        intra_op_threads: int = 1,
        *,
        max_concurrent_runs: int = 1,
        shrink_arenas: bool = True,
    ) -> None:
        if intra_op_threads < 1 or max_concurrent_runs < 1:
            raise ConfigError("intra_op_threads and max_concurrent_runs must be >= 1")
        if not models:
            raise ConfigError("EmbeddedOnnxBackend needs at least one model")
        self._sessions: dict[str, ort.InferenceSession] = {}
        self._signatures: dict[str, tuple[TensorSpec, ...]] = {}
        self._output_names: dict[str, list[str]] = {}
        self._run_options: dict[str, ort.RunOptions] = {}
        for model, path in models.items():
            session = self._load(model, Path(path), intra_op_threads)
            signature = _signature(model, session)
            if has_free_extent(signature):  # see the module doc
                session = self._load(model, Path(path), intra_op_threads, free_extent=True)
                if shrink_arenas:
                    shrink = ort.RunOptions()
                    shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
                    self._run_options[model] = shrink
            self._sessions[model] = session
            self._signatures[model] = signature
            self._output_names[model] = [out.name for out in session.get_outputs()]
            log.info(
                "loaded model=%s path=%s inputs=%s%s",
                model,
                path,
                signature,
                " (arena shrinks after each run)" if model in self._run_options else "",
            )
        self._executor: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=max_concurrent_runs, thread_name_prefix="onnx-run"
        )

    @staticmethod
    def _load(
        model: str, path: Path, intra_op_threads: int, *, free_extent: bool = False
    ) -> ort.InferenceSession:
        if not path.is_file():
            raise ConfigError(f"model {model!r}: ONNX file not found: {path}")
        options = ort.SessionOptions()
        options.enable_mem_pattern = not free_extent  # a pattern per input shape
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            return ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped pybind errors
            raise ConfigError(f"model {model!r}: onnxruntime cannot load {path}: {exc}") from exc

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self._sessions)

    @property
    def shrinking(self) -> frozenset[str]:
        """Models whose memory arena shrinks after each run."""
        return frozenset(self._run_options)

    def signature(self, model: str) -> tuple[TensorSpec, ...]:
        """The inputs ``model`` expects, as read from the ONNX file."""
        try:
            return self._signatures[model]
        except KeyError:
            raise InferenceError(
                f"unknown model {model!r}; this backend serves {sorted(self._sessions)}"
            ) from None

    async def infer(self, model: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        executor = self._executor
        if executor is None:
            raise InferenceError(f"backend {self.name} is closed")
        check_inputs(model, self.signature(model), inputs)
        session = self._sessions[model]
        feed = dict(inputs)
        loop = asyncio.get_running_loop()
        try:
            outputs = await loop.run_in_executor(
                executor, session.run, None, feed, self._run_options.get(model)
            )
        except Exception as exc:
            raise InferenceError(f"model {model!r}: onnxruntime run failed: {exc}") from exc
        names = self._output_names[model]
        return {name: np.asarray(value) for name, value in zip(names, outputs, strict=True)}

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            # Waits for runs in flight without blocking the loop.
            await asyncio.to_thread(executor.shutdown, wait=True)
            self._sessions.clear()
