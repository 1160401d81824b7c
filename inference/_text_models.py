"""The two bundled chat-toxicity models, loaded offline and scored in batches.

* alt-profanity-check (English): TF-IDF + calibrated LinearSVC, pickled with
  scikit-learn 1.9.1; the package pins exactly that version, so its joblib
  files load without an ``InconsistentVersionWarning``.
* toxicityclassifier (Russian and English): TF-IDF (char_wb 2-4 grams) +
  LogisticRegression pickled with scikit-learn 1.0.2, which cannot be
  installed on Python 3.11 and whose TfidfVectorizer no longer unpickles into
  a working object on 1.9. We never build sklearn objects from these pickles:
  a restricted unpickler reads their plain state (vocabulary, idf, coef,
  intercept) and we score with CountVectorizer + numpy, replicating the
  package's text cleaning (NLTK stop words, tokenizer and Snowball stemmer;
  no NLTK data is needed).
"""

from __future__ import annotations

import hashlib
import pickle
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import joblib
import numpy as np
from nltk.stem.snowball import SnowballStemmer
from nltk.tokenize import word_tokenize
from scipy.special import expit
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.preprocessing import normalize

from inference._resources import distribution_version, package_file, sha256_file
from inference._stopwords import ENGLISH_STOPWORDS, RUSSIAN_STOPWORDS
from pipeline.errors import ConfigError

__all__ = ["ProfanityCheckModel", "ToxicityClassifierModel"]

Lang = Literal["en", "ru"]


def _files_version(distribution: str, paths: Sequence[Path]) -> str:
    # A short hash of the per-file hashes: changes if any weight file changes.
    digest = hashlib.sha256("".join(sha256_file(path) for path in paths).encode())
    return f"{distribution_version(distribution)}+sha256.{digest.hexdigest()[:12]}"


class ProfanityCheckModel:
    """alt-profanity-check: probability that an English message is offensive."""

    name = "alt-profanity-check"

    def __init__(self) -> None:
        vectorizer_path = package_file("profanity_check", "data/vectorizer.joblib")
        model_path = package_file("profanity_check", "data/model.joblib")
        self.version = _files_version("alt-profanity-check", [vectorizer_path, model_path])
        self._vectorizer = joblib.load(vectorizer_path)
        self._model = joblib.load(model_path)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        features = self._vectorizer.transform(list(texts))
        return np.asarray(self._model.predict_proba(features)[:, 1], dtype=np.float64)


class _PickledState:
    """Stand-in for a scikit-learn / scipy object: keeps its pickled ``__dict__``."""

    pickled_class = ""

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


_NUMPY_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy", "float64"),
}


class _StateUnpickler(pickle.Unpickler):
    """Loads sklearn/scipy objects as inert state holders; refuses anything else."""

    def find_class(self, module: str, name: str) -> Any:
        if module.split(".", maxsplit=1)[0] in {"sklearn", "scipy"}:
            return type(name, (_PickledState,), {"pickled_class": f"{module}.{name}"})
        if (module, name) in _NUMPY_ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _load_state(path: Path, expected_class: str) -> _PickledState:
    try:
        with path.open("rb") as fh:
            state = _StateUnpickler(fh).load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, LookupError) as exc:
        raise ConfigError(f"cannot read model file {path}: {exc}") from exc
    found = getattr(state, "pickled_class", type(state).__name__)
    if not found.endswith("." + expected_class):
        raise ConfigError(f"{path}: expected a pickled {expected_class}, found {found}")
    return state


# TfidfVectorizer settings our re-implementation reproduces; anything else is refused.
_VECTORIZER_SETTINGS = {
    "analyzer": "char_wb",
    "ngram_range": (2, 4),
    "lowercase": True,
    "strip_accents": None,
    "preprocessor": None,
    "binary": False,
}
_TFIDF_SETTINGS = {"norm": "l2", "use_idf": True, "sublinear_tf": False}


