"""The API poller's durable cursor: one record per Dext account on a compacted Kafka topic.

Why a compacted topic (``<prefix>cursors``) rather than a file: the cursor says how far the
received topic has been fed, so it belongs with that topic. It survives the poller's restarts
and moves, needs no volume wherever the poller runs, and if the broker's data is wiped the
cursor goes with it, so the poller feeds a fresh pipeline from the start instead of believing
it already did. Compaction keeps one record per account.

Neither skipped nor repeated, even after a kill -9: before publishing a page the poller writes
an *intent* (the page's item keys, the received topic's end offsets, the cursor the page leads
to); after every publish is acknowledged it writes the new cursor. A poller that finds an
intent on start reads the received topic from the recorded offsets and skips the keys that
made it there before the crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError


@dataclass(frozen=True)
class Pending:
    """A page being published: where it leads, what is in it, where the topic stood."""

    cursor: str | None
    keys: tuple[str, ...]
    offsets: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CursorState:
    cursor: str | None = None
    pending: Pending | None = None

    def to_json(self, account: str) -> bytes:
        pending = None
        if self.pending is not None:
            pending = {
                "cursor": self.pending.cursor,
                "keys": list(self.pending.keys),
                "offsets": {str(p): o for p, o in self.pending.offsets.items()},
            }
        return orjson.dumps(
            {
                "schema": "urn:billstream:dext-cursor:1",
                "account": account,
                "cursor": self.cursor,
                "pending": pending,
                "at": time.time(),
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> CursorState:
        data = orjson.loads(raw)
        pending = data.get("pending")
        return cls(
            cursor=data.get("cursor"),
            pending=None
            if pending is None
            else Pending(
                cursor=pending.get("cursor"),
                keys=tuple(pending.get("keys") or ()),
                offsets={int(p): int(o) for p, o in (pending.get("offsets") or {}).items()},
            ),
        )


class CursorStore(Protocol):
    """Where the poller keeps its place; ``save`` returns only once the state is durable."""

    async def load(self, account: str) -> CursorState: ...

    async def save(self, account: str, state: CursorState) -> None: ...

    async def received_offsets(self) -> dict[int, int]:
        """The received topic's end offset per partition, now."""
        ...

    async def published_since(self, pending: Pending) -> set[str]:
        """Which of ``pending.keys`` are on the received topic past ``pending.offsets``."""
        ...


def _bootstrap(kafka_url: str) -> str:
    hosts = kafka_url.removeprefix("kafka://").replace(";", ",")
    return ",".join(h.removeprefix("kafka://") for h in hosts.split(","))


class KafkaCursorStore:
    """``CursorStore`` on a compacted topic. Use as ``async with KafkaCursorStore(...)``."""

    def __init__(
        self,
        kafka_url: str,
        *,
        cursors_topic: str,
        received_topic: str,
        replication_factor: int = 1,
        read_timeout: float = 30.0,
    ) -> None:
        self.bootstrap = _bootstrap(kafka_url)
        self.cursors_topic = cursors_topic
        self.received_topic = received_topic
        self.replication_factor = replication_factor
        self.read_timeout = read_timeout
        self._producer: Any = None
        self._consumer: Any = None
        self._admin: Any = None
        self._partition_cache: dict[str, list[Any]] = {}
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> KafkaCursorStore:
        async with contextlib.AsyncExitStack() as stack:
            self._admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
            await self._admin.start()
            stack.push_async_callback(self._admin.close)
            await self.ensure_topic()
            self._producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True
            )
            await self._producer.start()
            stack.push_async_callback(self._producer.stop)
            self._consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap, enable_auto_commit=False, group_id=None
            )
            await self._consumer.start()
            stack.pop_all()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        with contextlib.suppress(Exception):
            await self._consumer.stop()
        with contextlib.suppress(Exception):
            await self._admin.close()
        await self._producer.stop()

    async def ensure_topic(self) -> None:
        if self.cursors_topic in set(await self._admin.list_topics()):
            return
        # Another poller may create it first; then it exists, which is all we need.
        with contextlib.suppress(TopicAlreadyExistsError):
            await self._admin.create_topics(
                [
                    NewTopic(
                        self.cursors_topic,
                        1,
                        self.replication_factor,
                        topic_configs={"cleanup.policy": "compact"},
                    )
                ]
            )

    @staticmethod
    def key(account: str) -> bytes:
        return f"dext-api/{account}".encode()

    async def load(self, account: str) -> CursorState:
        wanted = self.key(account)
        state = CursorState()
        async with self._lock:
            async for record in self._read(self.cursors_topic, {}):
                if record.key == wanted:
                    state = (
                        CursorState()
                        if record.value is None
                        else CursorState.from_json(record.value)
                    )
        return state

    async def save(self, account: str, state: CursorState) -> None:
        await self._producer.send_and_wait(
            self.cursors_topic, key=self.key(account), value=state.to_json(account)
        )

    async def received_offsets(self) -> dict[int, int]:
        async with self._lock:
            partitions = await self._partitions(self.received_topic)
            ends = await self._consumer.end_offsets(partitions)
        return {tp.partition: int(offset) for tp, offset in ends.items()}

    async def published_since(self, pending: Pending) -> set[str]:
        wanted = set(pending.keys)
        found: set[str] = set()
        async with self._lock:
            async for record in self._read(self.received_topic, pending.offsets):
                if record.key is not None:
                    key = bytes(record.key).decode()
                    if key in wanted:
                        found.add(key)
        return found

    async def _partitions(self, topic: str) -> list[Any]:
        # Asked of the admin client: once the consumer has an assignment, its own metadata
        # only covers the assigned topics.
        if topic not in self._partition_cache:
            described = await self._admin.describe_topics([topic])
            numbers = sorted(
                int(p["partition"])
                for t in described
                if t.get("topic") == topic and not t.get("error_code")
                for p in t.get("partitions") or ()
            )
            if not numbers:
                return []
            self._partition_cache[topic] = [TopicPartition(topic, n) for n in numbers]
        return self._partition_cache[topic]

    async def _read(self, topic: str, start: dict[int, int]) -> AsyncIterator[Any]:
        """Every record of ``topic`` from ``start`` (partition -> offset; else the beginning)
        up to the end offsets as they are now."""
        consumer = self._consumer
        partitions = await self._partitions(topic)
        if not partitions:
            return
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            if tp.partition in start:
                consumer.seek(tp, start[tp.partition])
            else:
                await consumer.seek_to_beginning(tp)
        remaining = [tp for tp in partitions if await consumer.position(tp) < ends[tp]]
        deadline = time.monotonic() + self.read_timeout
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end in {self.read_timeout:g} s")
            batches = await consumer.getmany(*remaining, timeout_ms=500)
            for tp, records in batches.items():
                for record in records:
                    if record.offset < ends[tp]:
                        yield record
            remaining = [tp for tp in remaining if await consumer.position(tp) < ends[tp]]
        consumer.assign([])
