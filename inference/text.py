"""Chat toxicity for English and Russian, offline, in batches.

``ChatScorer.score`` is synchronous and CPU-bound (tokenising, stemming and
sparse algebra under the GIL, ~0.1-1 ms a message in a batch): on an event
loop call :meth:`ChatScorer.score_async`, or ``loop.run_in_executor``.

Toxicity of a message is the maximum of the models that can read it:

* alt-profanity-check (English) and toxicityclassifier's English model, always
  (on Cyrillic-only text both return their small prior, ~0.02-0.04);
* toxicityclassifier's Russian model when the message has any Cyrillic letter.

``language`` is a script label: ``"ru"`` when at least half of the letters are
Cyrillic, else ``"en"``. Transliterated Russian ("ty durak") is labelled
``"en"`` and is mostly missed by every model.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from inference._text_models import ProfanityCheckModel, ToxicityClassifierModel

__all__ = ["CHAT_MODEL_NAME", "ChatScorer", "TextScore", "detect_language"]

CHAT_MODEL_NAME = "chat_toxicity"

_CYRILLIC = re.compile(r"[\u0400-\u04FF]")


@dataclass(frozen=True, slots=True)
class TextScore:
    """Toxicity of one chat message, with the model that produced it."""

    toxicity: float
    language: Literal["en", "ru"]
    model: str
    model_version: str


def detect_language(text: str) -> Literal["en", "ru"]:
    """``"ru"`` if at least half of the letters are Cyrillic, else ``"en"``."""
    letters = sum(1 for ch in text if ch.isalpha())
    if letters == 0:
        return "en"
    return "ru" if 2 * len(_CYRILLIC.findall(text)) >= letters else "en"


class ChatScorer:
    """Scores chat messages; load once (about 0.2 s, 15 MB of weights).

    Raises:
        ConfigError: a model package or file is missing or unreadable.
    """

    def __init__(self) -> None:
        self._profanity = ProfanityCheckModel()
        self._toxicity = ToxicityClassifierModel()
        self.model = CHAT_MODEL_NAME
        self.version = (
            f"{self._profanity.name}=={self._profanity.version},"
            f"{self._toxicity.name}=={self._toxicity.version}"
        )

    def score(self, texts: Sequence[str]) -> list[TextScore]:
        """One :class:`TextScore` per message, in order. CPU-bound: see module doc."""
        if not texts:
            return []
        texts = list(texts)
        toxicity = np.maximum(
            self._profanity.predict_proba(texts), self._toxicity.predict_proba(texts, "en")
        )
        cyrillic = [i for i, text in enumerate(texts) if _CYRILLIC.search(text)]
        if cyrillic:
            russian = self._toxicity.predict_proba([texts[i] for i in cyrillic], "ru")
            toxicity[cyrillic] = np.maximum(toxicity[cyrillic], russian)
        return [
            TextScore(
                toxicity=float(p),
                language=detect_language(text),
                model=self.model,
                model_version=self.version,
            )
            for text, p in zip(texts, toxicity, strict=True)
        ]

    async def score_async(self, texts: Sequence[str]) -> list[TextScore]:
        """:meth:`score` in the loop's default executor."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.score, list(texts))
