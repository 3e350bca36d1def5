"""A real broker for the integration tests.

By default the embedded noida-db broker, started once per session by PID. With
``BILLSTREAM_TEST_KAFKA_URL`` set (``make test-kafka``), the same tests run against that
Kafka instead: genuine Apache Kafka in CI. Every test gets its own topic prefix and
consumer group, so tests never see each other's events.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.config import Settings
from streams.kafka.broker import EmbeddedBroker
from tests.support import run_settings


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
    return run_settings(tmp_path, kafka_url, "t")