_DROP_PUNCTUATION = str.maketrans("", "", string.punctuation)


class _Language:
    """One language of toxicityclassifier: cleaning + vectorizer + logistic regression."""

    def __init__(self, language: Lang, model_path: Path, vectorizer_path: Path) -> None:
        # Any: these hold whatever attributes the pickles carried; checked below.
        model: Any = _load_state(model_path, "LogisticRegression")
        vectorizer: Any = _load_state(vectorizer_path, "TfidfVectorizer")
        tfidf: Any = getattr(vectorizer, "_tfidf", None)
        settings = {k: getattr(vectorizer, k, None) for k in _VECTORIZER_SETTINGS} | {
            k: getattr(tfidf, k, None) for k in _TFIDF_SETTINGS
        }
        if settings != _VECTORIZER_SETTINGS | _TFIDF_SETTINGS:
            raise ConfigError(f"{vectorizer_path}: unsupported vectorizer settings {settings}")
        vocabulary: dict[str, int] = vectorizer.vocabulary_
        idf_diag: Any = tfidf._idf_diag  # a csr diagonal matrix; data is the idf vector
        idf = np.asarray(idf_diag.data, dtype=np.float64)
        coef = np.asarray(model.coef_, dtype=np.float64).ravel()
        intercept = float(np.asarray(model.intercept_).ravel()[0])
        classes = list(np.asarray(model.classes_).ravel())
        n = len(vocabulary)
        diagonal = np.array_equal(np.asarray(idf_diag.indices), np.arange(n))
        if classes != [0, 1] or not diagonal or idf.shape != (n,) or coef.shape != (n,):
            raise ConfigError(f"{model_path}: model and vectorizer do not fit together")
        self._idf, self._coef, self._intercept = idf, coef, intercept
        self._counter = CountVectorizer(
            analyzer="char_wb", ngram_range=(2, 4), lowercase=True, vocabulary=vocabulary
        )
        self._language = "russian" if language == "ru" else "english"
        self._stopwords = RUSSIAN_STOPWORDS if language == "ru" else ENGLISH_STOPWORDS
        self._stemmer = SnowballStemmer(self._language)

    def clean(self, text: str) -> str:
        """The package's tokenizer: lower, drop ASCII punctuation, drop stop words, stem."""
        text = text.strip().lower().translate(_DROP_PUNCTUATION)
        # preserve_line=True skips Punkt sentence splitting (NLTK data we cannot
        # download); with the sentence-ending punctuation already removed it
        # would find a single sentence anyway.
        tokens = word_tokenize(text, language=self._language, preserve_line=True)
        return " ".join(self._stemmer.stem(t) for t in tokens if t not in self._stopwords)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        features = self._counter.transform([self.clean(t) for t in texts]).astype(np.float64)
        features.data *= self._idf[features.indices]  # tf * idf, as TfidfTransformer does
        features = normalize(features, norm="l2", copy=False)
        probability = np.asarray(expit(features @ self._coef + self._intercept), np.float64)
        # No known n-gram at all (only stop words / emoji): no evidence, not the
        # intercept's prior (0.34 for Russian).
        probability[features.getnnz(axis=1) == 0] = 0.0
        return probability


class ToxicityClassifierModel:
    """toxicityclassifier's Russian and English models, scored without its runtime."""

    name = "toxicityclassifier"

    def __init__(self) -> None:
        files = {
            (lang, kind): package_file("toxicityclassifier", f"models/{stem}{kind}.bf")
            for lang, stem in (("ru", "Russian"), ("en", "English"))
            for kind in ("Model", "Vectorizer")
        }
        self.version = _files_version("toxicityclassifier", list(files.values()))
        self._languages = {
            lang: _Language(lang, files[lang, "Model"], files[lang, "Vectorizer"])
            for lang in ("ru", "en")
        }

    def predict_proba(self, texts: Sequence[str], language: Lang) -> np.ndarray:
        return self._languages[language].predict_proba(texts)
