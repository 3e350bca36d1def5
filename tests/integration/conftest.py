"""A real broker for the integration tests.

By default the embedded noida-db broker, started once per session by PID. With
``BILLSTREAM_TEST_KAFKA_URL`` set (``make test-kafka``), the same tests run against that
Kafka instead: genuine Apache Kafka in CI. Every test gets its own topic prefix and
consumer group, so tests never see each other's events.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.config import REPO_ROOT, Settings
from streams.kafka.broker import EmbeddedBroker


@pytest.fixture(scope="session")
def kafka_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("BILLSTREAM_TEST_KAFKA_URL")
    if external:
        yield external
        return
    with EmbeddedBroker(tmp_path_factory.mktemp("broker")) as broker:
        yield broker.url


@pytest.fixture
def isolated(tmp_path: Path, kafka_url: str) -> Settings:
    """Settings for one test: its own topics, group, data folder; fast group timing."""
    run = uuid.uuid4().hex[:8]
    tenants_file = tmp_path / "tenants.toml"
    shutil.copy(REPO_ROOT / "tenants.example.toml", tenants_file)
    return Settings(
        kafka_url=kafka_url,
        topic_prefix=f"t{run}.",
        app_id=f"billstream-test-{run}",
        data_dir=tmp_path / "data",
        tenants_file=tenants_file,
        partitions=4,
        metrics_port=-1,
        session_timeout=6.0,
        heartbeat_interval=0.5,
        retry_max_seconds=0.5,
    )
