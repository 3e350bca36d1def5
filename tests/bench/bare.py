"""The bare 4-hop Faust chain that ``make bench`` compares the pipeline with.

Same app settings as a billstream worker (``faust_app``), same topics by name under its own
prefix, same partitions and agent concurrency; each hop writes the record into one table and
sends it on, and does nothing else. Run as ``python -m tests.bench.bare`` with the worker's
``BILLSTREAM_*`` environment.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from domain.events import PIPELINE
from streams.config import Settings
from streams.kafka import aiokafka_patches
from streams.kafka.topics import ensure_topics
from streams.pipeline.app import faust_app
from streams.pipeline.runtime import run_app


def build(settings: Settings, kafka_url: str) -> Any:
    app = faust_app(settings, kafka_url)
    topics = [
        app.topic(
            settings.topic(s), key_type=bytes, value_type=bytes, partitions=settings.partitions
        )
        for s in PIPELINE
    ]
    for hop, (source, target) in enumerate(itertools.pairwise(topics), start=1):
        table = app.Table(
            f"hop{hop}",
            key_type=bytes,
            value_type=bytes,
            partitions=settings.partitions,
            use_partitioner=True,
        )

        hop_agent = _hop(table, target)
        hop_agent.__name__ = hop_agent.__qualname__ = f"hop{hop}"
        app.agent(source, name=f"hop{hop}", concurrency=settings.stage_concurrency)(hop_agent)
    return app


def _hop(table: Any, target: Any) -> Any:
    async def agent(stream: Any) -> None:
        async for record in stream.events():
            key, value = record.message.key, record.message.value
            table[key] = value
            await (await target.send(key=key, value=value))

    return agent


def main() -> None:
    settings = Settings()
    assert settings.kafka_url, "the bench starts the broker and passes BILLSTREAM_KAFKA_URL"
    aiokafka_patches.apply()
    asyncio.run(ensure_topics(settings, settings.kafka_url))
    raise SystemExit(run_app(build(settings, settings.kafka_url), settings))


if __name__ == "__main__":
    main()
