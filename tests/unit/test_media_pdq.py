"""pipeline.media.pdq: PDQ hashes of BGR frames, in the reference hex format."""

from __future__ import annotations

import cv2
import numpy as np
import pdqhash
import pytest

from pipeline.media.pdq import PdqHash, pdq_hash


def picture(seed: int = 0, size: tuple[int, int] = (240, 320)) -> np.ndarray:
    """A smooth random BGR picture (low frequencies: what PDQ looks at)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return cv2.resize(small, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)


def test_hash_is_pdq_of_the_rgb_picture_in_reference_hex() -> None:
    img = picture()
    bits, quality = pdqhash.compute(np.ascontiguousarray(img[:, :, ::-1]))
    h = pdq_hash(img)
    as_bits = "".join(str(int(b)) for b in bits)  # bit 255 first
    assert h.hex == f"{int(as_bits, 2):064x}"
    assert len(h.hex) == 64 and h.quality == quality
    assert PdqHash.from_hex(h.hex, h.quality) == h


def test_colour_order_matters_bgr_is_handled() -> None:
    img = picture(1)
    assert pdq_hash(img) != pdq_hash(np.ascontiguousarray(img[:, :, ::-1]))


def test_distance_words_and_validation() -> None:
    a = PdqHash.from_hex("f" * 64)
    b = PdqHash.from_hex("0" * 63 + "1")
    assert a.distance(b) == 255 and b.distance(b) == 0
    assert a.words().tolist() == [2**64 - 1] * 4
    assert b.words().tolist() == [0, 0, 0, 1]
    with pytest.raises(ValueError):
        PdqHash.from_hex("xyz")
    with pytest.raises(ValueError):
        PdqHash(1 << 256)
    with pytest.raises(ValueError):
        pdq_hash(np.zeros((8, 8), np.uint8))


def test_same_picture_after_recompression_and_rescale_is_close() -> None:
    img = picture(2, (480, 640))
    ok, jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 40])
    assert ok
    again = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
    smaller = cv2.resize(img, (320, 240), interpolation=cv2.INTER_AREA)
    h = pdq_hash(img)
    # A very smooth picture is PDQ's worst case (measured: 12 bits); photos move 0-2.
    assert h.distance(pdq_hash(again)) <= 20
    assert h.distance(pdq_hash(smaller)) <= 20
    assert h.distance(pdq_hash(picture(3, (480, 640)))) > 64  # another picture


def test_flat_picture_has_low_quality() -> None:
    assert pdq_hash(np.full((64, 64, 3), 128, np.uint8)).quality < 50
