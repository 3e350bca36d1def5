"""The API poller's cursor survives restarts, kill -9 included: nothing skipped or repeated.

The broker is the embedded noida-db; the Dext sandbox and the poller each run in their own
process, exactly as `billstream sandbox dext` and `billstream ingest dext-api` run.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.dext.api import DextApiConfig, poll_pass
from adapters.dext.cursor import CursorState, KafkaCursorStore
from domain.events import Stage
from streams.config import Settings
from streams.kafka.publish import Publisher
from streams.kafka.topics import ensure_topics
from tests.support import broker_for_test, make_tenants, read_topic, write_tenants

pytestmark = [pytest.mark.broker, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Any]:
    broker = broker_for_test(tmp_path / "broker")
    yield broker
    broker.stop()


class Processes:
    """Child processes of one test; whatever is still running at the end is killed."""

    def __init__(self) -> None:
        self.running: list[subprocess.Popen[str]] = []

    def start(self, args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.running.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.running:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


@pytest.fixture
def processes() -> Iterator[Processes]:
    procs = Processes()
    yield procs
    procs.stop_all()


def base_env(tmp_path: Path, kafka_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLSTREAM_")}
    env |= {
        "BILLSTREAM_KAFKA_URL": kafka_url,
        "BILLSTREAM_DATA_DIR": str(tmp_path / "data"),
        "BILLSTREAM_TENANTS_FILE": str(write_tenants(tmp_path / "tenants.toml")),
        "BILLSTREAM_LOG_LEVEL": "INFO",
    }
    return env


def ready_line(proc: subprocess.Popen[str], within: float = 30) -> dict[str, Any]:
    """The JSON line a server prints when it is ready."""
    assert proc.stdout is not None
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.strip():
            parsed: dict[str, Any] = json.loads(line)
            return parsed
        if proc.poll() is not None:
            stderr = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"exited {proc.returncode} before it was ready: {stderr}")
    raise AssertionError("not ready in time")


def run_once(env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "ingest", "dext-api", "--once"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return summary


async def received_keys(kafka_url: str) -> list[str]:
    return [e.subject for e in await read_topic(kafka_url, "ap.received")]


def exactly_once(keys: list[str]) -> dict[str, int]:
    return {k: n for k, n in collections.Counter(keys).items() if n != 1}


async def test_poller_killed_mid_pass_resumes_without_skip_or_repeat(
    tmp_path: Path, broker: Any, processes: Processes
) -> None:
    env = base_env(tmp_path, broker.url)
    sandbox = processes.start(
        ["sandbox", "dext", "--port", "0", "--items", "30", "--ready", "24", "--latency-ms", "60"],
        env,
    )
    sandbox_env = ready_line(sandbox)["env"]
    env |= sandbox_env | {"BILLSTREAM_DEXT_PAGE_SIZE": "2", "BILLSTREAM_DEXT_POLL_INTERVAL": "600"}

    poller = processes.start(["ingest", "dext-api"], env)
    deadline = time.monotonic() + 60
    while len(await received_keys(broker.url)) < 5:
        assert poller.poll() is None, poller.stderr.read() if poller.stderr else ""
        assert time.monotonic() < deadline, "the poller published nothing"
        await asyncio.sleep(0.05)
    poller.send_signal(signal.SIGKILL)
    poller.wait(10)
    killed_at = await received_keys(broker.url)
    assert 5 <= len(killed_at) < 24, "the kill did not land mid-pass; slow the sandbox down"

    summary = run_once(env)
    keys = await received_keys(broker.url)
    assert exactly_once(keys) == {}
    assert len(keys) == 24
    assert summary["published"] == 24 - len(killed_at)

    # A restart with nothing new publishes nothing; new items are picked up, once.
    assert run_once(env)["published"] == 0
    async with httpx.AsyncClient(base_url=sandbox_env["BILLSTREAM_DEXT_API_URL"]) as client:
        moved = (await client.post("/_sandbox/advance", json={"count": 6})).json()["moved"]
    assert run_once(env)["published"] == 6
    before = set(keys)
    keys = await received_keys(broker.url)
    assert exactly_once(keys) == {}
    assert len(keys) == 30
    assert set(keys) - before == {f"acme-uk:{i}" for i in moved}


class CrashAfterPublish(KafkaCursorStore):
    """Dies after a page was published and acknowledged, before the cursor moves."""

    async def save(self, account: str, state: CursorState) -> None:
        if state.pending is None and state.cursor is not None:
            raise RuntimeError("killed between the broker's ack and the cursor write")
        await super().save(account, state)


async def test_crash_between_ack_and_cursor_write_repeats_nothing(
    tmp_path: Path, broker: Any
) -> None:
    from sandboxes.dext.samples import sample_items
    from sandboxes.dext.sandbox import DextSandbox, start_sandbox

    settings = Settings(kafka_url=broker.url, data_dir=tmp_path / "data")
    await ensure_topics(settings, broker.url)
    tenants = make_tenants()
    acme = [tenants.get("acme-uk")]
    box = DextSandbox([("acme-trading", s.item, s.document_path) for s in sample_items(7)])
    runner, url = await start_sandbox(box)
    config = DextApiConfig(url=url, client_id=box.client_id, client_secret=box.client_secret)
    config = DextApiConfig(**{**config.__dict__, "page_size": 3})
    stores = {
        "cursors_topic": "ap.cursors",
        "received_topic": settings.topic(Stage.RECEIVED),
    }
    try:
        async with Publisher(settings, broker.url) as publisher:
            async with CrashAfterPublish(broker.url, **stores) as crashing:
                with pytest.raises(RuntimeError, match="killed between"):
                    await poll_pass(publisher, acme, config=config, cursors=crashing)
            assert len(await received_keys(broker.url)) == 3
            async with KafkaCursorStore(broker.url, **stores) as cursors:
                (result,) = await poll_pass(publisher, acme, config=config, cursors=cursors)
                assert (result.recovered, result.published) == (3, 4)
                assert (await cursors.load("acme-trading")).pending is None
    finally:
        await runner.cleanup()
    keys = await received_keys(broker.url)
    assert len(keys) == 7 and exactly_once(keys) == {}
