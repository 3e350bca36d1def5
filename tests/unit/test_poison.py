"""Records no stage can read or carry become small ``unreadable`` failures, never a crash."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from domain.errors import Reason, Retry, StageError
from domain.events import Envelope, Failure, Received, Stage
from domain.limits import MAX_EVENT_BYTES, depth_of
from streams.ops.replay import ReplayFilter
from streams.pipeline.poison import Delivered, bounded, decode, readable
from tests.conftest import dext_item


def delivered(value: bytes | None, key: bytes | None = b"t1:DX-1") -> Delivered:
    return Delivered("ap.received", 3, 17, key, value)


def received(item_id: str = "DX-1", **extra: object) -> Envelope:
    return Envelope.new(
        stage=Stage.RECEIVED,
        subject=f"t1:{item_id}",
        data=Received(item=dext_item(id=item_id, **extra)),
        source="test",
    )


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"\xff\xfe\x00",
        b"[]",
        b'{"specversion": "1.0"}',
        ('{"n":' * 300 + "1" + "}" * 300).encode(),
    ],
)
def test_anything_unreadable_becomes_an_unreadable_failure(value: bytes | None) -> None:
    out = decode(delivered(value), Stage.RECEIVED)
    assert out.stage is Stage.FAILED and out.subject == "t1:DX-1" and out.tenant == "t1"
    failure = out.data
    assert isinstance(failure, Failure) and failure.reason is Reason.UNREADABLE
    assert failure.retry is Retry.NEVER and not failure.retryable
    assert failure.record is not None and (failure.record.partition, failure.record.offset) == (
        3,
        17,
    )
    assert Envelope.from_bytes(out.to_bytes()) == out  # it can be read back itself


def test_an_unknown_event_type_is_unreadable() -> None:
    raw = received().model_copy(update={"type": "billstream.bogus"}).to_bytes()
    out = decode(delivered(raw), Stage.RECEIVED)
    assert isinstance(out.data, Failure) and "bogus" in out.data.message


def test_the_failure_of_a_record_is_named_by_the_record_when_its_key_is_no_item_key() -> None:
    for key in (None, b"\xff", b"no-colon", b"t1:", b":x", b"t1:" + b"x" * 400):
        out = decode(delivered(b"junk", key), Stage.RECEIVED)
        assert out.subject == "unreadable:ap.received/3/17"


def test_the_same_record_gives_the_same_failure_id() -> None:
    a = decode(delivered(b"junk"), Stage.RECEIVED)
    b = decode(delivered(b"junk"), Stage.RECEIVED)
    assert a.id == b.id


def test_a_readable_record_decodes() -> None:
    event = received()
    assert decode(delivered(event.to_bytes()), Stage.RECEIVED) == event
    assert readable(delivered(event.to_bytes())) == event
    assert readable(delivered(b"junk")) is None


def test_a_result_too_large_for_the_log_is_parked_by_reference() -> None:
    big = received(notes="x" * (MAX_EVENT_BYTES + 1))
    err = StageError(Reason.VALIDATION, "bad")
    failure = big.follow(Stage.FAILED, Failure.of(err, big))
    raw = failure.to_bytes()
    out, out_raw = bounded(failure, raw, delivered(big.to_bytes()), Stage.RECEIVED)
    assert isinstance(out.data, Failure) and out.data.reason is Reason.UNREADABLE
    assert len(out_raw) < 8 * 1024 < len(raw)
    assert out.data.record is not None and out.data.record.size == len(big.to_bytes())
    small = received()
    assert bounded(small, small.to_bytes(), delivered(b""), Stage.RECEIVED)[0] is small


def test_a_failure_says_what_failed() -> None:
    with pytest.raises(ValidationError):
        Failure(stage=Stage.RECEIVED, reason=Reason.UNREADABLE, message="?", retry=Retry.NEVER)


def test_replay_any_never_takes_duplicates_or_unreadable_records() -> None:
    event = received()

    def failed(reason: Reason) -> Envelope:
        return event.follow(Stage.FAILED, Failure.of(StageError(reason, "x"), event))

    unreadable = decode(delivered(b"junk"), Stage.RECEIVED)
    anything = ReplayFilter()
    assert anything.matches(failed(Reason.PERIOD_CLOSED))
    assert not anything.matches(failed(Reason.DUPLICATE))
    assert not anything.matches(unreadable)
    by_name = ReplayFilter(reasons=frozenset({Reason.DUPLICATE, Reason.UNREADABLE}))
    assert by_name.matches(failed(Reason.DUPLICATE))
    assert not by_name.matches(unreadable)


def test_depth_is_measured_without_recursion() -> None:
    value: object = 1
    for _ in range(100_000):
        value = [value]
    assert depth_of(value) > 32
    assert depth_of({"a": [{"b": 1}]}) == 3
    assert depth_of("x") == 0


def test_time_is_set_on_unreadable_failures() -> None:
    out = decode(delivered(b"junk"), Stage.VALIDATED)
    assert out.time <= dt.datetime.now(dt.UTC)
    assert isinstance(out.data, Failure) and out.data.stage is Stage.VALIDATED
