"""No record can stop a stage: a real worker meets unreadable and oversized records.

Before: an item of about 1 MB made a failure event over the producer's 1 MiB limit, the
worker exited ("Max restarts exceeded") and every restarted worker crashed on the same
record; an item nested 190+ levels could not be read back and crashed the agent. Now each
such record is parked as ``unreadable`` (by reference) and the partition moves on.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from aiokafka import AIOKafkaProducer

from domain.errors import Reason
from domain.events import Envelope, Failure, Stage
from streams.config import Settings
from streams.kafka.broker import bootstrap_of
from streams.kafka.eventlog import read_topics
from streams.kafka.publish import received_event
from streams.ops.audit import timeline
from tests.integration.helpers import (
    events_for,
    prepare,
    publish,
    sample_items,
    start_worker,
    stop_process,
    wait_terminal,
)

pytestmark = [pytest.mark.broker]


def _good_envelope_text(key: str) -> dict[str, object]:
    item = dict(sample_items(1)[0].item)
    item["id"] = key.split(":", 1)[1]
    return json.loads(received_event("acme-uk", item, source="test").to_bytes())


def _deep(levels: int) -> str:
    return '{"n":' * levels + '"x"' + "}" * levels


def poison_records() -> dict[str, bytes]:
    """Item key -> a record value that no stage can read or carry."""
    deep = _good_envelope_text("acme-uk:POISON-DEEP")
    deep_text = json.dumps(deep)
    marker = '"payee":'
    deep_text = deep_text.replace(marker, f'"extra": {_deep(400)}, {marker}', 1)
    big = _good_envelope_text("acme-uk:POISON-BIG")
    big["data"]["item"]["notes"] = "x" * 960_000  # type: ignore[index]
    bogus = _good_envelope_text("acme-uk:POISON-TYPE")
    bogus["type"] = "billstream.bogus"
    return {
        "acme-uk:POISON-BYTES": b"\xff\x00 not an event",
        "acme-uk:POISON-DEEP": deep_text.encode(),
        "acme-uk:POISON-BIG": json.dumps(big).encode(),
        "acme-uk:POISON-TYPE": json.dumps(bogus).encode(),
    }


async def _send_raw(settings: Settings, records: dict[str, bytes]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_of(str(settings.kafka_url)),
        acks="all",
        max_request_size=2 * 1024 * 1024,
    )
    await producer.start()
    try:
        for key, value in records.items():
            await producer.send_and_wait(settings.topic(Stage.RECEIVED), value, key=key.encode())
        # A key that is not text at all: still parked, under a name of the record itself.
        await producer.send_and_wait(settings.topic(Stage.RECEIVED), b"{}", key=b"\xff\xfe")
    finally:
        await producer.stop()


async def _failures(settings: Settings) -> list[Envelope]:
    return [
        x.event async for x in read_topics(str(settings.kafka_url), [settings.topic(Stage.FAILED)])
    ]


def test_unreadable_and_oversized_records_are_parked_and_the_stage_moves_on(
    isolated: Settings,
) -> None:
    prepare(isolated)
    poison = poison_records()
    good = events_for(sample_items(6))
    worker = start_worker(isolated)
    try:
        asyncio.run(_send_raw(isolated, poison))
        asyncio.run(publish(isolated, good))
        expected = {key: 1 for key in poison} | {e.subject: 1 for e in good}
        terminal = asyncio.run(wait_terminal(isolated, expected, within=180))
        assert worker.poll() is None, "the worker died on a poison record"
    finally:
        stop_process(worker)
    for key in poison:
        event = terminal.state[key][1]
        assert event.stage is Stage.FAILED, key
        failure = event.data
        assert isinstance(failure, Failure)
        assert failure.reason is Reason.UNREADABLE and failure.input is None, key
        assert failure.record is not None and failure.record.topic == isolated.topic(Stage.RECEIVED)
        assert len(event.to_bytes()) < 8 * 1024, "a failure must not copy what it describes"
    good_outcomes = {e.subject: terminal.state[e.subject][1].stage for e in good}
    assert Stage.ATTACHED in good_outcomes.values()
    failures = asyncio.run(_failures(isolated))
    nameless = [f for f in failures if f.subject.startswith("unreadable:")]
    assert len(nameless) == 1 and isinstance(nameless[0].data, Failure)
    # Audit shows what happened to each, including the record it could not read.
    steps = asyncio.run(timeline(isolated, str(isolated.kafka_url), "acme-uk:POISON-DEEP"))
    assert [s.outcome for s in steps] == ["unreadable", "unreadable"]
    assert steps[0].type == "unreadable record" and steps[1].type == "billstream.failed"
