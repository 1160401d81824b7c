"""Tesseract (rus+eng) on single text-line crops, for the Cyrillic PP-OCR cannot read.

The tesserocr wheel bundles libtesseract but no language data: the
``*.traineddata`` files come from the system (Debian: ``tesseract-ocr-eng``,
``tesseract-ocr-rus``). :func:`find_tessdata` looks in ``TESSDATA_PREFIX`` and
the Debian locations. One ``PyTessBaseAPI`` is not thread-safe: a reader holds
one behind a lock (tesserocr releases the GIL while it recognises).
"""

from __future__ import annotations

import glob
import os
import re
import threading
from pathlib import Path

import cv2
import numpy as np

from pipeline.errors import ConfigError

__all__ = ["TesseractReader", "cyrillic_share", "find_tessdata", "line_image", "text_is_light"]

_CYRILLIC = re.compile(r"[\u0400-\u04FF]")
_LINE_HEIGHT_PX = 48
_BORDER_PX = 12


def cyrillic_share(text: str) -> float:
    """Fraction of the letters of ``text`` that are Cyrillic (0.0 without letters)."""
    letters = sum(1 for ch in text if ch.isalpha())
    return len(_CYRILLIC.findall(text)) / letters if letters else 0.0


def find_tessdata(languages: tuple[str, ...], path: str | Path | None = None) -> Path:
    """A tessdata folder holding ``<lang>.traineddata`` for every language; ConfigError if none."""
    candidates = [Path(path)] if path else []
    if not path:
        if prefix := os.environ.get("TESSDATA_PREFIX"):
            candidates += [Path(prefix), Path(prefix) / "tessdata"]
        candidates += [Path(p) for p in sorted(glob.glob("/usr/share/tesseract-ocr/*/tessdata"))]
        candidates += [Path("/usr/share/tessdata"), Path("/usr/local/share/tessdata")]
    for folder in candidates:
        if all((folder / f"{lang}.traineddata").is_file() for lang in languages):
            return folder
    raise ConfigError(
        f"no tessdata folder with {'+'.join(languages)} found in {[str(c) for c in candidates]}; "
        "install tesseract-ocr-eng and tesseract-ocr-rus (Debian) or set TESSDATA_PREFIX"
    )


def line_image(crop: np.ndarray, *, invert: bool) -> np.ndarray:
    """Grey ``uint8`` line, 48 px high, dark text on light with a margin (tesseract's taste)."""
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    width = max(1, round(grey.shape[1] * _LINE_HEIGHT_PX / max(grey.shape[0], 1)))
    grey = cv2.resize(grey, (width, _LINE_HEIGHT_PX), interpolation=cv2.INTER_CUBIC)
    if invert:
        grey = 255 - grey
    return cv2.copyMakeBorder(
        grey, _BORDER_PX, _BORDER_PX, _BORDER_PX, _BORDER_PX, cv2.BORDER_CONSTANT, value=255
    )


def text_is_light(crop: np.ndarray) -> bool:
    """Whether a line crop is light text on dark: Otsu's light class is the minority."""
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    _, binary = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return bool(np.count_nonzero(binary) < binary.size / 2)


class TesseractReader:
    """Reads one text line (PSM 7) per call; tries both polarities, keeps the surer reading.

    Raises:
        ConfigError: tesserocr is missing or the language data cannot be loaded.
    """

    def __init__(
        self, languages: tuple[str, ...] = ("rus", "eng"), tessdata: str | Path | None = None
    ) -> None:
        try:
            import tesserocr
        except ImportError as exc:
            raise ConfigError("tesserocr is not installed (pip install tesserocr)") from exc
        self.tessdata = find_tessdata(languages, tessdata)
        self.languages = "+".join(languages)
        try:
            self._api = tesserocr.PyTessBaseAPI(
                path=str(self.tessdata) + os.sep,
                lang=self.languages,
                psm=tesserocr.PSM.SINGLE_LINE,
                oem=tesserocr.OEM.LSTM_ONLY,
            )
        except RuntimeError as exc:
            raise ConfigError(
                f"tesseract cannot load {self.languages} from {self.tessdata}"
            ) from exc
        self.version = f"tesseract-{tesserocr.tesseract_version().split()[1]}+{self.languages}"
        self._lock = threading.Lock()

    def _read(self, image: np.ndarray) -> tuple[str, float]:
        height, width = image.shape
        self._api.SetImageBytes(image.tobytes(), width, height, 1, width)
        text = " ".join(self._api.GetUTF8Text().split())
        return text, max(0.0, float(self._api.MeanTextConf())) / 100.0

    def read(self, crop: np.ndarray, *, sure_confidence: float = 0.8) -> tuple[str, float]:
        """``(text, confidence in [0, 1])`` of a BGR or grey line crop. CPU-bound, blocking.

        The likelier polarity (:func:`text_is_light`) is read first; the other
        one too when that reading's confidence is below ``sure_confidence``.
        """
        first = text_is_light(crop)
        with self._lock:
            reading = self._read(line_image(crop, invert=first))
            if reading[1] < sure_confidence:
                other = self._read(line_image(crop, invert=not first))
                reading = max(reading, other, key=lambda r: (r[1], len(r[0])))
        return reading

    def close(self) -> None:
        with self._lock:
            self._api.End()
