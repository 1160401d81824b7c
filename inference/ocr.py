"""OCR of text burned into frames: PP-OCRv4 detection + recognition, tesseract for Cyrillic.

Models: ``ch_PP-OCRv4_det_infer.onnx`` and ``ch_PP-OCRv4_rec_infer.onnx`` from
the rapidocr-onnxruntime 1.4.4 wheel (read as files; ``rapidocr_onnxruntime``
is never imported, so its opencv-python / pyclipper / shapely dependencies are
not needed). Both run through an :class:`~inference.backend.InferenceBackend`
(embedded onnxruntime, Triton, a :class:`~inference.batcher.MicroBatcher`), so
detection of same-sized frames and recognition of same-bucket lines join into
batches. PP-OCR's recogniser has no Cyrillic (it reads Russian as Latin
look-alikes): when a :class:`~inference.ocr_tess.TesseractReader` is given,
every detected line with letters is also read by tesseract (rus+eng), and its
reading wins when it is mostly Cyrillic and confident enough.

The angle classifier (``cls``) is not run: burned-in captions are upright.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from inference._onnx_meta import onnx_metadata
from inference._resources import distribution_version, package_file, sha256_file
from inference.backend import InferenceBackend
from inference.ocr_det import DetParams, Quad, boxes_from_probability_map, det_input
from inference.ocr_rec import CtcDecoder, crop_quad, rec_input
from inference.ocr_tess import TesseractReader, cyrillic_share
from pipeline.errors import ConfigError, InferenceError

__all__ = ["OcrEngine", "OcrLine", "PpOcrModels", "ppocr_models"]

_PACKAGE = "rapidocr_onnxruntime"
_Reading = tuple[str, float, Literal["ppocr", "tesseract"]]


@dataclass(frozen=True, slots=True)
class OcrLine:
    """One line of text read in a frame; ``box`` is its clockwise quad in frame pixels."""

    text: str
    box: tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]
    confidence: float
    engine: Literal["ppocr", "tesseract"]

    def as_doc(self) -> dict[str, object]:
        return {
            "text": self.text,
            "box": [list(p) for p in self.box],
            "confidence": round(self.confidence, 4),
            "engine": self.engine,
        }


@dataclass(frozen=True, slots=True)
class PpOcrModels:
    """The two PP-OCR ONNX models, their tensor names and the recogniser's symbols."""

    det_name: str
    det_path: Path
    rec_name: str
    rec_path: Path
    symbols: tuple[str, ...]
    version: str
    det_input: str = "x"
    det_output: str = "sigmoid_0.tmp_0"
    rec_input: str = "x"
    rec_output: str = "softmax_11.tmp_0"

    def onnx_files(self) -> dict[str, Path]:
        return {self.det_name: self.det_path, self.rec_name: self.rec_path}


def ppocr_models(det_name: str = "ppocr_det", rec_name: str = "ppocr_rec") -> PpOcrModels:
    """PP-OCRv4 det + rec from the installed rapidocr-onnxruntime wheel."""
    det = package_file(_PACKAGE, "models/ch_PP-OCRv4_det_infer.onnx")
    rec = package_file(_PACKAGE, "models/ch_PP-OCRv4_rec_infer.onnx")
    symbols = tuple(onnx_metadata(rec).get("character", "").splitlines())
    if not symbols:
        raise ConfigError(f"{rec}: no 'character' metadata (not a rapidocr PP-OCR recogniser?)")
    version = (
        f"{distribution_version('rapidocr-onnxruntime')}"
        f"+det.{sha256_file(det)[:12]}+rec.{sha256_file(rec)[:12]}"
    )
    return PpOcrModels(det_name, det, rec_name, rec, symbols, version)


def _output(outputs: dict[str, np.ndarray], name: str, model: str, batch: int) -> np.ndarray:
    if name not in outputs:
        raise InferenceError(f"model {model!r} returned {sorted(outputs)}, no {name!r}")
    array = outputs[name]
    if array.ndim < 2 or array.shape[0] != batch:
        raise InferenceError(f"model {model!r}: output {name!r} {array.shape}, batch {batch}")
    return array


