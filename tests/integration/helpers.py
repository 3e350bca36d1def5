"""Running a worker process against a test's settings, and reading what it did."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from adapters.dext.samples import SampleItem, sample_items
from adapters.harness import ItemInventory, LocalHarness
from domain.events import Envelope, Stage
from domain.tenants import load_tenants
from streams.config import Settings
from streams.demo import Terminal, stop_process
from streams.publish import Publisher, received_event
from streams.topics import ensure_topics


def prepare(settings: Settings) -> LocalHarness:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    harness = LocalHarness()
    harness.start(settings.data_dir, load_tenants(settings.tenants_file))
    asyncio.run(ensure_topics(settings, str(settings.kafka_url)))
    return harness


def start_worker(settings: Settings, log_name: str = "worker.log") -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "BILLSTREAM_KAFKA_URL": str(settings.kafka_url),
        "BILLSTREAM_DATA_DIR": str(settings.data_dir),
        "BILLSTREAM_TENANTS_FILE": str(settings.tenants_file),
        "BILLSTREAM_TOPIC_PREFIX": settings.topic_prefix,
        "BILLSTREAM_APP_ID": settings.app_id,
        "BILLSTREAM_PARTITIONS": str(settings.partitions),
        "BILLSTREAM_METRICS_PORT": "-1",
        "BILLSTREAM_SESSION_TIMEOUT": str(settings.session_timeout),
        "BILLSTREAM_HEARTBEAT_INTERVAL": str(settings.heartbeat_interval),
        "BILLSTREAM_RETRY_MAX_SECONDS": str(settings.retry_max_seconds),
        "BILLSTREAM_LOG_LEVEL": "INFO",
    }
    if not os.environ.get("BILLSTREAM_TEST_KAFKA_URL"):
        # The embedded broker needs static membership to survive a SIGKILLed member (see
        # README, Known limits); a restarted worker keeps its identity, as under systemd.
        env["BILLSTREAM_GROUP_INSTANCE_ID"] = f"{settings.app_id}-worker"
    with open(Path(settings.data_dir) / log_name, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def events_for(items: list[SampleItem]) -> list[Envelope]:
    return [
        received_event(s.tenant, s.item, source="sample", document=s.document_ref()) for s in items
    ]


async def publish(settings: Settings, events: list[Envelope]) -> None:
    async with Publisher(settings, str(settings.kafka_url)) as publisher:
        await publisher.send_many([(ev, Stage.RECEIVED) for ev in events])


async def wait_terminal(
    settings: Settings, expected: dict[str, int], within: float = 120
) -> Terminal:
    async with Terminal(settings, str(settings.kafka_url)) as terminal:
        await terminal.wait(expected, within)
        return terminal


def inventory(harness: LocalHarness, settings: Settings) -> dict[str, ItemInventory]:
    out: dict[str, ItemInventory] = {}
    for tenant in load_tenants(settings.tenants_file).all():
        out.update(harness.inventory(tenant))
    return out


def expected_outcomes(items: list[SampleItem]) -> dict[str, str]:
    """Item key -> "attached" or the reason its ``_expect`` note gives."""
    out = {}
    for s in items:
        note = s.item.get("_expect")
        out[f"{s.tenant}:{s.item['id']}"] = note.split(":")[0] if note else "attached"
    return out


__all__ = ["sample_items", "stop_process"]
