"""OCR pre- and post-processing on synthetic arrays, and the engine on a FakeBackend."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np
import pytest

from inference._onnx_meta import onnx_metadata
from inference.ocr import OcrEngine, PpOcrModels
from inference.ocr_det import (
    DetParams,
    boxes_from_probability_map,
    det_input,
    det_size,
    order_clockwise,
    unclip_rect,
)
from inference.ocr_rec import REC_HEIGHT_PX, CtcDecoder, crop_quad, rec_bucket_width, rec_input
from inference.ocr_tess import cyrillic_share, find_tessdata, line_image, text_is_light
from inference.scoring import OcrSchedule
from inference.testing import FakeBackend
from pipeline.errors import ConfigError, InferenceError
from tests.unit.test_inference_registry import channel_mean_model

# --- ONNX metadata -------------------------------------------------------------------------


def test_onnx_metadata_reads_metadata_props(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(channel_mean_model())
    assert onnx_metadata(path) == {"character": "a\nb\nc"}


@pytest.mark.parametrize("data", [b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", b"\x0a\x05ab"])
def test_onnx_metadata_refuses_garbage(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match="cannot read ONNX metadata"):
        onnx_metadata(path)


# --- detection -----------------------------------------------------------------------------


def test_det_size_follows_rapidocr() -> None:
    params = DetParams()
    assert det_size(720, 1280, params) == (736, 1312)  # shorter side up to 736, x32
    assert det_size(1080, 1920, params) == (1088, 1920)  # already long enough
    assert det_size(720, 1280, DetParams(limit_side_px=640, limit_type="max")) == (352, 640)


def test_det_input_layout_and_normalisation() -> None:
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[:, 100:] = 255
    x = det_input(frame, DetParams(limit_side_px=64, limit_type="max"))
    assert x.shape == (3, 32, 64) and x.dtype == np.float32
    assert x[:, :, :30].max() == pytest.approx(-1.0)
    assert x[:, :, 34:].min() == pytest.approx(1.0)


def test_unclip_grows_by_area_times_ratio_over_perimeter() -> None:
    centre, size, angle = unclip_rect(((5.0, 5.0), (10.0, 4.0), 0.0), 1.6)
    distance = 10 * 4 * 1.6 / 28
    assert centre == (5.0, 5.0) and angle == 0.0
    assert size == pytest.approx((10 + 2 * distance, 4 + 2 * distance))


def test_order_clockwise() -> None:
    points = np.array([[10, 5], [0, 0], [0, 5], [10, 0]], np.float32)
    assert order_clockwise(points).tolist() == [[0, 0], [10, 0], [10, 5], [0, 5]]


def probability_map(hw: tuple[int, int], *regions: tuple[int, int, int, int, float]) -> np.ndarray:
    prob = np.zeros(hw, np.float32)
    for top, left, bottom, right, value in regions:
        prob[top:bottom, left:right] = value
    return prob


def test_boxes_from_map_scaled_unclipped_and_in_reading_order() -> None:
    prob = probability_map(
        (64, 128),
        (40, 10, 48, 60, 0.9),  # second line
        (10, 70, 18, 120, 0.9),  # first line, right
        (11, 5, 19, 50, 0.9),  # first line, left (top 1 px lower: same line)
        (30, 100, 34, 104, 0.9),  # too small once unclipped? 4x4: kept, grows
        (50, 80, 60, 120, 0.4),  # above thresh, below box_thresh: dropped
        (5, 0, 6, 2, 0.9),  # 1 px high: dropped
    )
    boxes = boxes_from_probability_map(prob, (128, 256), DetParams())
    # The frame is twice the map: coordinates doubled, boxes grown past the raw regions
    # (first line, left: map x 5-50, y 11-19 -> frame x 10-100, y 22-38), reading order.
    assert [b.astype(int).tolist() for b, _ in boxes] == [
        [[0, 11], [111, 11], [111, 49], [0, 49]],
        [[129, 9], [251, 9], [251, 47], [129, 47]],
        [[197, 57], [211, 57], [211, 71], [197, 71]],
        [[9, 69], [131, 69], [131, 107], [9, 107]],
    ]
    assert all(0.5 < score < 0.9 for _, score in boxes)  # dilation adds a 0-valued rim


def test_empty_map_gives_no_boxes() -> None:
    assert boxes_from_probability_map(np.zeros((32, 32), np.float32), (32, 32), DetParams()) == []
    with pytest.raises(ValueError, match="2-D"):
        boxes_from_probability_map(np.zeros((1, 32, 32), np.float32), (32, 32), DetParams())


# --- recognition ---------------------------------------------------------------------------


def test_crop_quad_axis_aligned_and_tall() -> None:
    frame = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    box = np.array([[10, 20], [50, 20], [50, 30], [10, 30]], np.float32)
    crop = crop_quad(frame, box)
    assert crop.shape == (10, 40, 3)
    np.testing.assert_allclose(crop[2:-2, 2:-2], frame[22:28, 12:48], atol=40)
    tall = crop_quad(frame, np.array([[0, 0], [10, 0], [10, 40], [0, 40]], np.float32))
    assert tall.shape == (10, 40, 3)  # turned upright


@pytest.mark.parametrize(("hw", "bucket"), [((48, 100), 320), ((24, 200), 640), ((10, 1000), 1600)])
def test_rec_buckets(hw: tuple[int, int], bucket: int) -> None:
    crop = np.full((*hw, 3), 255, np.uint8)
    assert rec_bucket_width(crop) == bucket
    x = rec_input(crop)
    assert x.shape == (3, REC_HEIGHT_PX, bucket)
    width = min(bucket, int(np.ceil(48 * hw[1] / hw[0])))
    assert x[:, :, :width].min() == pytest.approx(1.0)
    assert not x[:, :, width:].any()  # zero padding


def test_rec_input_rejects_non_images() -> None:
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        rec_input(np.zeros((10, 10), np.uint8))


def one_hot(steps: list[int], classes: int, p: float = 0.9) -> np.ndarray:
    out = np.full((len(steps), classes), (1 - p) / (classes - 1), np.float32)
    out[np.arange(len(steps)), steps] = p
    return out


def test_ctc_collapses_repeats_and_drops_blanks() -> None:
    decoder = CtcDecoder(["a", "b"])  # classes: blank, a, b, space
    rows = np.stack([one_hot([1, 1, 0, 2, 2, 0, 1, 3, 2], 4), one_hot([0] * 9, 4)])
    (text, confidence), (empty, none) = decoder.decode(rows)
    assert text == "aba b" and confidence == pytest.approx(0.9)
    assert (empty, none) == ("", 0.0)
    with pytest.raises(ValueError, match="does not fit"):
        decoder.decode(np.zeros((1, 5, 7), np.float32))
    with pytest.raises(ValueError, match="empty"):
        CtcDecoder([])


# --- tesseract helpers (no tesseract needed) ------------------------------------------------


def test_cyrillic_share() -> None:
    assert cyrillic_share("Привет") == 1.0
    assert cyrillic_share("Пр ok") == 0.5
    assert cyrillic_share("123 !") == 0.0


def test_polarity_and_line_image() -> None:
    light_on_dark = np.zeros((20, 100, 3), np.uint8)
    cv2.putText(light_on_dark, "abc", (5, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
    assert text_is_light(light_on_dark)
    assert not text_is_light(255 - light_on_dark)
    line = line_image(light_on_dark, invert=True)
    assert line.ndim == 2 and line.shape[0] == 48 + 24 and line.shape[1] == 240 + 24
    assert line[0, 0] == 255 and line[30, 30:200].min() < 128  # margin white, text dark


def test_find_tessdata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for lang in ("eng", "rus"):
        (tmp_path / f"{lang}.traineddata").write_bytes(b"")
    assert find_tessdata(("rus", "eng"), tmp_path) == tmp_path
    monkeypatch.setenv("TESSDATA_PREFIX", str(tmp_path))
    assert find_tessdata(("rus", "eng")) == tmp_path
    with pytest.raises(ConfigError, match="no tessdata folder with xxx"):
        find_tessdata(("xxx",), tmp_path)


# --- schedule ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("every", "cap", "n", "picked"),
    [
        (1, 1, 5, [0]),
        (1, 0, 3, [0, 1, 2]),
        (2, 0, 5, [0, 2, 4]),
        (1, 3, 9, [0, 4, 8]),
        (3, 2, 10, [0, 9]),
        (1, 1, 0, []),
    ],
)
def test_ocr_schedule(every: int, cap: int, n: int, picked: list[int]) -> None:
    assert OcrSchedule(every, cap).pick(n) == picked


def test_ocr_schedule_off_and_invalid() -> None:
    assert OcrSchedule(enabled=False).pick(10) == []
    with pytest.raises(ConfigError):
        OcrSchedule(every_nth_frame=0)
    with pytest.raises(ConfigError):
        OcrSchedule(every_nth_segment=0)


def test_ocr_schedule_every_nth_segment_depends_on_seq_alone() -> None:
    schedule = OcrSchedule(every_nth_segment=3)
    assert [seq for seq in range(10) if schedule.pick(4, seq)] == [0, 3, 6, 9]
    assert schedule.pick(4, 6) == [0] and schedule.pick(4, 6) == schedule.pick(4, 6)


def test_worker_setting_overrides_the_registry_cadence() -> None:
    from inference.registry import load_registry
    from pipeline.segments import ocr_schedule
    from pipeline.settings import WorkerSettings

    registry = load_registry(None)
    assert ocr_schedule(WorkerSettings(), registry) == registry.ocr_schedule
    tuned = ocr_schedule(WorkerSettings(ocr_every_nth_segment=4), registry)
    assert tuned.every_nth_segment == 4
    assert tuned.max_per_segment == registry.ocr_schedule.max_per_segment


# --- the engine on a fake backend ----------------------------------------------------------

MODELS = PpOcrModels("det", Path("det.onnx"), "rec", Path("rec.onnx"), ("a", "b", "c"), "test")


def fake_det(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One text line in the top-left quarter of every frame's map."""
    batch, _, height, width = inputs["x"].shape
    prob = np.zeros((batch, 1, height, width), np.float32)
    prob[:, :, height // 8 : height // 8 + 16, width // 16 : width // 2] = 0.95
    return {"sigmoid_0.tmp_0": prob}


def fake_rec(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every line reads "cab"."""
    batch, _, _, width = inputs["x"].shape
    steps = [3, 3, 0, 1, 0, 2] + [0] * (width // 8 - 6)
    return {"softmax_11.tmp_0": np.stack([one_hot(steps, 5, 0.8)] * batch)}


async def test_engine_reads_lines_and_batches_same_sized_frames() -> None:
    backend = FakeBackend({"det": fake_det, "rec": fake_rec})
    engine = OcrEngine(backend, MODELS, det=DetParams(limit_side_px=256))
    frames = [np.zeros((360, 640, 3), np.uint8)] * 2 + [np.zeros((300, 300, 3), np.uint8)]
    lines = await engine.read(frames)
    assert [len(f) for f in lines] == [1, 1, 1]
    line = lines[0][0]
    assert (line.text, line.engine) == ("cab", "ppocr")
    assert line.confidence == pytest.approx(0.8)
    (x0, y0), _, (x2, y2), _ = line.box
    # The fake map's line: x from 1/16 to 1/2 of the width, y from 1/8 for 16 map rows.
    assert 0 <= x0 < 40 and x2 > 320 and 30 < y0 < 45 and 60 < y2 < 90
    assert line.as_doc()["box"] == [list(p) for p in line.box]
    det_calls = [c.batch_size for c in backend.calls if c.model == "det"]
    rec_calls = [c.batch_size for c in backend.calls if c.model == "rec"]
    assert sorted(det_calls) == [1, 2]  # the two 640x360 frames in one call
    assert rec_calls == [3] or sorted(rec_calls) == [1, 2]
    assert await engine.read([]) == []


async def test_engine_drops_unsure_lines_and_reports_bad_outputs() -> None:
    backend = FakeBackend({"det": fake_det, "rec": fake_rec})
    engine = OcrEngine(backend, MODELS, det=DetParams(limit_side_px=256), min_confidence=0.85)
    assert await engine.read([np.zeros((100, 100, 3), np.uint8)]) == [()]
    broken = FakeBackend({"det": lambda inputs: {"other": np.zeros((1, 1))}, "rec": fake_rec})
    with pytest.raises(InferenceError, match=r"no 'sigmoid_0\.tmp_0'"):
        await OcrEngine(broken, MODELS).read([np.zeros((64, 64, 3), np.uint8)])
    with pytest.raises(ConfigError):
        OcrEngine(backend, MODELS, max_batch=0)
