"""Digests without Kafka: grouping, windows, once per failure, retries that never block."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from adapters.notify import Channel, DeliveryRetries, Digest, NotifyError
from domain.errors import Reason, StageError
from domain.events import Envelope, Failure, Received, Stage
from domain.tenants import Tenants, parse_tenants
from streams.pipeline import tracking
from streams.pipeline.notifications import Notices, summarize, tick_seconds
from tests.conftest import dext_item

TENANTS = """
[tenants.t1]
name = "Test One Ltd"
base_currency = "GBP"
ledger = { company = "t1" }
[tenants.t1.notify]
digest_seconds = 60
slack_webhook_env = "T1_SLACK"
[tenants.t1.notify.email]
to = ["ap@t1.example"]
sender = "bs@t1.example"
host = "127.0.0.1"

[tenants.t2]
base_currency = "USD"
ledger = { company = "t2" }
[tenants.t2.notify]
reasons = ["validation"]
digest_seconds = 10
slack_webhook_env = "T2_SLACK"

[tenants.quiet]
base_currency = "USD"
ledger = { company = "quiet" }
"""
ENV = {"T1_SLACK": "http://127.0.0.1:9/hook", "T2_SLACK": "http://127.0.0.1:9/hook2"}


def failure(
    tenant: str, n: int, reason: Reason = Reason.PERIOD_CLOSED, attempt: int = 1
) -> Envelope:
    item = dext_item(id=f"DX-{n}", invoice_number=f"INV-{n}", payee=f"Supplier {n % 7}")
    received = Envelope.new(
        stage=Stage.RECEIVED,
        subject=f"{tenant}:DX-{n}",
        data=Received(item=item),
        source="test",
        attempt=attempt,
    )
    err = StageError(reason, f"The period 2026-09 is closed for INV-{n}.")
    return received.follow(Stage.FAILED, Failure.of(err, received))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Sent:
    """Records deliveries; fails on demand (transient or not) per channel name."""

    def __init__(self) -> None:
        self.digests: list[tuple[str, Digest]] = []
        self.fail: dict[str, NotifyError] = {}
        self.attempts = 0

    async def __call__(self, channel: Channel, digest: Digest, policy: DeliveryRetries) -> None:
        self.attempts += 1
        if channel.name in self.fail:
            raise self.fail[channel.name]
        self.digests.append((channel.name, digest))


@pytest.fixture
def tenants() -> Tenants:
    return parse_tenants(TENANTS)


def notices(tenants: Tenants, **over: Any) -> tuple[Notices, Clock, Sent]:
    clock, sent = Clock(), Sent()
    kw: dict[str, Any] = {"pending": {}, "sent": {}, "parked": {}, "clock": clock, "send": sent}
    kw.update(over)
    return Notices(tenants, ENV, **kw), clock, sent


async def test_a_burst_of_500_becomes_one_digest_per_channel(tenants: Tenants) -> None:
    n, clock, sent = notices(tenants)
    for i in range(500):
        assert n.record(failure("t1", i))
        clock.now += 0.01
    assert await n.send_due() == []  # the window (60 s from the first) has not passed
    clock.now += 60
    delivered = await n.send_due()
    assert [name for name, _ in sent.digests] == ["slack", "email"]
    assert len(delivered) == 2
    assert all(len(d.items) == 500 for d in delivered)
    assert n.pending == {} and len(n.sent) == 500
    assert await n.send_due() == []


async def test_groups_by_tenant_and_reason_and_only_subscribed_reasons(tenants: Tenants) -> None:
    n, clock, sent = notices(tenants)
    assert n.record(failure("t1", 1, Reason.PERIOD_CLOSED))
    assert n.record(failure("t1", 2, Reason.MAPPING_MISSING))
    assert not n.record(failure("t1", 3, Reason.VALIDATION))  # not in t1's default reasons
    assert n.record(failure("t2", 4, Reason.VALIDATION))
    assert not n.record(failure("t2", 5, Reason.PERIOD_CLOSED))  # t2 asked for validation
    assert not n.record(failure("quiet", 6))  # no [notify]
    assert not n.record(failure("unknown", 7))
    clock.now += 11
    await n.send_due()
    assert [(c, d.tenant_id, d.reason) for c, d in sent.digests] == [
        ("slack", "t2", Reason.VALIDATION)
    ]  # t1's window is 60 s: not yet
    clock.now += 60
    await n.send_due()
    assert sorted((c, d.tenant_id, d.reason.value) for c, d in sent.digests[1:]) == [
        ("email", "t1", "mapping_missing"),
        ("email", "t1", "period_closed"),
        ("slack", "t1", "mapping_missing"),
        ("slack", "t1", "period_closed"),
    ]


async def test_a_failure_is_told_once_even_when_delivered_again(tenants: Tenants) -> None:
    pending: dict[bytes, bytes] = {}
    told: dict[bytes, bytes] = {}
    n, clock, sent = notices(tenants, pending=pending, sent=told)
    event = failure("t1", 1)
    n.record(event)
    assert not n.record(event)  # redelivered while pending
    clock.now += 61
    await n.send_due()
    assert len(sent.digests) == 2
    # A restart: a new Notices over the same (changelog-recovered) tables, and the failed
    # topic redelivers from an older offset.
    again, clock2, sent2 = notices(tenants, pending=pending, sent=told)
    clock2.now = clock.now + 1000
    assert not again.record(event)
    assert not again.record(failure("t1", 1, attempt=1))
    assert await again.send_due() == [] and sent2.digests == []
    # A replay that fails again is a new failure: told again.
    assert again.record(failure("t1", 1, attempt=2))


async def test_an_older_failure_arriving_late_is_not_told(tenants: Tenants) -> None:
    n, clock, _ = notices(tenants)
    n.record(failure("t1", 1, attempt=2))
    assert not n.record(failure("t1", 1, attempt=1))
    clock.now += 61
    (slack, _) = await n.send_due()
    assert slack.items[0].key == "t1:DX-1"


async def test_a_failing_channel_is_retried_later_and_the_other_still_delivers(
    tenants: Tenants,
) -> None:
    n, clock, sent = notices(tenants)
    sent.fail["slack"] = NotifyError("Slack webhook of tenant t1: HTTP 503", transient=True)
    for i in range(3):
        n.record(failure("t1", i))
    clock.now += 61
    await n.send_due()
    assert [c for c, _ in sent.digests] == ["email"]
    assert all(orjson.loads(v)["todo"] == ["slack"] for v in n.pending.values())
    clock.now += 5  # backing off: not asked again at once
    await n.send_due()
    assert sent.attempts == 2
    del sent.fail["slack"]
    clock.now += 60
    await n.send_due()
    assert [c for c, _ in sent.digests] == ["email", "slack"]
    assert n.pending == {} and len(n.sent) == 3


async def test_a_permanent_failure_is_given_up_not_looped(tenants: Tenants) -> None:
    n, clock, sent = notices(tenants)
    sent.fail["slack"] = NotifyError("Slack webhook of tenant t1: HTTP 404", transient=False)
    n.record(failure("t1", 1))
    clock.now += 61
    await n.send_due()
    await n.send_due()
    assert sent.attempts == 2  # slack once (given up), email once
    assert n.pending == {} and len(n.sent) == 1


async def test_the_agent_side_never_waits_for_delivery(tenants: Tenants) -> None:
    started = asyncio.Event()

    async def stuck(channel: Channel, digest: Digest, policy: DeliveryRetries) -> None:
        started.set()
        await asyncio.sleep(3600)

    n, clock, _ = notices(tenants, send=stuck)
    n.record(failure("t1", 1))
    clock.now += 61
    sending = asyncio.create_task(n.send_due())
    await started.wait()
    parked: dict[bytes, bytes] = {}
    # While a delivery hangs, the failed agent's work is a table write and returns at once.
    for i in range(2, 50):
        tracking.on_failed(failure("t1", i), parked, n)
    assert len(parked) == 49 - 1 and len(n.pending) == 49
    sending.cancel()


async def test_items_that_reached_sage_since_are_marked(tenants: Tenants) -> None:
    parked: dict[bytes, bytes] = {}
    n, clock, _ = notices(tenants, parked=parked)
    for i in (1, 2):
        tracking.on_failed(failure("t1", i), parked, n)
    del parked[b"t1:DX-2"]  # replayed and attached before the window closed
    clock.now += 61
    slack, _ = await n.send_due()
    assert [(i.key, i.resolved) for i in slack.items] == [("t1:DX-1", False), ("t1:DX-2", True)]


def test_summaries_name_the_invoice() -> None:
    s = summarize(failure("t1", 12))
    assert (s.supplier, s.number, s.amount, s.reason) == (
        "Supplier 5",
        "INV-12",
        "GBP 120.00",
        Reason.PERIOD_CLOSED,
    )


def test_the_timer_looks_a_few_times_per_window(tenants: Tenants) -> None:
    assert tick_seconds(tenants) == 2.5
    assert (
        tick_seconds(parse_tenants('[tenants.x]\nbase_currency="USD"\nledger={company="x"}')) == 15
    )
