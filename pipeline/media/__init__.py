"""Segment media: fetch a by-reference payload, decode it into sampled frames."""

from pipeline.media.decode import (
    ALLOWED_CODECS,
    CONTAINER_DEMUXERS,
    DecodedSegment,
    MediaLimits,
    SampledFrame,
    SamplingStrategy,
    decode_segment,
)
from pipeline.media.fetch import fetch_segment

__all__ = [
    "ALLOWED_CODECS",
    "CONTAINER_DEMUXERS",
    "DecodedSegment",
    "MediaLimits",
    "SampledFrame",
    "SamplingStrategy",
    "decode_segment",
    "fetch_segment",
]
