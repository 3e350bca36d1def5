"""Topic names and their creation, up front, with the configured partition count.

Faust only creates its own internal topics; ours must exist before a worker starts, with
the same partition count as the tables (a mismatch crash-loops agents: reference/brokers.md).
"""

from __future__ import annotations

import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
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
                    [NewTopic(n, settings.partitions, settings.replication_factor) for n in wanted]
                )
        return wanted
    finally:
        await admin.close()


def cursor_store(settings: Settings, kafka_url: str) -> KafkaCursorStore:
    """The Dext API poller's durable cursors: a compacted topic beside the pipeline's."""
    return KafkaCursorStore(
        kafka_url,
        cursors_topic=f"{settings.topic_prefix}cursors",
        received_topic=settings.topic(Stage.RECEIVED),
        replication_factor=settings.replication_factor,
    )
