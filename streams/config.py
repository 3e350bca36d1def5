"""Settings from the environment (prefix ``BILLSTREAM_``); secrets never come from files."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.events import Stage

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLES_DIR = REPO_ROOT / "sandboxes" / "dext" / "samples"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BILLSTREAM_", extra="ignore")

    kafka_url: str | None = Field(
        default=None,
        description="kafka://host:port[;host:port]; unset = start the embedded noida-db broker",
    )
    app_id: str = "billstream"
    topic_prefix: str = "ap."
    partitions: int = Field(default=4, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    # The stage topics are the audit trail and what replay reads: kept for ever (-1) unless
    # set, instead of the cluster's default (7 days on Apache Kafka).
    topic_retention_ms: int = Field(
        default=-1, ge=-1, description="retention.ms of the stage topics; -1 = for ever"
    )
    # Every event is JSON that repeats its field names: lz4 makes the log (and the embedded
    # broker's snapshot, which keeps the compressed batches) about five times smaller.
    compression: Literal["lz4", "zstd", "gzip", "snappy", "none"] = "lz4"
    # Measured: 10 ms cut the bare chain to a third (each agent waits out the linger on every
    # send it awaits) and did not speed the pipeline; kept at 0, a knob for remote brokers.
    producer_linger_ms: int = Field(default=0, ge=0, le=1000)
    data_dir: Path = Path(".billstream")
    tenants_file: Path = REPO_ROOT / "tenants.example.toml"
    document_dirs: list[Path] = Field(default_factory=lambda: [SAMPLES_DIR])
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(
        default=9464, ge=-1, le=65535, description="0 = pick a free port, -1 = no endpoint"
    )
    # Transient failures (rate_limited, unavailable) are retried in place this many times,
    # with capped exponential backoff and jitter, before the item is parked.
    retry_attempts: int = Field(default=6, ge=1)
    retry_max_seconds: float = Field(default=30.0, gt=0)
    log_level: str = "WARNING"
    # Items each stage works on at once per worker. Sage calls are the slow part; several in
    # flight lets the Intacct client coalesce bills into one request. Per-item order holds:
    # an item has one event per stage, and a per-item lock guards redeliveries.
    stage_concurrency: int = Field(default=8, ge=1, le=64)
    # Static group membership (KIP-345): a worker restarted with the same id takes its
    # partitions back at once instead of waiting for the dead member's session to lapse.
    group_instance_id: str | None = None
    # Faust group timing: short enough that a killed worker's partitions move on quickly.
    session_timeout: float = 10.0
    heartbeat_interval: float = 1.0

    def topic(self, stage: Stage) -> str:
        return f"{self.topic_prefix}{stage.value}"

    @property
    def producer_compression(self) -> str | None:
        return None if self.compression == "none" else self.compression

    @property
    def ledgers_dir(self) -> Path:
        return self.data_dir / "ledgers"

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"