class OcrEngine:
    """Reads the text lines of frames (BGR ``uint8``); build once, share across streams.

    ``min_confidence`` drops PP-OCR lines read with less (rapidocr's
    ``text_score``); a tesseract reading replaces PP-OCR's when at least
    ``cyrillic_min_share`` of its letters are Cyrillic and its confidence is at
    least ``tesseract_min_confidence``.
    """

    name = "ocr"

    def __init__(
        self,
        backend: InferenceBackend,
        models: PpOcrModels,
        *,
        det: DetParams | None = None,
        cyrillic: TesseractReader | None = None,
        min_confidence: float = 0.5,
        tesseract_min_confidence: float = 0.6,
        cyrillic_min_share: float = 0.5,
        max_batch: int = 8,
    ) -> None:
        if max_batch < 1:
            raise ConfigError(f"OCR max_batch must be >= 1, got {max_batch}")
        self.backend, self.models = backend, models
        self.det = det or DetParams()
        self.cyrillic = cyrillic
        self.min_confidence = min_confidence
        self.tesseract_min_confidence = tesseract_min_confidence
        self.cyrillic_min_share = cyrillic_min_share
        self.max_batch = max_batch
        self.decoder = CtcDecoder(models.symbols)
        self.version = models.version + (f"+{cyrillic.version}" if cyrillic else "")

    async def _run(
        self, model: str, input_name: str, output_name: str, tensors: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        """One output row per tensor: same-shaped tensors go in batches of ``max_batch``."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, tensor in enumerate(tensors):
            groups.setdefault(tensor.shape, []).append(i)
        chunks = [
            indices[start : start + self.max_batch]
            for indices in groups.values()
            for start in range(0, len(indices), self.max_batch)
        ]

        async def run(chunk: list[int]) -> np.ndarray:
            batch = np.stack([tensors[i] for i in chunk])
            outputs = await self.backend.infer(model, {input_name: batch})
            return _output(outputs, output_name, model, len(chunk))

        results = await asyncio.gather(*(run(chunk) for chunk in chunks))
        rows: list[np.ndarray] = [np.empty(0)] * len(tensors)
        for chunk, result in zip(chunks, results, strict=True):
            for row, i in enumerate(chunk):
                rows[i] = result[row]
        return rows

    def _detect_post(self, maps: Sequence[np.ndarray], frames: Sequence[np.ndarray]) -> list[
        list[tuple[int, Quad, np.ndarray]]
    ]:  # fmt: skip
        found = []
        for i, (prob, frame) in enumerate(zip(maps, frames, strict=True)):
            boxes = boxes_from_probability_map(prob[0], frame.shape[:2], self.det)
            found.append([(i, box, crop_quad(frame, box)) for box, _ in boxes])
        return found

    async def read(self, frames: Sequence[np.ndarray]) -> list[tuple[OcrLine, ...]]:
        """The lines of each frame, in reading order (top to bottom, left to right)."""
        if not frames:
            return []
        loop = asyncio.get_running_loop()
        m = self.models
        det_inputs = await loop.run_in_executor(
            None, lambda: [det_input(f, self.det) for f in frames]
        )
        maps = await self._run(m.det_name, m.det_input, m.det_output, det_inputs)
        per_frame = await loop.run_in_executor(None, self._detect_post, maps, frames)
        lines = [line for frame_lines in per_frame for line in frame_lines]
        if not lines:
            return [() for _ in frames]
        rec_inputs = await loop.run_in_executor(None, lambda: [rec_input(c) for _, _, c in lines])
        probabilities = await self._run(m.rec_name, m.rec_input, m.rec_output, rec_inputs)
        readings: list[_Reading] = [
            (*self.decoder.decode(p[None])[0], "ppocr") for p in probabilities
        ]
        if self.cyrillic is not None:
            readings = await loop.run_in_executor(None, self._cyrillic, lines, readings)
        out: list[list[OcrLine]] = [[] for _ in frames]
        for (frame_index, box, _), (text, confidence, engine) in zip(lines, readings, strict=True):
            if text.strip() and confidence >= self.min_confidence:
                (x0, y0), (x1, y1), (x2, y2), (x3, y3) = box.astype(int).tolist()
                corners = ((x0, y0), (x1, y1), (x2, y2), (x3, y3))
                out[frame_index].append(OcrLine(text.strip(), corners, confidence, engine))
        return [tuple(frame_lines) for frame_lines in out]

    def _cyrillic(
        self, lines: Sequence[tuple[int, Quad, np.ndarray]], readings: Sequence[_Reading]
    ) -> list[_Reading]:
        """Tesseract on every line PP-OCR saw letters in; its reading wins if Cyrillic."""
        reader = self.cyrillic
        if reader is None:
            return list(readings)
        out: list[_Reading] = []
        for (_, _, crop), reading in zip(lines, readings, strict=True):
            if any(ch.isalpha() for ch in reading[0]):
                text, confidence = reader.read(crop)
                if (
                    confidence >= self.tesseract_min_confidence
                    and cyrillic_share(text) >= self.cyrillic_min_share
                ):
                    out.append((text, confidence, "tesseract"))
                    continue
            out.append(reading)
        return out
