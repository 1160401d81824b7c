"""PDQ perceptual hashes (Meta's PDQ, via ``pdqhash``) of decoded frames. Pure code.

A hash is 256 bits; two pictures are "the same" when few bits differ (Hamming
distance). Hex strings follow the PDQ reference format (64 hex digits, most
significant word first), so hashes interoperate with other PDQ tools and banks.
``quality`` (0-100) says how much structure the picture has: PDQ's authors advise
not to match hashes below 50 (flat or near-flat pictures hash unreliably).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pdqhash

__all__ = ["PDQ_BITS", "PdqHash", "pdq_hash"]

PDQ_BITS = 256
_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class PdqHash:
    value: int  # the 256 bits, bit 255 first in the hex form
    quality: int = 100

    def __post_init__(self) -> None:
        if not 0 <= self.value < 1 << PDQ_BITS or not 0 <= self.quality <= 100:
            raise ValueError(f"bad PDQ hash value/quality {self.quality}")

    @property
    def hex(self) -> str:
        return f"{self.value:064x}"

    @classmethod
    def from_hex(cls, text: str, quality: int = 100) -> PdqHash:
        text = text.strip().lower()
        if not _HEX.match(text):
            raise ValueError(f"a PDQ hash is 64 hex digits, got {text[:80]!r}")
        return cls(int(text, 16), quality)

    def words(self) -> npt.NDArray[np.uint64]:
        """Four 64-bit words, most significant first (the layout of a hash bank's matrix)."""
        raw = self.value.to_bytes(PDQ_BITS // 8, "big")
        return np.frombuffer(raw, dtype=">u8").astype(np.uint64)

    def distance(self, other: PdqHash) -> int:
        """Hamming distance: how many of the 256 bits differ."""
        return (self.value ^ other.value).bit_count()


def pdq_hash(image_bgr: npt.NDArray[np.uint8]) -> PdqHash:
    """The PDQ hash of an HxWx3 uint8 BGR picture (OpenCV order; PDQ wants RGB luma)."""
    if image_bgr.dtype != np.uint8 or image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ValueError(f"expected HxWx3 uint8, got {image_bgr.shape}:{image_bgr.dtype}")
    bits, quality = pdqhash.compute(image_bgr[:, :, ::-1])  # a view, no copy
    packed = np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()
    return PdqHash(int.from_bytes(packed, "big"), int(quality))
