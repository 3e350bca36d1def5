"""An idle consumer on the test broker long-polls: a handful of fetches a second, not the
thousands noida-db 0.2.3 drew from aiokafka before streams.kafka.aiokafka_patches (one idle consumer
then burnt most of a CPU; every worker and the broker starved each other)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.consumer.fetcher import Fetcher

pytestmark = pytest.mark.broker


def test_an_idle_consumer_sends_few_fetches(
    kafka_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bootstrap = kafka_url.removeprefix("kafka://")
    fetches = 0
    installed = Fetcher._proc_fetch_request  # the wait, when adapters applied it

    async def counted(self: Any, assignment: Any, node_id: int, request: Any) -> bool:
        nonlocal fetches
        fetches += 1
        result: bool = await installed(self, assignment, node_id, request)
        return result

    monkeypatch.setattr(Fetcher, "_proc_fetch_request", counted)

    async def idle() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait("idle-fetch-check", b"one")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            "idle-fetch-check", bootstrap_servers=bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            assert await consumer.getone()  # caught up: from here on every fetch is empty
            nonlocal fetches
            fetches = 0
            deadline = asyncio.get_running_loop().time() + 2
            while asyncio.get_running_loop().time() < deadline:
                assert not await consumer.getmany(timeout_ms=200)
        finally:
            await consumer.stop()

    asyncio.run(idle())
    # About 10 a second with the wait (2 on Apache Kafka); thousands without it.
    assert fetches <= 40, f"{fetches} fetches in 2 s of an idle consumer"


def _in_a_fresh_interpreter(code: str) -> None:
    subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=True, timeout=120)


def test_importing_adapters_leaves_aiokafka_alone() -> None:
    _in_a_fresh_interpreter(
        """
        import adapters, adapters.dext.cursor, adapters.intacct.ledger
        import adapters.sage_accounting.ledger, adapters.sqlite_ledger
        from aiokafka.consumer.fetcher import Fetcher
        from streams.kafka import aiokafka_patches
        assert Fetcher._proc_fetch_request is aiokafka_patches._original_proc_fetch_request
        """
    )


def test_the_cli_entry_point_installs_the_wait() -> None:
    _in_a_fresh_interpreter(
        """
        import sys
        from aiokafka.consumer.fetcher import Fetcher
        from streams.kafka import aiokafka_patches
        import streams.cli.main, streams.pipeline.runtime
        assert Fetcher._proc_fetch_request is aiokafka_patches._original_proc_fetch_request
        sys.argv = ["billstream", "--help"]
        try:
            streams.cli.main.main()
        except SystemExit:
            pass
        assert Fetcher._proc_fetch_request is aiokafka_patches._proc_fetch_request
        """
    )
