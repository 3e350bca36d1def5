"""The audit log outlives broker defaults: stage topics are created with their own retention,
and ``billstream check`` fails when an existing one would delete events audit or replay need."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.config import Settings
from streams.kafka.broker import bootstrap_of
from streams.kafka.topics import describe_topics, ensure_topics, topic_names
from streams.ops.check import check_kafka
from tests.support import wait_until_async

pytestmark = pytest.mark.broker


async def _configs(settings: Settings) -> dict[str, dict[str, str]]:
    # Apache Kafka answers create_topics before every broker knows the topic: until then a
    # topic is described with an error (and left out), so ask until all six are known.
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_of(str(settings.kafka_url)))
    await admin.start()
    try:

        async def known() -> dict[str, dict[str, str]] | None:
            got = await describe_topics(admin, list(topic_names(settings).values()))
            return got if len(got) == 6 else None

        return await wait_until_async(known, 30, "the six topics' configurations")
    finally:
        await admin.close()


async def test_stage_topics_are_kept_for_ever_by_default(isolated: Settings) -> None:
    await ensure_topics(isolated, str(isolated.kafka_url))
    configs = await _configs(isolated)
    assert {c["retention.ms"] for c in configs.values()} == {"-1"}
    assert len(configs) == 6
    found = await check_kafka(isolated)
    assert found.status == "ok" and "kept for ever" in found.detail


async def test_a_configured_retention_is_what_the_topics_get(isolated: Settings) -> None:
    year = isolated.model_copy(update={"topic_retention_ms": 365 * 86_400_000})
    await ensure_topics(year, str(year.kafka_url))
    configs = await _configs(year)
    assert {c["retention.ms"] for c in configs.values()} == {str(365 * 86_400_000)}
    assert (await check_kafka(year)).status == "ok"


async def test_a_topic_on_the_cluster_default_fails_the_check(isolated: Settings) -> None:
    # Created by hand (or by an older billstream) without a retention: the broker's 7 days.
    names = topic_names(isolated)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_of(str(isolated.kafka_url)))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(next(iter(names.values())), 4, 1)])
    finally:
        await admin.close()
    await ensure_topics(isolated, str(isolated.kafka_url))  # makes the other five
    found = await check_kafka(isolated)
    for _ in range(40):
        # Apache Kafka answers create_topics before its metadata lists the new topics (CI's
        # genuine-Kafka run once saw five "lacking" a moment after): ask until it knows them.
        if "lacks the topics" not in found.detail:
            break
        await asyncio.sleep(0.25)
        found = await check_kafka(isolated)
    assert found.status == "fail"
    assert f"{isolated.topic_prefix}received deletes events after 7 days" in found.detail
    assert "retention.ms" in found.advice
