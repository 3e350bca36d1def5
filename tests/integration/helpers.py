"""Running a worker process against a test's settings and a ledger, and reading what it did."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from domain.events import Envelope, Stage
from domain.tenants import load_tenants
from sandboxes.dext.samples import SampleItem, sample_items
from sandboxes.harness import ItemInventory, LedgerHarness, LocalHarness, harness_for
from streams.config import Settings
from streams.demo import Terminal, stop_process, write_tenants
from streams.demo import start_worker as start_worker_process
from streams.kafka.publish import Publisher, received_event
from streams.kafka.topics import ensure_topics
from tests.support import wait_until


@dataclass
class Rig:
    """A test's pipeline: settings, the ledger (a sandbox process or files) and its env."""

    settings: Settings
    harness: LedgerHarness
    env: dict[str, str] = field(default_factory=dict)

    def start_worker(self, log_name: str = "worker.log") -> subprocess.Popen[bytes]:
        return start_worker_process(
            self.settings,
            str(self.settings.kafka_url),
            Path(self.settings.data_dir) / log_name,
            self.env,
            metrics_port=-1,
            embedded=not os.environ.get("BILLSTREAM_TEST_KAFKA_URL"),
        )

    def dump(self, proc: subprocess.Popen[bytes] | None, log_name: str) -> str:
        """A running worker's SIGUSR1 dump (its consumer's partitions, then its tasks' await
        chains), for the failure message of a test that found it stuck."""
        if proc is None or proc.poll() is not None:
            return f"{log_name}: the worker is not running"
        log_path = Path(self.settings.data_dir) / log_name
        before = log_path.stat().st_size if log_path.exists() else 0
        proc.send_signal(signal.SIGUSR1)

        def since_signal() -> str:
            with open(log_path, "rb") as log:
                log.seek(before)
                return log.read().decode(errors="replace")

        # The consumer's part is written last, in one write. Part of a failure message: a
        # dump that never comes is reported below, not raised over the test's own failure.
        with contextlib.suppress(AssertionError):
            wait_until(lambda: "consumer:" in since_signal(), 10, f"{log_name}'s SIGUSR1 dump")
        text = since_signal()
        start = text.find("consumer:")
        return text[start:] if start >= 0 else f"{log_name}: no dump written\n{text[-2000:]}"

    def inventory(self) -> dict[str, ItemInventory]:
        out: dict[str, ItemInventory] = {}
        for tenant in load_tenants(self.settings.tenants_file).all():
            out.update(self.harness.inventory(tenant))
        return out

    def stop(self) -> None:
        self.harness.stop()


def rig(settings: Settings, ledger: str = "local") -> Rig:
    """Start ``ledger`` (its sandbox, for intacct and sage-accounting) for ``settings``."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    tenants = load_tenants(settings.tenants_file)
    harness = harness_for(ledger)
    harness.start(settings.data_dir, tenants)
    wired = settings.model_copy(update={"tenants_file": settings.data_dir / "tenants.toml"})
    write_tenants(wired.tenants_file, tenants, harness, [])
    asyncio.run(ensure_topics(wired, str(settings.kafka_url)))
    return Rig(wired, harness, harness.env())


def prepare(settings: Settings) -> LocalHarness:
    """The local ledger for ``settings`` (files under its data folder), topics created."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    harness = LocalHarness()
    harness.start(settings.data_dir, load_tenants(settings.tenants_file))
    asyncio.run(ensure_topics(settings, str(settings.kafka_url)))
    return harness


def start_worker(settings: Settings, log_name: str = "worker.log") -> subprocess.Popen[bytes]:
    return Rig(settings, LocalHarness()).start_worker(log_name)


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
