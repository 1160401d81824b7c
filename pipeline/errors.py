"""The one error root of streamwarden and its narrow subclasses.

Every error that comes from *input* (a message, a segment, a URI) carries a
machine-readable ``reason`` code: that code is what a dead-letter record holds.

    StreamwardenError
    ├── InputError                  bad input -> dead letter (has ``reason``)
    │   ├── SchemaError             message fails its JSON Schema / is not JSON
    │   ├── FetchError              a by-reference payload cannot be fetched
    │   │   ├── UriNotAllowed
    │   │   ├── FetchTooLarge
    │   │   └── FetchFailed
    │   └── MediaError              a segment cannot be demuxed/decoded safely
    │       ├── EmptyPayload
    │       ├── PayloadTooLarge
    │       ├── UnsupportedContainer
    │       ├── UnsupportedCodec
    │       ├── NoVideoStream
    │       ├── ResolutionTooLarge
    │       ├── DurationTooLong
    │       ├── TooManyFrames
    │       ├── NotMedia           playlist / concat script / other indirection
    │       └── CorruptMedia
    │   └── UnexpectedInputError   a bug met on this input (reason internal_error)
    ├── ConfigError                 bad settings, topics, model files
    └── InferenceError              a model could not run (not the input's fault)
"""

from __future__ import annotations

from typing import ClassVar


class StreamwardenError(Exception):
    """Root of every error streamwarden raises on purpose."""


class ConfigError(StreamwardenError):
    """Settings, topic declarations or model files are wrong."""


class InferenceError(StreamwardenError):
    """A model could not be run (backend down, signature mismatch...)."""


class InputError(StreamwardenError):
    """The input itself is bad; the message goes to the dead-letter topic."""

    reason: ClassVar[str] = "bad_input"


class SchemaError(InputError):
    reason = "schema_invalid"


class FetchError(InputError):
    reason = "fetch_failed"


class UriNotAllowed(FetchError):
    reason = "uri_not_allowed"


class FetchTooLarge(FetchError):
    reason = "fetch_too_large"


class FetchFailed(FetchError):
    reason = "fetch_failed"


class MediaError(InputError):
    reason = "media_invalid"


class EmptyPayload(MediaError):
    reason = "empty_payload"


class PayloadTooLarge(MediaError):
    reason = "payload_too_large"


class UnsupportedContainer(MediaError):
    reason = "unsupported_container"


class UnsupportedCodec(MediaError):
    reason = "unsupported_codec"


class NoVideoStream(MediaError):
    reason = "no_video_stream"


class ResolutionTooLarge(MediaError):
    reason = "resolution_too_large"


class DurationTooLong(MediaError):
    reason = "duration_too_long"


class TooManyFrames(MediaError):
    reason = "too_many_frames"


class NotMedia(MediaError):
    reason = "not_media"


class CorruptMedia(MediaError):
    reason = "corrupt_media"


class UnexpectedInputError(InputError):
    """A parser or decoder failed in a way nobody foresaw: still the input's dead letter."""

    reason = "internal_error"


class ModelNotFound(InferenceError):
    """The inference server does not serve a model of that name (or it is not loaded)."""


class BackendUnavailable(InferenceError):
    """The inference server cannot be reached (refused, reset, UNAVAILABLE) after retries."""


class SignatureMismatch(InferenceError):
    """The inputs do not match the served model's signature (names, dtype, shape, batch size)."""


class InferenceTimeout(InferenceError):
    """The inference server did not answer within the call's timeout."""


class CircuitOpen(BackendUnavailable):
    """Failing fast: the circuit breaker is open after repeated backend failures."""
