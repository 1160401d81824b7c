"""PP-OCR text detection: frame -> DB probability map (the model) -> text boxes.

Pure numpy/OpenCV; the model itself runs through an inference backend
(:mod:`inference.ocr`). Follows rapidocr-onnxruntime 1.4.4's ``ch_ppocr_det``
(DB post-processing of PaddleOCR) with its defaults, except that the polygon
``unclip`` is done in closed form: the boxes are minimum-area rectangles, and a
rectangle offset by ``d`` (rounded joins, as pyclipper does) has the rectangle
grown by ``2d`` on each axis as its minimum-area rectangle. So neither
pyclipper nor shapely is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["DetParams", "Quad", "boxes_from_probability_map", "det_input", "order_clockwise"]

Quad = np.ndarray
"""A text box: ``float32[4, 2]`` corner points (x, y), clockwise from top-left."""
RotatedRect = tuple[Sequence[float], Sequence[float], float]
"""OpenCV's ``((cx, cy), (w, h), angle)``."""


@dataclass(frozen=True, slots=True)
class DetParams:
    """DB detection settings (rapidocr 1.4.4 defaults).

    ``limit_side_px`` with ``limit_type="min"`` scales a frame up or down so its
    shorter side is that long (then to multiples of 32); ``"max"`` only shrinks
    frames whose longer side exceeds it.
    """

    limit_side_px: int = 736
    limit_type: str = "min"
    thresh: float = 0.3
    box_thresh: float = 0.5
    max_candidates: int = 1000
    unclip_ratio: float = 1.6
    use_dilation: bool = True
    min_size_px: int = 3


def det_size(height: int, width: int, params: DetParams) -> tuple[int, int]:
    """``(h, w)`` the detector sees for a frame of ``height x width`` (multiples of 32)."""
    limit = params.limit_side_px
    if params.limit_type == "max":
        ratio = limit / max(height, width) if max(height, width) > limit else 1.0
    else:
        ratio = limit / min(height, width) if min(height, width) < limit else 1.0
    new_h = max(32, round(int(height * ratio) / 32) * 32)
    new_w = max(32, round(int(width * ratio) / 32) * 32)
    return new_h, new_w


def det_input(frame: np.ndarray, params: DetParams) -> np.ndarray:
    """``float32[3, h, w]``: BGR resized to :func:`det_size`, ``(x / 255 - 0.5) / 0.5``."""
    height, width = det_size(frame.shape[0], frame.shape[1], params)
    resized = cv2.resize(frame, (width, height))
    chw = resized.transpose(2, 0, 1).astype(np.float32)
    return np.ascontiguousarray(chw * (2.0 / 255.0) - 1.0, dtype=np.float32)


def order_clockwise(points: np.ndarray) -> Quad:
    """Four points as ``[top-left, top-right, bottom-right, bottom-left]``."""
    by_x = points[np.argsort(points[:, 0], kind="stable")]
    left, right = by_x[:2], by_x[2:]
    top_left, bottom_left = left[np.argsort(left[:, 1], kind="stable")]
    top_right, bottom_right = right[np.argsort(right[:, 1], kind="stable")]
    return np.array([top_left, top_right, bottom_right, bottom_left], dtype=np.float32)


def _mini_box(rect: RotatedRect) -> Quad:
    """Corners of a rotated rect in rapidocr's ``get_mini_boxes`` order."""
    points = sorted(cv2.boxPoints(rect).tolist(), key=lambda p: p[0])
    first, fourth = (0, 1) if points[1][1] > points[0][1] else (1, 0)
    second, third = (2, 3) if points[3][1] > points[2][1] else (3, 2)
    return np.array(
        [points[first], points[second], points[third], points[fourth]], dtype=np.float32
    )


def _box_score(prob: np.ndarray, box: Quad) -> float:
    """Mean probability inside ``box`` (DB's ``box_score_fast``)."""
    h, w = prob.shape
    xmin = int(np.clip(np.floor(box[:, 0].min()), 0, w - 1))
    xmax = int(np.clip(np.ceil(box[:, 0].max()), 0, w - 1))
    ymin = int(np.clip(np.floor(box[:, 1].min()), 0, h - 1))
    ymax = int(np.clip(np.ceil(box[:, 1].max()), 0, h - 1))
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
    shifted = box - np.array([xmin, ymin], dtype=np.float32)
    cv2.fillPoly(mask, [shifted.reshape(-1, 2).astype(np.int32)], 1)
    return float(cv2.mean(prob[ymin : ymax + 1, xmin : xmax + 1], mask)[0])


def unclip_rect(rect: RotatedRect, ratio: float) -> RotatedRect:
    """Grow a rotated rect by ``d = area * ratio / perimeter`` on every side."""
    centre, (w, h), angle = rect
    perimeter = 2.0 * (w + h)
    distance = w * h * ratio / perimeter if perimeter > 0 else 0.0
    return centre, (w + 2 * distance, h + 2 * distance), angle


def boxes_from_probability_map(
    prob: np.ndarray, frame_hw: tuple[int, int], params: DetParams
) -> list[tuple[Quad, float]]:
    """Text boxes in frame pixels, with their DB scores, from one ``float32[h, w]`` map.

    Boxes are clockwise quads clipped to the frame, sorted top to bottom then
    left to right; boxes 3 px or thinner are dropped.
    """
    if prob.ndim != 2:
        raise ValueError(f"probability map must be 2-D, got {prob.shape}")
    map_h, map_w = prob.shape
    frame_h, frame_w = frame_hw
    bitmap = (prob > params.thresh).astype(np.uint8) * 255
    if params.use_dilation:
        bitmap = np.asarray(cv2.dilate(bitmap, np.ones((2, 2), np.uint8)), dtype=np.uint8)
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    found: list[tuple[Quad, float]] = []
    for contour in contours[: params.max_candidates]:
        rect = cv2.minAreaRect(contour)
        if min(rect[1]) < params.min_size_px:
            continue
        score = _box_score(prob, _mini_box(rect).reshape(-1, 2))
        if score < params.box_thresh:
            continue
        grown = unclip_rect(rect, params.unclip_ratio)
        if min(grown[1]) < params.min_size_px + 2:
            continue
        box = _mini_box(grown)
        box[:, 0] = np.clip(np.round(box[:, 0] / map_w * frame_w), 0, frame_w)
        box[:, 1] = np.clip(np.round(box[:, 1] / map_h * frame_h), 0, frame_h)
        box = order_clockwise(box)
        box[:, 0] = np.clip(box[:, 0], 0, frame_w - 1).astype(np.int32)
        box[:, 1] = np.clip(box[:, 1], 0, frame_h - 1).astype(np.int32)
        width = int(np.linalg.norm(box[0] - box[1]))
        height = int(np.linalg.norm(box[0] - box[3]))
        if width <= 3 or height <= 3:
            continue
        found.append((box, score))
    return _reading_order(found)


def _reading_order(boxes: list[tuple[Quad, float]]) -> list[tuple[Quad, float]]:
    """Top to bottom; boxes whose tops are within 10 px count as one line, left to right."""
    ordered = sorted(boxes, key=lambda item: (float(item[0][0, 1]), float(item[0][0, 0])))
    for i in range(len(ordered) - 1):
        for j in range(i, -1, -1):
            a, b = ordered[j][0], ordered[j + 1][0]
            if abs(b[0, 1] - a[0, 1]) < 10 and b[0, 0] < a[0, 0]:
                ordered[j], ordered[j + 1] = ordered[j + 1], ordered[j]
            else:
                break
    return ordered
