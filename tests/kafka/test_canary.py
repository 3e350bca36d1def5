"""Broker canaries: a young broker's regressions show up here as clear failures first."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.kafka.broker import bootstrap_of
from tests.integration.conftest import kafka_url  # noqa: F401 - the shared broker fixture

pytestmark = [pytest.mark.broker]


def test_end_offsets_after_a_batched_produce(kafka_url: str) -> None:  # noqa: F811
    async def run() -> None:
        boot = bootstrap_of(kafka_url)
        topic = f"canary-{id(run)}"
        admin = AIOKafkaAdminClient(bootstrap_servers=boot)
        await admin.start()
        await admin.create_topics([NewTopic(topic, 1, 1)])
        await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=boot, linger_ms=50)
        await producer.start()
        futures = [await producer.send(topic, b"x%d" % i, partition=0) for i in range(20)]
        await asyncio.gather(*futures)
        await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=boot, group_id=None)
        await consumer.start()
        tp = TopicPartition(topic, 0)
        ends = await consumer.end_offsets([tp])
        await consumer.stop()
        assert ends[tp] == 20

    asyncio.run(run())
