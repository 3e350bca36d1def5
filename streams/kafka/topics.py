"""Topic names and their creation, up front, with the configured partition count and an
explicit retention.

Faust only creates its own internal topics; ours must exist before a worker starts, with
the same partition count as the tables (a mismatch crash-loops agents). The stage topics are
the audit log, so they are created with their own ``retention.ms`` (for ever by default),
never the cluster's default, and ``retention_problems`` says when an existing one would
delete what audit and replay read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from adapters.dext.cursor import KafkaCursorStore
from domain.events import Stage
from streams.config import Settings
from streams.kafka.broker import bootstrap_of

ALL_STAGES: tuple[Stage, ...] = tuple(Stage)


def topic_names(settings: Settings) -> dict[Stage, str]:
    return {stage: settings.topic(stage) for stage in ALL_STAGES}


async def ensure_topics(settings: Settings, kafka_url: str) -> list[str]:
    """Create the six topics if missing; returns the names created now."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_of(kafka_url))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [n for n in topic_names(settings).values() if n not in existing]
        if wanted:
            # Another process may win the race; the topics then exist, which is all we need.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(
                            n,
                            settings.partitions,
                            settings.replication_factor,
                            topic_configs=stage_topic_configs(settings),
                        )
                        for n in wanted
                    ]
                )
        return wanted
    finally:
        await admin.close()


def stage_topic_configs(settings: Settings) -> dict[str, str]:
    """What every stage topic is created with: time retention as configured, no size limit."""
    return {"retention.ms": str(settings.topic_retention_ms), "retention.bytes": "-1"}


def retention_problems(settings: Settings, configs: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Stage topics whose retention would delete events audit and replay still need.

    ``configs`` maps a topic to its configuration (``retention.ms``, ``retention.bytes``,
    ``cleanup.policy``) as the broker describes it.
    """
    wanted = settings.topic_retention_ms
    problems = []
    for name in topic_names(settings).values():
        if name not in configs:
            problems.append(f"{name}: the broker did not describe its configuration")
            continue
        config = configs[name]
        ms = int(config.get("retention.ms", "-1"))
        if ms >= 0 and (wanted < 0 or ms < wanted):
            problems.append(f"{name} deletes events after {days(ms)} (wanted: {days(wanted)})")
        if int(config.get("retention.bytes", "-1")) >= 0:
            problems.append(f"{name} deletes events past {config['retention.bytes']} bytes")
        if "compact" in config.get("cleanup.policy", "delete"):
            problems.append(f"{name} is compacted: older events of an item would be dropped")
    return problems


def days(ms: int) -> str:
    """A retention in words: "for ever" for -1, else whole or fractional days."""
    return "for ever" if ms < 0 else f"{ms / 86_400_000:g} days"


async def describe_topics(
    admin: AIOKafkaAdminClient, names: list[str]
) -> dict[str, dict[str, str]]:
    """Each topic's configuration as the broker holds it, by name; a topic the broker answered
    with an error (Apache Kafka, just after creating it, does not know it yet) is left out."""
    resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
    out: dict[str, dict[str, str]] = {}
    for response in await admin.describe_configs(resources):
        for error, _message, _kind, name, entries in response.resources:
            if error == 0:
                out[name] = {entry[0]: entry[1] for entry in entries if entry[1] is not None}
    return out


def cursor_store(settings: Settings, kafka_url: str) -> KafkaCursorStore:
    """The Dext API poller's durable cursors: a compacted topic beside the pipeline's."""
    return KafkaCursorStore(
        kafka_url,
        cursors_topic=f"{settings.topic_prefix}cursors",
        received_topic=settings.topic(Stage.RECEIVED),
        replication_factor=settings.replication_factor,
    )
