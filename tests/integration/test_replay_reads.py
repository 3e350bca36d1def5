"""Replay reads the log cheaply: only the failures it will send back are decoded in full,
and the replayed events go out in batches."""

from __future__ import annotations

import pytest

from domain.errors import Reason, StageError
from domain.events import Envelope, Failure, Received, Stage
from streams.config import Settings
from streams.kafka.publish import Publisher
from streams.kafka.topics import ensure_topics
from streams.ops import replay as replay_module
from streams.ops.replay import ReplayFilter, parked_items, replay
from streams.pipeline import stages
from streams.pipeline.idempotency import _context
from streams.pipeline.wiring import Ports
from tests.conftest import dext_item

pytestmark = pytest.mark.broker


def _received(n: int) -> Envelope:
    item = dext_item(id=f"DX-{n}")
    return Envelope.new(
        stage=Stage.RECEIVED, subject=f"t1:DX-{n}", data=Received(item=item), source="test"
    )


async def test_only_parked_failures_are_decoded_and_they_go_back_in_batches(
    isolated: Settings, ports: Ports, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = str(isolated.kafka_url)
    await ensure_topics(isolated, url)
    first = _received(0)
    work = await stages.validate(Received(item=dext_item(id="DX-0")), _context(first, ports))
    parked, recovered = 30, 40
    events: list[tuple[Envelope, Stage]] = []
    for n in range(parked + recovered):
        received = _received(n)
        failure = received.follow(
            Stage.FAILED, Failure.of(StageError(Reason.UNAVAILABLE, "down"), received)
        )
        events.append((failure, Stage.FAILED))
        if n >= parked:  # a later attempt of these reached attached
            done = received.follow(Stage.ATTACHED, work).model_copy(update={"attempt": 2})
            events.append((done, Stage.ATTACHED))
    async with Publisher(isolated, url) as publisher:
        await publisher.send_many(events)
        await publisher._producer.send_and_wait(isolated.topic(Stage.FAILED), b"not json")

    decoded: list[bytes | str] = []
    real = Envelope.from_bytes.__func__  # type: ignore[attr-defined]

    def counting(cls: type[Envelope], raw: bytes | str) -> Envelope:
        decoded.append(raw)
        return real(cls, raw)  # type: ignore[no-any-return]

    monkeypatch.setattr(Envelope, "from_bytes", classmethod(counting))
    found = await parked_items(isolated, url, ReplayFilter())
    assert sorted(ev.subject for ev in found) == sorted(f"t1:DX-{n}" for n in range(parked))
    assert len(decoded) == parked  # not the 70 failures, not the 40 attached

    batches: list[int] = []
    send_many = Publisher.send_many

    async def counting_send(self: Publisher, batch: list[tuple[Envelope, Stage]]) -> None:
        batches.append(len(batch))
        await send_many(self, batch)

    monkeypatch.setattr(Publisher, "send_many", counting_send)
    monkeypatch.setattr(replay_module, "CHUNK", 8)
    report = await replay(isolated, url, ReplayFilter())
    assert report.sent == parked and batches == [8, 8, 8, 6]
