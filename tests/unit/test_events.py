"""The envelope: CloudEvents names, deterministic ids, no float anywhere, round trips."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import orjson
import pytest
from pydantic import ValidationError

from domain.dext import loads_items
from domain.errors import Reason, Retry, StageError
from domain.events import Envelope, Failure, Received, Stage, event_id
from tests.conftest import dext_item


def received(item_id: str = "DX-1", attempt: int = 1) -> Envelope:
    return Envelope.new(
        stage=Stage.RECEIVED,
        subject=f"t1:{item_id}",
        data=Received(item=dext_item(id=item_id)),
        source="test",
        attempt=attempt,
    )


def test_cloudevents_attributes() -> None:
    ev = received()
    body = orjson.loads(ev.to_bytes())
    assert body["specversion"] == "1.0"
    assert body["type"] == "billstream.received"
    assert body["subject"] == "t1:DX-1"
    assert body["tenant"] == "t1"
    assert body["datacontenttype"] == "application/json"
    assert body["dataschema"] == "urn:billstream:received:1"
    assert dt.datetime.fromisoformat(body["time"]).tzinfo is not None


def test_ids_are_deterministic_per_key_stage_attempt() -> None:
    assert received().id == received().id
    assert received().id != received("DX-2").id
    assert received().id != received(attempt=2).id
    assert event_id("t1:DX-1", Stage.FAILED, 1) != event_id("t1:DX-1", Stage.RECEIVED, 1)


def test_round_trip_keeps_everything() -> None:
    ev = received()
    assert Envelope.from_bytes(ev.to_bytes()) == ev


def test_failure_carries_its_input_and_round_trips() -> None:
    ev = received()
    err = StageError(Reason.PERIOD_CLOSED, "period 2026-10 closed", detail={"period": "2026-10"})
    failed = ev.follow(Stage.FAILED, Failure.of(err, ev))
    back = Envelope.from_bytes(failed.to_bytes())
    assert back == failed
    assert isinstance(back.data, Failure)
    assert back.data.input == ev
    assert back.data.stage is Stage.RECEIVED
    assert back.data.retry is Retry.REPLAY
    assert back.causationid == ev.id
    assert back.attempt == ev.attempt


def test_floats_are_refused_in_items() -> None:
    with pytest.raises(ValidationError, match="float"):
        Received(item={"total_amount": 12.5})


def test_items_read_from_json_keep_exact_amount_text() -> None:
    (item,) = loads_items(b'{"id": 7, "total_amount": 1234.50, "lines": [{"q": 0.1}]}')
    assert item == {"id": "7", "total_amount": "1234.50", "lines": [{"q": "0.1"}]}
    Received(item=item)  # accepted: no float inside


def test_money_travels_as_strings() -> None:
    from domain.models import LedgerBill

    bill = LedgerBill(
        id="B-1",
        vendor_id="V-1",
        number="1",
        date=dt.date(2026, 1, 1),
        currency="GBP",
        total=Decimal("10.10"),
    )
    assert orjson.loads(bill.model_dump_json())["total"] == "10.10"
    with pytest.raises(ValidationError):
        LedgerBill(
            id="B-1",
            vendor_id="V-1",
            number="1",
            date=dt.date(2026, 1, 1),
            currency="GBP",
            total=10.1,
        )  # type: ignore[arg-type]
