"""Reading the event log back: whole topics (replay), one item's partition (audit), tails.

The log is the audit trail, so these readers use plain consumers with no group: reading
never moves any worker's offsets.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.partitioner import DefaultPartitioner

from domain.events import Envelope
from streams.kafka.broker import bootstrap_of

log = logging.getLogger("billstream.eventlog")


@dataclass(frozen=True)
class Logged:
    topic: str
    partition: int
    offset: int
    event: Envelope


@dataclass(frozen=True)
class RawRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner gives ``key``: where it lives."""
    all_partitions = list(range(partitions))
    return int(DefaultPartitioner()(key.encode(), all_partitions, all_partitions))


async def topic_partitions(kafka_url: str, topics: list[str]) -> dict[str, list[int]]:
    """Partitions of each topic, from fresh cluster metadata (a consumer without a group or
    subscription only knows what it was told at bootstrap, which differs between brokers)."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap_of(kafka_url))
    await client.bootstrap()
    try:
        cluster = await client.fetch_all_metadata()
        return {t: sorted(cluster.partitions_for_topic(t) or []) for t in topics}
    finally:
        await client.close()


async def read_records(
    kafka_url: str, topics: list[str], *, key: str | None = None
) -> AsyncIterator[RawRecord]:
    """Every record of ``topics`` from the beginning to the current end (or only ``key``'s),
    undecoded: the audit shows a record it cannot read instead of stopping at it."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_of(kafka_url), enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        tps: list[TopicPartition] = []
        for topic, parts in (await topic_partitions(kafka_url, topics)).items():
            if key is not None and parts:
                parts = [partition_of(key, len(parts))]
            tps += [TopicPartition(topic, p) for p in parts]
        if not tps:
            return
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=1000)
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        continue
                    if key is not None and record.key != key.encode():
                        continue
                    if record.value is None:
                        continue
                    yield RawRecord(tp.topic, tp.partition, record.offset, record.key, record.value)
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
    finally:
        await consumer.stop()


async def read_topics(
    kafka_url: str, topics: list[str], *, key: str | None = None
) -> AsyncIterator[Logged]:
    """Every readable event of ``topics`` from the beginning to the current end (or only
    ``key``'s); a record that is not an event is logged and passed over, never a crash."""
    async for raw in read_records(kafka_url, topics, key=key):
        try:
            event = Envelope.from_bytes(raw.value)
        except ValueError as exc:
            log.warning(
                "%s/%d@%d is not a readable event: %s",
                raw.topic,
                raw.partition,
                raw.offset,
                str(exc)[:300],
            )
            continue
        yield Logged(raw.topic, raw.partition, raw.offset, event)
