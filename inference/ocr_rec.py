"""PP-OCR text recognition: box crops -> fixed-width line tensors -> CTC decoding.

Pure numpy/OpenCV, after rapidocr-onnxruntime 1.4.4's ``ch_ppocr_rec``. One
difference: rapidocr pads each batch to its widest crop, so shapes vary from
call to call; here every crop is padded to one of a few width *buckets*
(:data:`REC_WIDTH_BUCKETS_PX`), so crops from different frames and streams
share a shape and a micro-batcher can join them into one model call. Padding is
zeros after normalisation (mid-grey), as PaddleOCR pads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from inference.ocr_det import Quad

__all__ = [
    "REC_HEIGHT_PX",
    "REC_WIDTH_BUCKETS_PX",
    "CtcDecoder",
    "crop_quad",
    "rec_bucket_width",
    "rec_input",
]

REC_HEIGHT_PX = 48
REC_WIDTH_BUCKETS_PX: tuple[int, ...] = (320, 640, 960, 1600)
"""Line widths the recogniser is fed (aspect up to 6.7, 13, 20, 33); wider lines are squeezed."""


def crop_quad(frame: np.ndarray, box: Quad) -> np.ndarray:
    """The text line inside ``box``, rectified; turned upright if it is tall and narrow."""
    width = int(max(np.linalg.norm(box[0] - box[1]), np.linalg.norm(box[2] - box[3])))
    height = int(max(np.linalg.norm(box[0] - box[3]), np.linalg.norm(box[1] - box[2])))
    width, height = max(width, 1), max(height, 1)
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(box.astype(np.float32), target)
    crop = cv2.warpPerspective(
        frame,
        matrix,
        (width, height),
        borderMode=cv2.BORDER_REPLICATE,
        flags=cv2.INTER_CUBIC,
    )
    if crop.shape[0] >= 1.5 * crop.shape[1]:
        crop = np.rot90(crop)
    return np.ascontiguousarray(crop)


def _resized_width(crop: np.ndarray) -> int:
    return max(1, math.ceil(REC_HEIGHT_PX * crop.shape[1] / max(crop.shape[0], 1)))


def rec_bucket_width(crop: np.ndarray) -> int:
    """The bucket width a crop is padded to."""
    wanted = _resized_width(crop)
    return next((b for b in REC_WIDTH_BUCKETS_PX if wanted <= b), REC_WIDTH_BUCKETS_PX[-1])


def rec_input(crop: np.ndarray) -> np.ndarray:
    """``float32[3, 48, bucket]``: BGR crop at height 48, ``(x / 255 - 0.5) / 0.5``, zero-padded."""
    if crop.ndim != 3 or crop.shape[2] != 3 or crop.dtype != np.uint8:
        raise ValueError(f"crop must be HxWx3 uint8, got {crop.shape}:{crop.dtype}")
    bucket = rec_bucket_width(crop)
    width = min(_resized_width(crop), bucket)
    resized = cv2.resize(crop, (width, REC_HEIGHT_PX)).astype(np.float32)
    out = np.zeros((3, REC_HEIGHT_PX, bucket), dtype=np.float32)
    out[:, :, :width] = resized.transpose(2, 0, 1) * (2.0 / 255.0) - 1.0
    return out


class CtcDecoder:
    """Greedy CTC decoding with PP-OCR's symbol table.

    ``symbols`` are the model's characters (the ``character`` metadata of the
    rapidocr ONNX file, one per line); class 0 is the CTC blank and the last
    class a space, as in rapidocr's ``CTCLabelDecode``.
    """

    def __init__(self, symbols: Sequence[str]) -> None:
        if not symbols:
            raise ValueError("CTC symbol table is empty")
        self.classes: tuple[str, ...] = ("", *symbols, " ")

    def decode(self, probabilities: np.ndarray) -> list[tuple[str, float]]:
        """``(text, confidence)`` per row of ``float[B, T, classes]`` softmax output.

        Repeated classes collapse, blanks drop; confidence is the mean
        probability of the kept steps (0.0 for an empty line).
        """
        if probabilities.ndim != 3 or probabilities.shape[2] != len(self.classes):
            raise ValueError(
                f"recogniser output {probabilities.shape} does not fit {len(self.classes)} classes"
            )
        best = probabilities.argmax(axis=2)
        best_p = probabilities.max(axis=2)
        out: list[tuple[str, float]] = []
        for row, row_p in zip(best, best_p, strict=True):
            keep = np.ones(row.shape, dtype=bool)
            keep[1:] = row[1:] != row[:-1]
            keep &= row != 0
            text = "".join(self.classes[i] for i in row[keep])
            confidence = float(row_p[keep].mean()) if keep.any() else 0.0
            out.append((text, confidence))
        return out
