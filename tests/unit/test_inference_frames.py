"""Frame preprocessing and batched scoring against the FakeBackend (no real model)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from inference.frames import FrameModel, FrameScorer, InputSpec, load_frame_model
from inference.testing import FakeBackend, Responder, constant_rows, two_class_by_mean
from pipeline.errors import ConfigError, InferenceError

BGR_SPEC = InputSpec(
    name="in", size_hw=(4, 6), resize_hw=(8, 10), layout="NHWC", colour="BGR", mean=(1, 2, 3)
)


def model(spec: InputSpec = BGR_SPEC, categories: dict[str, int] | None = None) -> FrameModel:
    return FrameModel(
        name="m",
        version="test",
        onnx_path=Path("/nonexistent.onnx"),
        input=spec,
        output_name="probs",
        categories=categories or {"nsfw": 1},
    )


def solid(value: tuple[int, int, int], hw: tuple[int, int] = (30, 50)) -> np.ndarray:
    return np.full((*hw, 3), value, dtype=np.uint8)


def test_batch_shapes_and_tensor_spec() -> None:
    nchw = InputSpec(name="x", size_hw=(224, 200), layout="NCHW")
    assert BGR_SPEC.batch_shape(5) == (5, 4, 6, 3)
    assert nchw.batch_shape(2) == (2, 3, 224, 200)
    assert nchw.empty_batch(3).dtype == np.float32
    assert nchw.tensor_spec().shape == (None, 3, 224, 200)


@pytest.mark.parametrize("hw", [(30, 50), (8, 10), (3, 2), (1080, 1920)])
def test_solid_frames_become_colour_minus_mean(hw: tuple[int, int]) -> None:
    out = BGR_SPEC.empty_batch(2)
    batch = model().preprocess_into([solid((10, 20, 30), hw), solid((0, 0, 255), hw)], out)
    assert batch.shape == (2, 4, 6, 3)
    assert np.shares_memory(batch, out)
    np.testing.assert_array_equal(batch[0], np.broadcast_to([9, 18, 27], (4, 6, 3)))
    np.testing.assert_array_equal(batch[1], np.broadcast_to([-1, -2, 252], (4, 6, 3)))


def test_centre_crop_after_resize() -> None:
    frame = np.zeros((8, 10, 3), np.uint8)  # already the resize size: no interpolation
    frame[2, 2] = (100, 0, 0)  # first pixel of the 4x6 crop at offset (2, 2)
    frame[5, 7] = (0, 100, 0)  # last pixel of the crop
    frame[1, 1] = (0, 0, 100)  # outside the crop
    spec = InputSpec(name="in", size_hw=(4, 6), resize_hw=(8, 10), colour="BGR")
    batch = model(spec).preprocess_into([frame], spec.empty_batch(1))
    assert batch[0, 0, 0].tolist() == [100, 0, 0]
    assert batch[0, 3, 5].tolist() == [0, 100, 0]
    assert batch.sum() == 200


def test_rgb_nchw_and_scale() -> None:
    spec = InputSpec(
        name="in", size_hw=(2, 2), layout="NCHW", colour="RGB", mean=(1, 2, 3), scale=0.5
    )
    batch = model(spec).preprocess_into([solid((10, 20, 30))], spec.empty_batch(1))
    assert batch.shape == (1, 3, 2, 2)
    # BGR (10, 20, 30) -> RGB (30, 20, 10), minus (1, 2, 3), times 0.5
    assert batch[0, :, 0, 0].tolist() == [14.5, 9.0, 3.5]


def test_buffer_may_be_larger_than_the_batch() -> None:
    out = BGR_SPEC.empty_batch(8)
    batch = model().preprocess_into([solid((1, 2, 3))] * 3, out)
    assert batch.shape[0] == 3
    assert np.shares_memory(batch, out)


@pytest.mark.parametrize(
    ("frames", "out"),
    [
        ([np.zeros((10, 10, 3), np.float32)], BGR_SPEC.empty_batch(1)),
        ([np.zeros((10, 10), np.uint8)], BGR_SPEC.empty_batch(1)),
        ([np.zeros((10, 10, 4), np.uint8)], BGR_SPEC.empty_batch(1)),
        ([solid((0, 0, 0))] * 2, BGR_SPEC.empty_batch(1)),
        ([solid((0, 0, 0))], np.empty((1, 4, 6, 3), np.float64)),
        ([solid((0, 0, 0))], np.empty((1, 3, 4, 6), np.float32)),
    ],
)
def test_preprocess_rejects_bad_frames_and_buffers(
    frames: list[np.ndarray], out: np.ndarray
) -> None:
    with pytest.raises(ValueError, match="m: "):
        model().preprocess_into(frames, out)


def frames_with_means(n: int) -> list[np.ndarray]:
    # Distinct solid frames: mean-subtracted mean grows with i, so does the fake score.
    return [solid((i * 12, i * 12, i * 12)) for i in range(n)]


async def test_scorer_batches_and_keeps_order() -> None:
    backend = FakeBackend(
        {"m": two_class_by_mean("probs")}, signatures={"m": [BGR_SPEC.tensor_spec()]}
    )
    scorer = FrameScorer(backend, model(), max_batch=4)
    scores = await scorer.score(frames_with_means(10))
    assert [call.batch_size for call in backend.calls] == [4, 4, 2]
    assert all(call.model == "m" and set(call.inputs) == {"in"} for call in backend.calls)
    nsfw = [s["nsfw"] for s in scores]
    assert len(nsfw) == 10
    assert nsfw == sorted(nsfw) and len(set(nsfw)) == 10
    # Same frames one at a time: same scores.
    single = [(await scorer.score([f]))[0] for f in frames_with_means(10)]
    assert single == scores


async def test_scorer_maps_categories() -> None:
    backend = FakeBackend({"m": constant_rows("probs", [0.1, 0.2, 0.7])})
    scorer = FrameScorer(backend, model(categories={"nsfw": 1, "gore": 2}))
    assert (
        await scorer.score([solid((0, 0, 0))] * 2)
        == [{"nsfw": pytest.approx(0.2), "gore": pytest.approx(0.7)}] * 2
    )


async def test_concurrent_scores_do_not_share_buffers() -> None:
    backend = FakeBackend({"m": two_class_by_mean("probs")})
    scorer = FrameScorer(backend, model(), max_batch=2)
    frames = frames_with_means(6)
    expected = [await scorer.score([f]) for f in frames]
    results = await asyncio.gather(*(scorer.score([f, f, f]) for f in frames))
    for one, three in zip(expected, results, strict=True):
        assert three == one * 3


async def test_empty_input_makes_no_call() -> None:
    backend = FakeBackend({"m": two_class_by_mean("probs")})
    assert await FrameScorer(backend, model()).score([]) == []
    assert backend.calls == []


async def test_signature_mismatch_surfaces_as_inference_error() -> None:
    wrong = InputSpec(name="in", size_hw=(224, 224), colour="BGR").tensor_spec()
    backend = FakeBackend({"m": two_class_by_mean("probs")}, signatures={"m": [wrong]})
    with pytest.raises(InferenceError, match=r"model 'm': input 'in' has shape \(1, 4, 6, 3\)"):
        await FrameScorer(backend, model()).score([solid((0, 0, 0))])


@pytest.mark.parametrize(
    "responder",
    [
        constant_rows("other", [0.5, 0.5]),  # no "probs" output
        constant_rows("probs", [1.0]),  # too few columns
        lambda inputs: {"probs": np.zeros((7, 2), np.float32)},  # wrong batch size
    ],
)
async def test_bad_backend_output_is_an_inference_error(responder: Responder) -> None:
    backend = FakeBackend({"m": responder})
    with pytest.raises(InferenceError, match="'m'"):
        await FrameScorer(backend, model()).score([solid((0, 0, 0))])


async def test_backend_failures_propagate_and_scorer_recovers() -> None:
    backend = FakeBackend({"m": two_class_by_mean("probs")})
    scorer = FrameScorer(backend, model(), max_batch=2)
    backend.fail_next(InferenceError("backend down"))
    with pytest.raises(InferenceError, match="backend down"):
        await scorer.score(frames_with_means(3))
    assert len(await scorer.score(frames_with_means(3))) == 3


async def test_fake_backend_unknown_model_and_close() -> None:
    backend = FakeBackend({"m": two_class_by_mean("probs")})
    with pytest.raises(InferenceError, match="unknown model 'x'"):
        await backend.infer("x", {})
    await backend.close()
    with pytest.raises(InferenceError, match="closed"):
        await backend.infer("m", {"in": np.zeros((1, 4, 6, 3), np.float32)})


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="max_batch"):
        FrameScorer(FakeBackend({}), model(), max_batch=0)
    with pytest.raises(ConfigError, match="unknown frame model 'nope'"):
        load_frame_model("nope")
    with pytest.raises(ConfigError, match="cannot crop"):
        InputSpec(name="x", size_hw=(224, 224), resize_hw=(200, 256))
