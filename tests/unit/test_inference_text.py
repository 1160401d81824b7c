"""Language labelling and the restricted model-file loader (no real models needed)."""

from __future__ import annotations

import collections
import pickle
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression

from inference._text_models import _load_state, _PickledState
from inference.text import TextScore, detect_language
from pipeline.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("nice stream, hello!", "en"),
        ("привет всем, отличный стрим", "ru"),
        ("ЁЖИК в тумане", "ru"),
        ("ты fucking idiot", "en"),  # 2 Cyrillic letters of 15
        ("ты такой fucking дебил", "ru"),
        ("gg привет", "ru"),  # half the letters: Russian
        ("", "en"),
        ("12345 !!! 🙂", "en"),
        ("privet, ty durak", "en"),  # transliteration is not detected
    ],
)
def test_detect_language(text: str, language: str) -> None:
    assert detect_language(text) == language


def test_text_score_is_frozen() -> None:
    score = TextScore(toxicity=0.5, language="en", model="m", model_version="1")
    with pytest.raises(AttributeError):
        score.toxicity = 1.0  # type: ignore[misc]


def test_state_loader_reads_sklearn_pickles_without_building_estimators(tmp_path: Path) -> None:
    path = tmp_path / "lr.pickle"
    path.write_bytes(pickle.dumps(LogisticRegression(C=3)))
    state = _load_state(path, "LogisticRegression")
    assert isinstance(state, _PickledState)
    assert not isinstance(state, LogisticRegression)
    assert state.pickled_class == "sklearn.linear_model._logistic.LogisticRegression"
    assert state.C == 3  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="expected a pickled TfidfVectorizer"):
        _load_state(path, "TfidfVectorizer")


def test_state_loader_refuses_other_classes(tmp_path: Path) -> None:
    path = tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps(collections.OrderedDict(a=1)))
    with pytest.raises(ConfigError, match=r"refusing to load collections\.OrderedDict"):
        _load_state(path, "LogisticRegression")
    with pytest.raises(ConfigError, match="cannot read"):
        _load_state(tmp_path / "missing.pickle", "LogisticRegression")
