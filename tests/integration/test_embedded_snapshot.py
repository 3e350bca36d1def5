"""The embedded broker across a save cut short: a torn temporary snapshot beside the last
whole one is never read, and what the whole one holds survives the restart."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.kafka.broker import SNAPSHOT, EmbeddedBroker

pytestmark = [pytest.mark.broker]


async def _records(bootstrap: str, topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=5000)
        return [r.value or b"" for records in batch.values() for r in records]
    finally:
        await consumer.stop()


async def test_a_torn_save_is_discarded_and_the_whole_snapshot_is_read(tmp_path: Path) -> None:
    data = tmp_path / "broker"
    with EmbeddedBroker(data) as broker:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait("ap.snapshot-test", b"kept")
        finally:
            await producer.stop()
    assert (data / SNAPSHOT).stat().st_size > 0  # SIGTERM saved the log
    # What a SIGKILL in the middle of the next save leaves: a truncated copy beside it.
    whole = (data / SNAPSHOT).read_bytes()
    (data / "kafka.tmp").write_bytes(whole[: len(whole) // 2])
    with EmbeddedBroker(data) as broker:
        assert not (data / "kafka.tmp").exists()
        assert await _records(broker.bootstrap, "ap.snapshot-test") == [b"kept"]
