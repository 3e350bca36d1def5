"""The agents under Faust's broker-less ``test_context``: decode, call the function, emit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any
from unittest.mock import AsyncMock, patch

import pytest

from domain.events import Envelope, Failure, Received, Stage
from streams.pipeline.app import Pipeline, create_app
from streams.pipeline.done import DoneRecord
from streams.pipeline.wiring import Ports
from tests.conftest import dext_item, ledger_of


def _sent() -> AsyncMock:
    done: asyncio.Future[None] = asyncio.get_event_loop().create_future()
    done.set_result(None)
    return AsyncMock(return_value=done)


@pytest.fixture
def pipeline(ports: Ports) -> Iterator[Pipeline]:
    # Nothing listens on port 1: every test here runs without a broker.
    pipe = create_app(ports.settings, "kafka://127.0.0.1:1", ports)
    pipe.app.finalize()
    pipe.app.flow_control.resume()
    # Table writes go to a changelog; without a broker, capture them instead.
    with patch("faust.tables.base.Collection.send_changelog") as changelog:
        changelog.return_value.message.partition = 0
        yield pipe


def received(item: dict[str, Any], attempt: int = 1) -> bytes:
    return Envelope.new(
        stage=Stage.RECEIVED,
        subject=f"t1:{item['id']}",
        data=Received(item=item),
        source="test",
        attempt=attempt,
    ).to_bytes()


async def test_validate_agent_emits_validated(pipeline: Pipeline) -> None:
    validated = pipeline.topics[Stage.VALIDATED]
    with patch.object(validated, "send", new=_sent()) as send:
        async with pipeline.agents["validate"].test_context() as agent:
            await agent.put(received(dext_item()), key=b"t1:DX-1")
            await asyncio.sleep(0)
    send.assert_awaited_once()
    out = Envelope.from_bytes(send.await_args.kwargs["value"])
    assert send.await_args.kwargs["key"] == b"t1:DX-1"
    assert out.type == "billstream.validated"
    assert out.data.bill.lines[0].gl_account == "7500"


async def test_validate_agent_parks_bad_items_in_failed(pipeline: Pipeline) -> None:
    failed = pipeline.topics[Stage.FAILED]
    with patch.object(failed, "send", new=_sent()) as send:
        async with pipeline.agents["validate"].test_context() as agent:
            await agent.put(received(dext_item(invoice_number=None)), key=b"t1:DX-1")
    out = Envelope.from_bytes(send.await_args.kwargs["value"])
    assert isinstance(out.data, Failure)
    assert out.data.reason.value == "validation"
    assert out.data.input.type == "billstream.received"


async def test_redelivered_event_is_answered_from_the_table(
    pipeline: Pipeline, ports: Ports
) -> None:
    item = dext_item()
    with patch.object(pipeline.topics[Stage.VALIDATED], "send", new=_sent()) as send:
        async with pipeline.agents["validate"].test_context() as agent:
            await agent.put(received(item), key=b"t1:DX-1")
            await agent.put(received(item), key=b"t1:DX-1")
    first, second = (Envelope.from_bytes(c.kwargs["value"]) for c in send.await_args_list)
    assert first == second
    # The table keeps a compact record of the outcome, not a second copy of the event.
    recorded = pipeline.tables["validate"][b"t1:DX-1"]
    assert len(recorded) < len(first.to_bytes()) / 3
    assert DoneRecord.model_validate_json(recorded).id == first.id


async def test_create_bill_agent_posts_once_per_item(pipeline: Pipeline, ports: Ports) -> None:
    # Feed the agent the resolved event the earlier stages would have produced.
    from streams.pipeline import stages
    from tests.unit.test_stages import ctx_for

    ctx = ctx_for(ports)
    work = await stages.resolve_vendor(await stages.validate(Received(item=dext_item()), ctx), ctx)
    event = Envelope.new(
        stage=Stage.VENDOR_RESOLVED, subject="t1:DX-1", data=work, source="test"
    ).to_bytes()
    with patch.object(pipeline.topics[Stage.BILL_CREATED], "send", new=_sent()) as send:
        async with pipeline.agents["create_bill"].test_context() as agent:
            for _ in range(3):
                await agent.put(event, key=b"t1:DX-1")
            # The duplicate check reads the document first: let the last one finish.
            for _ in range(500):
                if send.await_count == 3:
                    break
                await asyncio.sleep(0.01)
    assert send.await_count == 3
    assert len(ledger_of(ports, "t1").writes("create_draft_bill")) == 1


async def test_failed_agent_records_the_parked_item(pipeline: Pipeline) -> None:
    from domain.errors import Reason, StageError

    src = Envelope.from_bytes(received(dext_item()))
    failed = src.follow(Stage.FAILED, Failure.of(StageError(Reason.DUPLICATE, "dup"), src))
    async with pipeline.agents["failed"].test_context() as agent:
        await agent.put(failed.to_bytes(), key=b"t1:DX-1")
    from streams.pipeline.tracking import parked_reasons

    assert list(parked_reasons(pipeline.tables["parked"])) == [("t1", "duplicate")]
