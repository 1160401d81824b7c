"""Segment media: fetch a by-reference payload, decode it into sampled frames, hash them.

``fetch`` and ``decode`` turn a segment into frames safely; ``sampling`` decides which
frames; ``pdq`` hashes them; ``dedup`` reuses scores of near-identical frames; ``bank``
matches hashes against known violating pictures; ``control`` applies run-time overrides.
"""

from pipeline.media.bank import BankEntry, BankFile, BankMatch, HashBank
from pipeline.media.decode import (
    ALLOWED_CODECS,
    CONTAINER_DEMUXERS,
    DecodedSegment,
    MediaLimits,
    SampledFrame,
    SamplingStrategy,
    decode_segment,
)
from pipeline.media.dedup import DedupBatch, DedupConfig, Deduplicator
from pipeline.media.fetch import fetch_segment
from pipeline.media.pdq import PdqHash, pdq_hash
from pipeline.media.sampling import (
    SamplePlan,
    SamplingConfig,
    SamplingOverrides,
    SceneDetector,
    StreamSampling,
)

__all__ = [
    "ALLOWED_CODECS",
    "CONTAINER_DEMUXERS",
    "BankEntry",
    "BankFile",
    "BankMatch",
    "DecodedSegment",
    "DedupBatch",
    "DedupConfig",
    "Deduplicator",
    "HashBank",
    "MediaLimits",
    "PdqHash",
    "SamplePlan",
    "SampledFrame",
    "SamplingConfig",
    "SamplingOverrides",
    "SamplingStrategy",
    "SceneDetector",
    "StreamSampling",
    "decode_segment",
    "fetch_segment",
    "pdq_hash",
]
