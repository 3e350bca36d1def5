"""Sage request metrics (adapters.observability) and their two send points."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from adapters import observability
from adapters.intacct.keys import read_controlid
from adapters.intacct.xml import Function, element
from adapters.sage_accounting.budget import Budget
from adapters.sage_accounting.client import SageAccountingClient
from adapters.sage_accounting.oauth import Endpoints
from sandboxes.intacct.sandbox import IntacctSandbox, SandboxConfig
from tests.support import wait_until_async
from tests.unit.intacct.test_client import CREDS, Gateway, Step, make_client, throttled


def requests(system: str, company: str, operation: str, status: str) -> float:
    labels = {"system": system, "company": company, "operation": operation, "status": status}
    return REGISTRY.get_sample_value("billstream_sage_requests_total", labels) or 0.0


def timed(system: str, operation: str) -> float:
    labels = {"system": system, "operation": operation}
    name = "billstream_sage_request_duration_seconds_count"
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def ratio(system: str, company: str, budget: str) -> float | None:
    # As Prometheus would: from the scrape thread, while the loop goes on.
    labels = {"system": system, "company": company, "budget": budget}
    name = "billstream_sage_budget_used_ratio"
    return await asyncio.to_thread(REGISTRY.get_sample_value, name, labels)


# -- observed -------------------------------------------------------------------------------


async def _send(handler: Any, company: str) -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        await observability.observed(
            http.get("http://sage.test/x"), system="test", company=company, operation="op"
        )


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        (httpx.Response(200), "200"),
        (httpx.Response(429), "429"),
        (httpx.Response(503), "503"),
        (httpx.ReadTimeout("slow"), "timeout"),
        (httpx.ConnectError("refused"), "connect_error"),
        (httpx.PoolTimeout("busy"), "connect_error"),
        (httpx.RemoteProtocolError("cut"), "transport_error"),
    ],
)
async def test_each_request_is_counted_by_status_and_timed(answer: Any, status: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(answer, Exception):
            raise answer
        return answer

    company = f"c-{status}"
    before, seconds = requests("test", company, "op", status), timed("test", "op")
    if isinstance(answer, Exception):
        with pytest.raises(type(answer)):
            await _send(handler, company)
    else:
        await _send(handler, company)
    assert requests("test", company, "op", status) == before + 1
    assert timed("test", "op") == seconds + 1


async def test_a_cancelled_request_is_counted_as_cancelled() -> None:
    arrived = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        arrived.set()
        await asyncio.sleep(10)  # a server that never answers in time: cancelled first
        return httpx.Response(200)

    task = asyncio.create_task(_send(handler, "c-cancel"))
    await wait_until_async(arrived.is_set, 5, "the request to reach the server", interval=0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert requests("test", "c-cancel", "op", "cancelled") == 1


# -- the budget gauge -----------------------------------------------------------------------


class Reporter:
    def __init__(self, used: float, limit: float) -> None:
        self.used, self.limit = used, limit
        self.threads: list[int] = []

    def budgets_in_use(self) -> observability.Budgets:
        self.threads.append(threading.get_ident())
        return {"calls": (self.used, self.limit)}


def _collect() -> dict[tuple[str, str, str], float]:
    [family] = observability.BudgetCollector().collect()
    return {
        (s.labels["system"], s.labels["company"], s.labels["budget"]): s.value
        for s in family.samples
    }


def test_budgets_are_read_on_the_clients_loop_and_add_up_per_company() -> None:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    one, two = Reporter(30, 100), Reporter(50, 100)
    try:

        async def register() -> None:
            async def ok() -> httpx.Response:
                return httpx.Response(200)

            for client in (one, two):
                await observability.observed(
                    ok(), system="gauge", company="biz", operation="op", client=client
                )

        asyncio.run_coroutine_threadsafe(register(), loop).result(5)
        got = _collect()
        # Two tenants' clients on one company share its budget: (30 + 50) / (100 + 100).
        assert got[("gauge", "biz", "calls")] == pytest.approx(0.4)
        assert set(one.threads) == {thread.ident} != {threading.get_ident()}
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
    # The loop is gone: its clients are dropped rather than read from another thread.
    assert ("gauge", "biz", "calls") not in _collect()


def test_a_reading_gives_up_on_a_loop_that_is_not_running() -> None:
    loop = asyncio.new_event_loop()

    async def one() -> int:
        return 1

    try:
        assert observability.LatestReading[int]().read(loop, one) is None
    finally:
        loop.close()


def test_a_busy_loop_gets_the_newest_finished_reading_without_holding_the_scrape() -> None:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    count = itertools.count(1)

    async def measure() -> int:
        return next(count)

    reading = observability.LatestReading[int](wait=0.2)
    release = threading.Event()
    try:
        assert reading.read(loop, measure) == 1
        loop.call_soon_threadsafe(release.wait, 10)  # the loop is stuck in a long step
        started = time.monotonic()
        assert reading.read(loop, measure) == 1  # the last one that finished
        assert reading.read(loop, measure) == 1  # the pending one is not started twice
        assert time.monotonic() - started < 2
        release.set()
        deadline = time.monotonic() + 5
        while (value := reading.read(loop, measure)) == 1 and time.monotonic() < deadline:
            pass
        assert value == 2
    finally:
        release.set()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


# -- the send points --------------------------------------------------------------------------


@pytest.fixture
def gateway() -> Gateway:
    return Gateway(IntacctSandbox(SandboxConfig(companies=(CREDS.company_id,))))


async def test_intacct_requests_are_counted_as_read_or_write(gateway: Gateway) -> None:
    gateway.script.append(_before(throttled()))
    client = make_client(gateway)
    company = CREDS.company_id
    reads, throttles = (
        requests("intacct", company, "read", "200"),
        requests("intacct", company, "read", "429"),
    )
    try:
        fn = Function(read_controlid("probe"), element("readByQuery", {"object": "VENDOR"}))
        await client.execute([fn], write=False)
        # The session request, the refused one, and the retry that got through.
        assert requests("intacct", company, "read", "429") == throttles + 1
        assert requests("intacct", company, "read", "200") == reads + 2
        assert client.budgets_in_use() == {"in_flight": (0, client.concurrency)}
        assert await ratio("intacct", company, "in_flight") == 0.0
    finally:
        await client.aclose()


def _before(response: httpx.Response) -> Step:
    return Step("before", response=response, match="readByQuery")


class FakeOAuth:
    refreshes = 0

    async def access_token(self) -> str:
        return "token"

    async def after_unauthorized(self, token: str) -> None:  # pragma: no cover
        raise AssertionError("not expected")


async def test_sage_accounting_requests_by_operation_and_its_budgets() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["X-Business"] == "biz-metrics"
        return httpx.Response(200, json={"$items": []}, headers={"content-type": "json"})

    client = SageAccountingClient(
        endpoints=Endpoints(api="http://sage.test/v3.1", token="t", authorize="a"),
        oauth=FakeOAuth(),  # type: ignore[arg-type]
        business_id="biz-metrics",
        tenant_id="t1",
        budget=Budget(calls=10, max_bytes=1000),
        transport=httpx.MockTransport(handler),
    )
    before = requests("sage_accounting", "biz-metrics", "getContacts", "200")
    try:
        await client.call("getContacts", what="contacts")
        await client.call("getContacts", what="contacts")
        assert requests("sage_accounting", "biz-metrics", "getContacts", "200") == before + 2
        in_use = client.budgets_in_use()
        assert in_use == {"calls": (2, 10), "request_bytes": (0, 1000)}
        assert await ratio("sage_accounting", "biz-metrics", "calls") == pytest.approx(0.2)
        assert await ratio("sage_accounting", "biz-metrics", "request_bytes") == 0.0
    finally:
        await client.aclose()
