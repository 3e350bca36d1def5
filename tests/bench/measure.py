"""What the benchmark reads off a run: a process's CPU and memory (from /proc), the bytes
the log holds, and a tail of the topics where items end, with the time each key arrived."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.kafka.broker import bootstrap_of

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Tail:
    """Reads the given topics from the start and notes when each key first arrived."""

    kafka_url: str
    topics: list[str]
    arrived: dict[bytes, float] = field(default_factory=dict)
    _consumer: AIOKafkaConsumer | None = None
    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Tail:
        self._consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=bootstrap_of(self.kafka_url),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
            metadata_max_age_ms=1000,
            max_poll_records=2000,
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._consumer is not None:
            await self._consumer.stop()

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            now = time.monotonic()
            for records in batches.values():
                for record in records:
                    if record.key is not None:
                        self.arrived.setdefault(record.key, now)

    async def wait_for(self, keys: Iterable[bytes], within: float, tick: float = 0.2) -> None:
        wanted = set(keys)
        deadline = time.monotonic() + within
        while not wanted.issubset(self.arrived.keys()):
            if time.monotonic() > deadline:
                missing = len(wanted - self.arrived.keys())
                raise TimeoutError(f"{missing} of {len(wanted)} items unfinished after {within}s")
            await asyncio.sleep(tick)

    def count(self, keys: Iterable[bytes]) -> int:
        return sum(1 for k in keys if k in self.arrived)


async def log_bytes(kafka_url: str, topics: list[str]) -> int:
    """Key and value bytes of every record now on ``topics`` (partition order, no decode)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_of(kafka_url),
        enable_auto_commit=False,
        max_poll_records=5000,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    total = 0
    try:
        await consumer.topics()
        partitions = [
            TopicPartition(t, p)
            for t in topics
            for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for record in batch.get(tp, []):
                    total += len(record.key or b"") + len(record.value or b"")
    finally:
        await consumer.stop()
    return total


async def topics_with_prefix(kafka_url: str, *prefixes: str) -> list[str]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_of(kafka_url))
    await consumer.start()
    try:
        return sorted(t for t in await consumer.topics() if t.startswith(prefixes))
    finally:
        await consumer.stop()
