"""The knobs a sweep turns, and the worker settings each value stands for. Pure code."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["KNOBS", "Knob", "parse_values"]

_INT_SETTINGS = {
    "frame-batch-max": "SW_FRAME_BATCH_MAX",
    "onnx-threads": "SW_ONNX_THREADS",
    "decode-threads": "SW_DECODE_THREADS",
    "ocr-every": "SW_OCR_EVERY_NTH_SEGMENT",
}


@dataclass(frozen=True)
class Knob:
    name: str
    help: str
    default_values: tuple[str, ...]
    quick_values: tuple[str, ...]

    def env(self, value: str) -> dict[str, str]:
        """SW_* settings for the workers (empty for knobs that change the case instead)."""
        if self.name == "batch-max":
            return {"SW_SEGMENT_BATCH_MAX": str(int(value))}
        if self.name == "batch-wait-ms":
            return {"SW_SEGMENT_BATCH_WAIT_MS": str(int(value))}
        if self.name in _INT_SETTINGS:
            return {_INT_SETTINGS[self.name]: str(int(value))}
        if self.name == "sampling":
            strategy, _, fps = value.partition(":")
            if strategy not in ("keyframes", "fps", "scene", "adaptive"):
                raise ValueError(f"unknown sampling strategy {strategy!r}")
            env = {"SW_SAMPLING": strategy}
            if fps:
                env["SW_SAMPLE_FPS"] = str(float(fps))
            return env
        if self.name == "ocr":
            if value not in ("on", "off"):
                raise ValueError(f"ocr must be on or off, got {value!r}")
            return {"SW_OCR_ENABLED": "true" if value == "on" else "false"}
        if self.name == "backend":
            if value not in ("onnx", "triton"):
                raise ValueError(f"backend must be onnx or triton, got {value!r}")
            return {"SW_INFERENCE_BACKEND": value}
        if self.name == "shm":
            if value not in ("on", "off"):
                raise ValueError(f"shm must be on or off, got {value!r}")
            return {
                "SW_INFERENCE_BACKEND": "triton",
                "SW_TRITON_SHARED_MEMORY": "true" if value == "on" else "false",
            }
        return {}

    def case(self, value: str) -> dict[str, int]:
        """CaseConfig fields this value sets (streams, workers, partitions)."""
        if self.name in ("streams", "workers", "partitions"):
            n = int(value)
            if n < 1:
                raise ValueError(f"{self.name} must be >= 1, got {n}")
            return {self.name: n}
        return {}


KNOBS: Mapping[str, Knob] = {
    k.name: k
    for k in (
        Knob("streams", "real-time livestreams (the load)", ("4", "8", "16", "24"), ("1", "2")),
        Knob("workers", "worker processes in one group", ("1", "2"), ("1", "2")),
        Knob("partitions", "partitions of the input topics", ("1", "2", "6"), ("1", "2")),
        Knob("batch-max", "SW_SEGMENT_BATCH_MAX", ("1", "8", "32"), ("1", "8")),
        Knob("batch-wait-ms", "SW_SEGMENT_BATCH_WAIT_MS", ("50", "200", "1000"), ("50", "500")),
        Knob("frame-batch-max", "SW_FRAME_BATCH_MAX", ("4", "16"), ("4", "16")),
        Knob("onnx-threads", "SW_ONNX_THREADS (ONNX Runtime intra-op)", ("1", "2"), ("1", "2")),
        Knob("decode-threads", "SW_DECODE_THREADS (decode pool)", ("1", "2"), ("1", "2")),
        Knob(
            "ocr-every",
            "SW_OCR_EVERY_NTH_SEGMENT (OCR reads one segment in N)",
            ("1", "3", "10"),
            ("1", "3"),
        ),
        Knob(
            "sampling",
            "SW_SAMPLING[:SW_SAMPLE_FPS]",
            ("keyframes", "fps:1", "fps:2"),
            ("keyframes", "fps:1"),
        ),
        Knob("ocr", "SW_OCR_ENABLED (one frame per segment read)", ("on", "off"), ("on", "off")),
        Knob("backend", "SW_INFERENCE_BACKEND", ("onnx", "triton"), ("onnx", "triton")),
        Knob("shm", "SW_TRITON_SHARED_MEMORY (on Triton)", ("off", "on"), ("off", "on")),
    )
}


def parse_values(knob: Knob, text: str | None, *, quick: bool) -> list[str]:
    """``"1,8,32"`` -> values, checked; None -> the knob's defaults."""
    if text is None:
        values = list(knob.quick_values if quick else knob.default_values)
    else:
        values = [v.strip() for v in text.split(",") if v.strip()]
    if not values:
        raise ValueError(f"no values for {knob.name}")
    for v in values:  # raise early on a bad value
        knob.env(v)
        knob.case(v)
    return values
