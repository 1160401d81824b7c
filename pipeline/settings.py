"""Settings from the environment (prefix ``SW_``), one class per concern.

Secrets are ``SecretStr``: they never appear in ``repr`` or logs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.policy.loader import default_policy_file

_ENV = SettingsConfigDict(env_prefix="SW_", env_file=".env", extra="ignore")


class KafkaSettings(BaseSettings):
    """Where the broker is. Point at your own cluster by setting these."""

    model_config = SettingsConfigDict(env_prefix="SW_KAFKA_", env_file=".env", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    topic_prefix: str = "sw."
    replication_factor: int = 1

    def confluent_config(self) -> dict[str, Any]:
        """librdkafka settings for confluent-kafka clients."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
            conf["sasl.username"] = self.sasl_username or ""
            conf["sasl.password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else ""
            )
        if self.ssl_cafile:
            conf["ssl.ca.location"] = str(self.ssl_cafile)
        return conf


class WorkerSettings(BaseSettings):
    """Knobs of the Faust worker: batching, sampling, media bounds."""

    model_config = _ENV

    app_id: str = "streamwarden"
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9464, ge=0, description="0 disables the metrics server")
    segment_batch_max: int = Field(default=8, ge=1)
    segment_batch_wait_ms: int = Field(default=200, ge=1)
    chat_batch_max: int = Field(default=64, ge=1)
    chat_batch_wait_ms: int = Field(default=100, ge=1)
    decode_threads: int = Field(default=2, ge=1)
    onnx_threads: int = Field(default=2, ge=1)
    inference_backend: Literal["onnx", "triton"] = "onnx"
    triton_url: str = "127.0.0.1:8001"
    triton_protocol: Literal["grpc", "http"] = "grpc"
    triton_shared_memory: bool = False
    triton_timeout_s: float = Field(default=10.0, gt=0)
    triton_retries: int = Field(default=8, ge=0)
    model_registry_path: Path | None = None
    frame_batch_max: int = Field(default=16, ge=1)
    sampling: Literal["keyframes", "fps", "scene", "adaptive"] = Field(
        default="keyframes", description="default sampling; the control topic overrides per stream"
    )
    sample_fps: float = Field(default=1.0, gt=0, le=30, description="fps strategy's rate")
    scene_threshold: float = Field(
        default=12.0, gt=0, le=255, description="mean abs luma diff (0-255) of 64x64 thumbnails"
    )
    scene_check_fps: float = Field(default=5.0, gt=0, le=30)
    adaptive_fps: float = Field(default=5.0, gt=0, le=30, description="rate while boosted")
    adaptive_trigger_score: float = Field(
        default=0.35, ge=0, le=1, description="a segment score >= this boosts adaptive sampling"
    )
    adaptive_hold_s: float = Field(default=30.0, ge=0, description="stream time a boost lasts")
    stream_state_max: int = Field(default=10_000, ge=1, description="streams with kept state")
    dedup_enabled: bool = True
    dedup_max_hamming: int = Field(
        default=8, ge=0, le=256, description="PDQ distance to the last inferred frame to reuse"
    )
    dedup_max_age_s: float = Field(default=30.0, ge=0, description="oldest reusable scores")
    pdq_min_quality: int = Field(default=50, ge=0, le=100, description="PDQ quality to trust")
    hash_bank_path: Path | None = Field(default=None, description="JSONL bank of PDQ hashes")
    hash_match_max_hamming: int = Field(default=31, ge=0, le=256)
    frame_max_side_px: int = Field(default=448, ge=32)
    ocr_enabled: bool = Field(
        default=True, description="read burned-in text on the frames the registry's schedule picks"
    )
    ocr_every_nth_segment: int | None = Field(
        default=None,
        ge=1,
        description="OCR reads only segments whose seq is a multiple of this (default: the model "
        "registry's ocr.every_nth_segment, 1); OCR is most of a worker's CPU, so this is the "
        "largest capacity knob",
    )
    ocr_max_side_px: int = Field(
        default=1280,
        ge=32,
        description="OCR frames are kept at up to this longer side (720p) while the classifiers "
        "get frame_max_side_px",
    )
    thumbnail_max_side_px: int = Field(
        default=320, ge=32, le=1280, description="review tasks' JPEG of the evidence frame"
    )
    segment_max_bytes: int = 16 * 1024 * 1024
    segment_max_width_px: int = 3840
    segment_max_height_px: int = 2160
    segment_max_duration_ms: int = 30_000
    segment_max_decoded_frames: int = 1000
    fetch_file_roots: tuple[Path, ...] = ()
    fetch_timeout_s: float = 10.0
    dead_letter_max_payload_bytes: int = 1024 * 1024
    commit_interval_s: float = 1.0
    onnx_shrink_arenas: bool = Field(
        default=True,
        description="embedded backend: models with free input sizes (OCR) give their memory "
        "back after each run (3.0 -> 0.6 GB resident for the OCR detector, +17% of its CPU; "
        "benchmarks/results/ort_memory.json)",
    )
    session_timeout_s: float = Field(
        default=10.0,
        ge=6,
        le=300,
        description="consumer-group session timeout: how long a dead worker (SIGKILL, lost host) "
        "holds its partitions before the group moves them; faust's default is 60 s. Heartbeats "
        "come from faust's consumer thread, so a busy event loop does not miss them",
    )
    partition_stall_s: float = Field(
        default=120.0,
        gt=0,
        description="an input partition whose commit stands still this long behind the log end "
        "is sought back to its committed offset (pipeline.commit_guard); keep it above the "
        "longest batch",
    )
    policy_file: Path = Field(
        default_factory=default_policy_file,
        description="policy.v1 YAML (default: the shipped policies/default.yaml); its version is "
        "stamped on every output",
    )
    table_store: str = Field(
        default="memory://",
        pattern=r"^(memory|rocksdb)://",
        description="Faust table store for the policy state: memory:// (rebuilt from the "
        "changelog on start) or rocksdb:// (needs the rocksdb extra: rocksdict)",
    )
    state_dir: Path = Field(
        default=Path(".data/faust"),
        description="Faust's data folders (RocksDB state): <state_dir>/<app_id>",
    )
