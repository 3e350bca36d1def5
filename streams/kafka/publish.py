"""Putting events on topics from outside a worker: sources (received) and replay.

Keys are the item key, so one invoice's events stay on one partition in order; the producer
is idempotent and waits for every acknowledgement, so a returned send is durable.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer

from domain.dext import ItemRefused, check_item, item_id
from domain.events import Envelope, Received, Stage
from domain.models import DocumentRef, item_key
from streams.config import Settings
from streams.kafka.broker import bootstrap_of


class Publisher:
    """An aiokafka producer that speaks envelopes. Use as ``async with Publisher(...)``."""

    def __init__(self, settings: Settings, kafka_url: str) -> None:
        self.settings = settings
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_of(kafka_url),
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            compression_type=settings.producer_compression,
        )

    async def __aenter__(self) -> Publisher:
        await self._producer.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._producer.stop()

    async def send(self, event: Envelope, stage: Stage | None = None) -> None:
        """Send and wait for the broker's acknowledgement."""
        topic = self.settings.topic(stage or event.stage)
        await self._producer.send_and_wait(
            topic, key=event.subject.encode(), value=event.to_bytes()
        )

    async def send_many(self, events: list[tuple[Envelope, Stage]]) -> None:
        """Send a batch and wait for all acknowledgements (much faster than one by one)."""
        futures = [
            await self._producer.send(
                self.settings.topic(stage), key=ev.subject.encode(), value=ev.to_bytes()
            )
            for ev, stage in events
        ]
        for fut in futures:
            await fut

    async def publish_received(
        self,
        tenant_id: str,
        item: Mapping[str, Any],
        *,
        source: str,
        document: DocumentRef | None = None,
        origin: str | None = None,
    ) -> str:
        """Publish one Dext item to the received topic; returns its item key."""
        event = received_event(tenant_id, item, source=source, document=document, origin=origin)
        await self.send(event)
        return event.subject


def received_event(
    tenant_id: str,
    item: Mapping[str, Any],
    *,
    source: str,
    document: DocumentRef | None = None,
    origin: str | None = None,
) -> Envelope:
    """The ``billstream.received`` event of a Dext item.

    Raises ``ItemRefused`` for an item that no stage could carry (no usable id, over the size
    or depth limit): every source goes through here, so one limit holds at every ingress.
    """
    problems = check_item(item)
    if problems:
        raise ItemRefused(problems)
    dext_id = item_id(item)
    assert dext_id is not None
    return Envelope.new(
        stage=Stage.RECEIVED,
        subject=item_key(tenant_id, dext_id),
        data=Received(item={**item, "id": dext_id}, document=document, origin=origin),
        source=source,
    )
