"""pipeline.media.dedup: reuse of the scores of a stream's last inferred frame."""

from __future__ import annotations

import pytest

from pipeline.media.dedup import DedupConfig, Deduplicator
from pipeline.media.pdq import PdqHash

BASE = PdqHash.from_hex("0" * 64)


def near(bits: int, quality: int = 100) -> PdqHash:
    """A hash ``bits`` bits away from BASE."""
    return PdqHash((1 << bits) - 1, quality)


def test_first_frame_is_inferred_then_near_duplicates_reuse_its_scores() -> None:
    d = Deduplicator(DedupConfig(max_distance=8))
    b = d.batch()
    first = b.assign("s", BASE, 0)
    dup = b.assign("s", near(8), 500)  # within this batch: waits for the first's result
    other = b.assign("s", near(9), 1000)  # too far: inferred, and becomes the anchor
    assert (first.slot, first.duplicate) == (0, False)
    assert (dup.slot, dup.duplicate) == (0, True)
    assert (other.slot, other.duplicate, b.inferred, b.duplicates) == (1, False, 2, 1)
    results = [{"nsfw": 0.1}, {"nsfw": 0.2}]
    assert b.scores_of(dup, results) == {"nsfw": 0.1}
    b.commit(results)
    nxt = d.batch()
    again = nxt.assign("s", near(9), 2000)  # the anchor is now the 9-bit frame
    assert again.duplicate and again.slot is None and again.cached == {"nsfw": 0.2}
    assert nxt.scores_of(again, []) == {"nsfw": 0.2}
    assert not nxt.assign("t", near(9), 2000).duplicate  # per stream


def test_no_reuse_when_old_backwards_low_quality_or_disabled() -> None:
    def reused(config: DedupConfig, pdq: PdqHash, t_ms: int) -> bool:
        d = Deduplicator(config)
        b = d.batch()
        b.assign("s", BASE, 10_000)
        b.commit([{"nsfw": 0.5}])
        return d.batch().assign("s", pdq, t_ms).duplicate

    cfg = DedupConfig(max_distance=8, max_age_ms=5000, min_quality=50)
    assert reused(cfg, near(2), 15_000)
    assert not reused(cfg, near(2), 15_001)  # older than max_age_ms
    assert not reused(cfg, near(2), 9_999)  # stream time went backwards
    assert not reused(cfg, near(2, quality=49), 11_000)  # unreliable hash
    assert not reused(DedupConfig(enabled=False), BASE, 10_000)
    assert reused(DedupConfig(max_distance=0), BASE, 10_000)


def test_a_batch_that_is_not_committed_leaves_no_trace() -> None:
    d = Deduplicator(DedupConfig())
    failed = d.batch()
    failed.assign("s", BASE, 0)  # inference failed: commit never called
    retry = d.batch()
    assert not retry.assign("s", BASE, 0).duplicate
    with pytest.raises(ValueError, match="1 inferred"):
        retry.commit([])
    retry.commit([{"nsfw": 0.0}])
    assert len(d) == 1


def test_anchors_are_bounded_per_stream() -> None:
    d = Deduplicator(DedupConfig(), max_streams=2)
    for name in ("a", "b", "c"):
        b = d.batch()
        b.assign(name, BASE, 0)
        b.commit([{"nsfw": 0.0}])
    assert len(d) == 2
    assert not d.batch().assign("a", BASE, 0).duplicate  # evicted
    assert d.batch().assign("c", BASE, 0).duplicate


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        DedupConfig(max_distance=257)
    with pytest.raises(ValueError):
        Deduplicator(DedupConfig(), max_streams=0)
