"""pipeline.simulate.synth's bitrate and grain options (used by the decode benchmark)."""

from __future__ import annotations

import pytest

from pipeline.media.decode import MediaLimits, decode_segment
from pipeline.simulate.synth import encode_segment

SHAPE = {"stream_id": "bench", "seq": 1, "width": 640, "height": 360, "fps": 30}


def test_bitrate_with_grain_meets_the_target() -> None:
    data = encode_segment(**SHAPE, duration_ms=2000, bitrate_bps=1_500_000, grain=2)
    bitrate = len(data) * 8 / 2.0
    assert 1_100_000 < bitrate < 1_900_000
    seg = decode_segment(data, "mpegts", limits=MediaLimits())
    assert [f.pts_ms for f in seg.frames] == [0]  # still one key frame per 2 s GOP


def test_grain_is_deterministic_and_costs_bits() -> None:
    clean = encode_segment(**SHAPE, duration_ms=500)
    grainy = encode_segment(**SHAPE, duration_ms=500, grain=3)
    assert grainy == encode_segment(**SHAPE, duration_ms=500, grain=3)
    assert len(grainy) > 1.5 * len(clean)


@pytest.mark.parametrize("bad", [{"bitrate_bps": 10}, {"grain": -1}, {"grain": 100}])
def test_bad_options(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        encode_segment(**SHAPE, duration_ms=100, **bad)
