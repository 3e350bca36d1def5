"""The Intacct client without sockets: httpx's mock transport in front of the sandbox engine.

The gateway below answers with the sandbox's own request processing (real XML both ways) and
can be scripted to fail before or after a request runs, so retries, uncertainty, sessions,
the concurrency limit and batching are tested deterministically.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from adapters.intacct.client import IntacctClient, IntacctCredentials, RequestRetries
from adapters.intacct.keys import read_controlid
from adapters.intacct.ledger import IntacctLedger
from adapters.intacct.xml import Function, ParsedRequest, Result, element, parse_request
from domain.errors import LedgerError, Reason
from domain.models import Document
from domain.tenants import LedgerConfig, Tenant
from sandboxes.intacct.sandbox import IntacctSandbox, SandboxConfig
from tests.contract.ledger_contract import PDF, draft
from tests.support import wait_until_async

BASE = "http://intacct.test"
ENDPOINT = f"{BASE}/ia/xml/xmlgw.phtml"
CREDS = IntacctCredentials(
    sender_id="billstream-sandbox",
    sender_password="sandbox-sender-secret",
    company_id="ACME",
    user_id="xml_gateway",
    user_password="sandbox-user-secret",
)


@dataclass
class Step:
    """What the gateway does with one request: fail before running it, or run it then fail."""

    when: str  # "before" | "after"
    response: httpx.Response | None = None
    error: Exception | None = None
    match: str | None = None  # only the next request holding this function; else the next one


@dataclass
class Gateway:
    sandbox: IntacctSandbox
    latency: float = 0.0
    script: collections.deque[Step] = field(default_factory=collections.deque)
    requests: list[ParsedRequest] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        parsed = parse_request(request.content)
        self.requests.append(parsed)
        self.paths.append(request.url.path)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            step = self._step({fn.name for fn in parsed.functions})
            if step and step.when == "before":
                if step.error:
                    raise step.error
                assert step.response is not None
                return step.response
            body = self.sandbox.process(parsed, BASE)
            if step:
                if step.error:
                    raise step.error
                assert step.response is not None
                return step.response
            return httpx.Response(200, content=body, headers={"content-type": "application/xml"})
        finally:
            self.in_flight -= 1

    def _step(self, names: set[str]) -> Step | None:
        for step in self.script:
            if step.match is None or step.match in names:
                self.script.remove(step)
                return step
        return None

    def functions(self) -> list[list[str]]:
        return [[fn.name for fn in r.functions] for r in self.requests]


def throttled() -> httpx.Response:
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?><response><control><status>failure</status>'
        b"</control><errormessage><error><errorno>GW-0010</errorno><description>Rate limit "
        b"exceeded</description></error></errormessage></response>"
    )
    return httpx.Response(429, content=body, headers={"content-type": "application/xml"})


@pytest.fixture
def gateway() -> Gateway:
    return Gateway(IntacctSandbox(SandboxConfig(companies=("ACME",))))


def make_client(gateway: Gateway, **kw: object) -> IntacctClient:
    args: dict[str, object] = {
        "endpoint": ENDPOINT,
        "transport": httpx.MockTransport(gateway),
        "retry": RequestRetries(attempts=4, initial=0.001, maximum=0.005),
    }
    args.update(kw)
    return IntacctClient(CREDS, **args)  # type: ignore[arg-type]


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[IntacctClient]:
    client = make_client(gateway)
    yield client
    await client.aclose()


@pytest.fixture
async def ledger(gateway: Gateway) -> AsyncIterator[IntacctLedger]:
    ledger = IntacctLedger(make_client(gateway))
    yield ledger
    await ledger.aclose()


def vendor_query() -> Function:
    q = element(
        "query",
        {
            "object": "VENDOR",
            "select": {"field": ["VENDORID"]},
            "filter": {"equalto": {"field": "VENDORID", "value": "V1"}},
        },
    )
    return Function(read_controlid("q"), q)


# -- sessions -------------------------------------------------------------------------------


async def test_session_is_requested_alone_then_used_at_its_endpoint(
    client: IntacctClient, gateway: Gateway
) -> None:
    [res] = await client.execute([vendor_query()], write=False)
    assert res.ok
    first, second = gateway.requests
    assert [fn.name for fn in first.functions] == ["getAPISession"]
    assert first.login is not None and first.session_id is None
    assert gateway.paths[0] == "/ia/xml/xmlgw.phtml"
    assert second.login is None and second.session_id
    assert gateway.paths[1] == "/na1/ia/xml/xmlgw.phtml"  # the endpoint getAPISession named
    await client.execute([vendor_query()], write=False)
    assert client.stats.sessions == 1


async def test_lapsed_session_is_renewed_and_the_request_resent(
    client: IntacctClient, gateway: Gateway
) -> None:
    await client.execute([vendor_query()], write=False)
    gateway.sandbox.sessions.clear()  # revoked or timed out on Intacct's side
    [res] = await client.execute([vendor_query()], write=False)
    assert res.ok
    assert client.stats.sessions == 2
    assert gateway.functions()[-3:] == [["query"], ["getAPISession"], ["query"]]


async def test_session_is_renewed_before_its_timeout(gateway: Gateway) -> None:
    # A 1 s session is renewed a quarter of its life early, before Intacct would refuse it.
    gateway.sandbox.config.session_timeout = 1.0
    client = make_client(gateway)
    try:
        await client.execute([vendor_query()], write=False)
        # The time passing is the scenario: the client reads time.monotonic() itself (no clock
        # to hand it), and 0.8 s is past its renewal point (0.75 s) but short of the 1 s life.
        await asyncio.sleep(0.8)
        await client.execute([vendor_query()], write=False)
    finally:
        await client.aclose()
    assert gateway.functions() == [["getAPISession"], ["query"], ["getAPISession"], ["query"]]


async def test_untrusted_session_endpoint_is_not_followed(gateway: Gateway) -> None:
    original = gateway.sandbox.process

    def elsewhere(req: ParsedRequest, base: str) -> bytes:
        return original(req, "http://evil.example")

    gateway.sandbox.process = elsewhere  # type: ignore[assignment,method-assign]
    client = make_client(gateway)
    try:
        await client.execute([vendor_query()], write=False)
    finally:
        await client.aclose()
    assert gateway.paths == ["/ia/xml/xmlgw.phtml", "/ia/xml/xmlgw.phtml"]


async def test_wrong_company_is_auth_and_not_retried(gateway: Gateway) -> None:
    client = IntacctClient(
        IntacctCredentials(
            "billstream-sandbox",
            "sandbox-sender-secret",
            "GLOBEX",
            "xml_gateway",
            "sandbox-user-secret",
        ),
        endpoint=ENDPOINT,
        transport=httpx.MockTransport(gateway),
        retry=RequestRetries(attempts=4, initial=0.001, maximum=0.005),
    )
    try:
        with pytest.raises(LedgerError) as err:
            await client.execute([vendor_query()], write=False)
    finally:
        await client.aclose()
    assert err.value.reason is Reason.AUTH
    assert "Contact the company administrator" in err.value.message
    assert len(gateway.requests) == 1


async def test_wrong_sender_is_auth_from_the_control_block(gateway: Gateway) -> None:
    client = IntacctClient(
        IntacctCredentials("someone", "nope", "ACME", "xml_gateway", "sandbox-user-secret"),
        endpoint=ENDPOINT,
        transport=httpx.MockTransport(gateway),
    )
    try:
        with pytest.raises(LedgerError) as err:
            await client.ensure_session()
    finally:
        await client.aclose()
    assert err.value.reason is Reason.AUTH
    assert err.value.detail["level"] == "control"
    assert "Incorrect Intacct XML Partner ID or password" in err.value.message


# -- retries and uncertainty ----------------------------------------------------------------


async def test_5xx_is_retried_with_backoff_then_succeeds(
    client: IntacctClient, gateway: Gateway
) -> None:
    await client.ensure_session()
    gateway.script.extend(
        [Step("before", httpx.Response(502)), Step("before", httpx.Response(503))]
    )
    [res] = await client.execute([vendor_query()], write=True)
    assert res.ok
    assert client.stats.retries == 2


async def test_5xx_past_the_budget_is_unavailable(client: IntacctClient, gateway: Gateway) -> None:
    await client.ensure_session()
    gateway.script.extend(Step("before", httpx.Response(503)) for _ in range(4))
    with pytest.raises(LedgerError) as err:
        await client.execute([vendor_query()], write=False)
    assert err.value.reason is Reason.UNAVAILABLE
    assert err.value.transient and not err.value.uncertain
    assert len(gateway.requests) == 1 + 4


async def test_gw0010_is_retried_then_rate_limited(client: IntacctClient, gateway: Gateway) -> None:
    await client.ensure_session()
    gateway.script.extend(Step("before", throttled()) for _ in range(4))
    with pytest.raises(LedgerError) as err:
        await client.execute([vendor_query()], write=True)
    assert err.value.reason is Reason.RATE_LIMITED
    assert not err.value.uncertain
    assert "GW-0010" in err.value.message
    assert client.stats.retries == 3


async def test_retry_after_is_honoured_within_the_cap(gateway: Gateway) -> None:
    client = make_client(gateway, retry=RequestRetries(attempts=2, initial=0.001, maximum=0.2))
    try:
        await client.ensure_session()
        response = throttled()
        response.headers["Retry-After"] = "30"
        gateway.script.append(Step("before", response))
        loop = asyncio.get_running_loop()
        started = loop.time()
        await client.execute([vendor_query()], write=False)
        waited = loop.time() - started
    finally:
        await client.aclose()
    assert 0.2 <= waited < 5  # Retry-After asked for 30 s; the cap is 0.2 s


async def test_524_on_a_write_is_uncertain_and_not_retried(
    client: IntacctClient, gateway: Gateway
) -> None:
    await client.ensure_session()
    gateway.script.append(Step("after", httpx.Response(524)))
    with pytest.raises(LedgerError) as err:
        await client.execute([vendor_query()], write=True)
    assert err.value.reason is Reason.UNAVAILABLE and err.value.uncertain
    assert len(gateway.requests) == 2  # the session, then the one write


async def test_524_on_a_read_is_retried(client: IntacctClient, gateway: Gateway) -> None:
    await client.ensure_session()
    gateway.script.append(Step("after", httpx.Response(524)))
    [res] = await client.execute([vendor_query()], write=False)
    assert res.ok


@pytest.mark.parametrize(
    "error",
    [httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("peer closed connection")],
)
async def test_lost_answer_to_a_write_is_uncertain(
    client: IntacctClient, gateway: Gateway, error: Exception
) -> None:
    await client.ensure_session()
    gateway.script.append(Step("after", error=error))
    with pytest.raises(LedgerError) as err:
        await client.execute([vendor_query()], write=True)
    assert err.value.reason is Reason.UNAVAILABLE and err.value.uncertain


async def test_connection_refused_is_retried_even_for_writes(
    client: IntacctClient, gateway: Gateway
) -> None:
    await client.ensure_session()
    gateway.script.append(Step("before", error=httpx.ConnectError("refused")))
    [res] = await client.execute([vendor_query()], write=True)
    assert res.ok


# -- the ledger under faults ----------------------------------------------------------------


async def test_bill_written_before_a_524_is_found_not_posted_again(
    ledger: IntacctLedger, gateway: Gateway
) -> None:
    vendor = await ledger.create_vendor("After Write Ltd")
    bill = draft(vendor.name, "AW-1")
    gateway.script.append(Step("after", httpx.Response(524), match="create"))
    with pytest.raises(LedgerError) as err:
        await ledger.create_draft_bill(vendor, bill)
    assert err.value.reason is Reason.UNAVAILABLE and err.value.uncertain
    # What the pipeline does next: look before writing again, and adopt its own bill.
    found = await ledger.find_bill(vendor.id, "AW-1")
    assert found is not None and found.item_key == bill.item_key
    # A direct retry adopts it too.
    assert await ledger.create_draft_bill(vendor, bill) == found
    assert len(gateway.sandbox.company("ACME").documents) == 1


async def test_repeated_control_id_resolves_to_the_bill_already_posted(
    ledger: IntacctLedger, gateway: Gateway
) -> None:
    vendor = await ledger.create_vendor("Repeat Ltd")
    bill = draft(vendor.name, "RP-1")
    made = await ledger.create_draft_bill(vendor, bill)
    # The duplicate guard misses (e.g. a replica lagging): Intacct's uniqueid still holds.
    real_find = ledger.find_bill

    async def blind_once(*args: object, **kw: object) -> object:
        ledger.find_bill = real_find  # type: ignore[method-assign]
        return None

    ledger.find_bill = blind_once  # type: ignore[assignment,method-assign]
    assert await ledger.create_draft_bill(vendor, bill) == made
    assert len(gateway.sandbox.company("ACME").documents) == 1


async def test_attachment_upload_interrupted_after_write_is_not_uploaded_twice(
    ledger: IntacctLedger, gateway: Gateway
) -> None:
    vendor = await ledger.create_vendor("Upload Ltd")
    bill = await ledger.create_draft_bill(vendor, draft(vendor.name, "UP-1"))
    doc = Document.of("UP-1.pdf", "application/pdf", PDF)
    gateway.script.append(
        Step("after", error=httpx.RemoteProtocolError("dropped"), match="create_supdoc")
    )
    with pytest.raises(LedgerError) as err:
        await ledger.attach_document(bill, doc)
    assert err.value.uncertain
    found = await ledger.find_attachment(bill)
    assert found is not None and found.sha256 == doc.sha256 and found.size == len(PDF)
    with pytest.raises(LedgerError) as again:
        await ledger.attach_document(bill, doc)
    assert again.value.reason is Reason.ATTACHMENT_FAILED
    assert len(gateway.sandbox.company("ACME").supdocs) == 1


async def test_supdoc_left_unlinked_is_linked_not_uploaded_again(
    ledger: IntacctLedger, gateway: Gateway
) -> None:
    vendor = await ledger.create_vendor("Relink Ltd")
    bill = await ledger.create_draft_bill(vendor, draft(vendor.name, "RL-1"))
    doc = Document.of("RL-1.pdf", "application/pdf", PDF)
    att = await ledger.attach_document(bill, doc)
    company = gateway.sandbox.company("ACME")
    record = company.documents[int(bill.id)]
    company.documents[int(bill.id)] = {**record, "SUPDOCID": ""}  # unlinked by hand in Sage
    assert await ledger.find_attachment(bill) is None
    assert await ledger.attach_document(bill, doc) == att
    assert len(company.supdocs) == 1


async def test_attaching_to_a_deleted_bill_is_attachment_failed(
    ledger: IntacctLedger, gateway: Gateway
) -> None:
    vendor = await ledger.create_vendor("Gone Ltd")
    bill = await ledger.create_draft_bill(vendor, draft(vendor.name, "GN-1"))
    del gateway.sandbox.company("ACME").documents[int(bill.id)]
    with pytest.raises(LedgerError) as err:
        await ledger.attach_document(bill, Document.of("x.pdf", "application/pdf", PDF))
    assert err.value.reason is Reason.ATTACHMENT_FAILED


async def test_closed_period_refusal_maps_to_period_closed(
    ledger: IntacctLedger, gateway: Gateway
) -> None:
    vendor = await ledger.create_vendor("Closed Books Ltd")
    gateway.sandbox.company("ACME").closed.add("2026-10")
    with pytest.raises(LedgerError) as err:
        await ledger.create_draft_bill(vendor, draft(vendor.name, "CB-1"))
    assert err.value.reason is Reason.PERIOD_CLOSED
    assert "Periods are closed. Your transaction date (10/15/2026)" in err.value.message
    assert err.value.detail["support_id"]


async def test_invalid_account_is_mapping_missing(ledger: IntacctLedger, gateway: Gateway) -> None:
    gateway.sandbox.company("ACME").accounts = {"7400"}
    vendor = await ledger.create_vendor("Chart Ltd")
    with pytest.raises(LedgerError) as err:
        await ledger.create_draft_bill(vendor, draft(vendor.name, "CH-1"))
    assert err.value.reason is Reason.MAPPING_MISSING
    assert "Account 7500 is not valid" in err.value.message


async def test_periods_unreadable_in_a_company_count_as_open(
    ledger: IntacctLedger, gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    from adapters.intacct import ledger as ledger_module

    ledger_module.PERIOD_OBJECT = "NOSUCHOBJECT"
    try:
        assert await ledger.period_is_open(dt.date(2026, 3, 1))
    finally:
        ledger_module.PERIOD_OBJECT = "REPORTINGPERIOD"
    assert "closed periods cannot be read" in caplog.text


# -- concurrency and batching ---------------------------------------------------------------


async def test_concurrency_limit_is_shared_by_every_caller(gateway: Gateway) -> None:
    gateway.latency = 0.02
    client = make_client(gateway, concurrency=2, max_batch=1)
    try:
        results = await asyncio.gather(
            *(client.execute([vendor_query()], write=False) for _ in range(12))
        )
    finally:
        await client.aclose()
    assert all(r[0].ok for r in results)
    assert gateway.max_in_flight == 2
    assert client.stats.max_in_flight == 2
    assert len(gateway.requests) == 1 + 12  # max_batch=1: one request each


async def test_callers_that_queue_up_share_requests(gateway: Gateway) -> None:
    gateway.latency = 0.02
    client = make_client(gateway, concurrency=2, max_batch=10)
    try:
        results = await asyncio.gather(
            *(client.execute([vendor_query(), vendor_query()], write=False) for _ in range(20))
        )
    finally:
        await client.aclose()
    assert all(len(r) == 2 and all(x.ok for x in r) for r in results)
    sizes = [len(r.functions) for r in gateway.requests[1:]]
    assert sum(sizes) == 40
    assert max(sizes) <= 10
    assert len(sizes) == 4  # 40 functions, 10 per request
    assert client.stats.batched_requests == 4
    assert gateway.max_in_flight <= 2


@pytest.mark.parametrize(("window", "requests"), [(0.2, 1), (0.0, 3)])
async def test_callers_a_moment_apart_share_a_request_within_the_window(
    gateway: Gateway, window: float, requests: int
) -> None:
    # Regression: with slots free every function went alone (2.0 requests per bill in the
    # 300-item demo). Arrival a few ms apart is the scenario, hence the sleeps.
    client = make_client(gateway, batch_window=window)
    try:
        await client.ensure_session()
        start = len(gateway.requests)

        async def later(delay: float) -> list[Result]:
            await asyncio.sleep(delay)
            return await client.execute([vendor_query()], write=False)

        results = await asyncio.gather(later(0), later(0.02), later(0.04))
    finally:
        await client.aclose()
    assert all(r[0].ok for r in results)
    assert len(gateway.requests) - start == requests


async def test_transactions_travel_alone(gateway: Gateway) -> None:
    gateway.latency = 0.01
    client = make_client(gateway, concurrency=1)
    try:
        await client.ensure_session()
        folder = element("create_supdocfolder", {"supdocfoldername": "f"})
        await asyncio.gather(
            client.execute([vendor_query()], write=False),
            client.execute([Function(read_controlid("t"), folder)], write=True, transaction=True),
            client.execute([vendor_query()], write=False),
        )
    finally:
        await client.aclose()
    tx = [r for r in gateway.requests if r.transaction]
    assert len(tx) == 1 and [f.name for f in tx[0].functions] == ["create_supdocfolder"]
    assert gateway.functions()[1:] == [["query", "query"], ["create_supdocfolder"]] or (
        gateway.functions()[1:] == [["create_supdocfolder"], ["query", "query"]]
    )


async def test_one_failed_request_fails_each_caller_and_only_writers_are_uncertain(
    gateway: Gateway,
) -> None:
    client = make_client(gateway, retry=RequestRetries(attempts=1))
    try:
        await client.ensure_session()
        gateway.script.append(Step("after", httpx.Response(524)))
        write, read = await asyncio.gather(
            client.execute([vendor_query()], write=True),
            client.execute([vendor_query()], write=False),
            return_exceptions=True,
        )
    finally:
        await client.aclose()
    assert isinstance(write, LedgerError) and write.uncertain
    assert isinstance(read, LedgerError) and not read.uncertain
    assert len(gateway.requests) == 2  # both rode in one request


async def test_a_cancelled_caller_does_not_block_the_others(gateway: Gateway) -> None:
    gateway.latency = 0.05
    client = make_client(gateway, concurrency=1)
    try:
        await client.ensure_session()
        sent = len(gateway.requests)
        slow = asyncio.create_task(client.execute([vendor_query()], write=False))
        await asyncio.sleep(0)
        queued = asyncio.create_task(client.execute([vendor_query()], write=False))
        # Cancelled while the slow one is at the gateway and it waits in the client's queue
        # (it queued before the slow one's request could even be sent).
        await wait_until_async(
            lambda: gateway.in_flight == 1 and len(gateway.requests) == sent + 1,
            5,
            "the first request to reach the gateway",
            interval=0.001,
        )
        queued.cancel()
        assert (await slow)[0].ok
        assert (await client.execute([vendor_query()], write=False))[0].ok
    finally:
        await client.aclose()


# -- secrets and configuration --------------------------------------------------------------


async def test_no_password_or_session_id_reaches_logs_or_errors(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(gateway)
    errors: list[LedgerError] = []
    try:
        await client.ensure_session()
        gateway.script.extend([Step("before", throttled()), Step("after", httpx.Response(524))])
        try:
            await client.execute([vendor_query()], write=True)
        except LedgerError as exc:
            errors.append(exc)
        session = client._session
        assert session is not None
        secrets = [CREDS.sender_password, CREDS.user_password, session.session_id]
    finally:
        await client.aclose()
    assert errors
    shown = caplog.text + repr(CREDS) + repr(client.credentials) + repr(session)
    shown += "".join(f"{e.message}{e.detail}" for e in errors)
    for secret in secrets:
        assert secret not in shown


def tenant(prefix: str | None = "ACME_INTACCT", url: str | None = None) -> Tenant:
    return Tenant(
        id="acme",
        ledger=LedgerConfig(kind="intacct", company="ACME", credentials_env=prefix, url=url),
        base_currency="GBP",
        currencies=["GBP"],
    )


async def test_from_tenant_reads_credentials_from_the_environment() -> None:
    env = {
        "ACME_INTACCT_SENDER_ID": "s",
        "ACME_INTACCT_SENDER_PASSWORD": "sp",
        "ACME_INTACCT_USER_ID": "u",
        "ACME_INTACCT_USER_PASSWORD": "up",
        "ACME_INTACCT_URL": "http://from-env/ia/xml/xmlgw.phtml",
        "ACME_INTACCT_CONCURRENCY": "3",
        "ACME_INTACCT_ENTITY_ID": "E1",
    }
    ledger = IntacctLedger.from_tenant(tenant(), env)
    try:
        assert ledger.client.credentials == IntacctCredentials("s", "sp", "ACME", "u", "up", "E1")
        assert ledger.client.endpoint == "http://from-env/ia/xml/xmlgw.phtml"
        assert ledger.client.concurrency == 3
    finally:
        await ledger.aclose()
    ledger = IntacctLedger.from_tenant(tenant(url="http://tenant/x"), env)
    try:
        assert ledger.client.endpoint == "http://tenant/x"
    finally:
        await ledger.aclose()
    env.pop("ACME_INTACCT_URL")
    ledger = IntacctLedger.from_tenant(tenant(), env)
    try:
        assert ledger.client.endpoint == "https://api.intacct.com/ia/xml/xmlgw.phtml"
    finally:
        await ledger.aclose()


def test_from_tenant_names_every_missing_variable() -> None:
    with pytest.raises(LedgerError) as err:
        IntacctLedger.from_tenant(tenant(), {"ACME_INTACCT_SENDER_ID": "s"})
    assert err.value.reason is Reason.AUTH
    for name in ("SENDER_PASSWORD", "USER_ID", "USER_PASSWORD"):
        assert f"ACME_INTACCT_{name}" in err.value.message
    with pytest.raises(LedgerError) as err:
        IntacctLedger.from_tenant(
            tenant(),
            {
                f"ACME_INTACCT_{n}": "x"
                for n in ("SENDER_ID", "SENDER_PASSWORD", "USER_ID", "USER_PASSWORD")
            }
            | {"ACME_INTACCT_CONCURRENCY": "zero"},
        )
    assert "ACME_INTACCT_CONCURRENCY" in err.value.message


async def test_read_riding_with_a_lost_write_is_retried_under_a_new_control_id(
    gateway: Gateway,
) -> None:
    client = make_client(gateway)
    try:
        await client.ensure_session()
        gateway.script.append(Step("after", httpx.Response(524)))
        folder = element("create_supdocfolder", {"supdocfoldername": "f"})
        write, read = await asyncio.gather(
            client.execute([Function("bs-folder-fixed", folder)], write=True),
            client.execute([vendor_query()], write=False),
            return_exceptions=True,
        )
    finally:
        await client.aclose()
    assert isinstance(write, LedgerError) and write.uncertain
    # The lost request ran under uniqueid=true, the read's id included: a resend must not
    # reuse it, or Intacct refuses the read as a repeat.
    assert not isinstance(read, BaseException) and read[0].ok
    first, retried = (r for r in gateway.requests[1:] if "query" in {f.name for f in r.functions})
    assert first.functions[-1].controlid != retried.functions[0].controlid


async def test_bill_deleted_by_hand_is_posted_again_for_its_item(
    ledger: IntacctLedger, gateway: Gateway
) -> None:
    vendor = await ledger.create_vendor("Deleted Ltd")
    bill = draft(vendor.name, "DEL-1")
    first = await ledger.create_draft_bill(vendor, bill)
    del gateway.sandbox.company("ACME").documents[int(first.id)]
    again = await ledger.create_draft_bill(vendor, bill)
    assert again.id != first.id and again.item_key == bill.item_key
    assert list(gateway.sandbox.company("ACME").documents) == [int(again.id)]


async def test_attachment_deleted_by_hand_is_uploaded_again(
    ledger: IntacctLedger, gateway: Gateway
) -> None:
    vendor = await ledger.create_vendor("Reattach Ltd")
    bill = await ledger.create_draft_bill(vendor, draft(vendor.name, "RA-1"))
    doc = Document.of("RA-1.pdf", "application/pdf", PDF)
    first = await ledger.attach_document(bill, doc)
    company = gateway.sandbox.company("ACME")
    del company.supdocs[first.id]
    company.documents[int(bill.id)] = {**company.documents[int(bill.id)], "SUPDOCID": ""}
    assert await ledger.find_attachment(bill) is None
    assert await ledger.attach_document(bill, doc) == first
    assert list(gateway.sandbox.company("ACME").supdocs) == [first.id]


async def test_closing_the_client_answers_callers_in_flight(gateway: Gateway) -> None:
    gateway.latency = 0.5
    client = make_client(gateway)
    await client.ensure_session()
    pending = asyncio.create_task(client.execute([vendor_query()], write=True))
    await wait_until_async(
        lambda: gateway.in_flight == 1, 5, "the write to reach the gateway", interval=0.005
    )
    await client.aclose()
    with pytest.raises(LedgerError) as err:
        await asyncio.wait_for(pending, 2)
    assert err.value.reason is Reason.UNAVAILABLE and err.value.uncertain


async def test_writes_right_after_their_lookups_do_not_look_again(
    ledger: IntacctLedger, gateway: Gateway
) -> None:
    # The pipeline looks a bill up before it writes one. One request per step, not two.
    assert await ledger.find_vendor("Pipeline Ltd") is None
    start = len(gateway.requests)
    vendor = await ledger.create_vendor("Pipeline Ltd")
    assert gateway.functions()[start:] == [["create"]]

    assert await ledger.find_bill(vendor.id, "PL-1") is None
    start = len(gateway.requests)
    bill = await ledger.create_draft_bill(vendor, draft(vendor.name, "PL-1"))
    # Regression: the create was followed by a read of what it had just written.
    assert gateway.functions()[start:] == [["create"]]

    # Regression: a bill this client has just created was looked at (2 functions) for an
    # attachment it cannot have.
    start = len(gateway.requests)
    assert await ledger.find_attachment(bill) is None
    assert gateway.functions()[start:] == []
    await ledger.attach_document(bill, Document.of("PL-1.pdf", "application/pdf", PDF))
    assert gateway.functions()[start:] == [["create_supdocfolder"], ["create_supdoc", "update"]]

    # Called on their own, the writes still look first (and refuse what exists).
    start = len(gateway.requests)
    with pytest.raises(LedgerError) as err:
        await ledger.create_draft_bill(vendor, draft(vendor.name, "PL-1"))
    assert err.value.reason is Reason.DUPLICATE
    assert gateway.functions()[start:] == [["query"]]
    with pytest.raises(LedgerError) as err:
        await ledger.attach_document(bill, Document.of("PL-1.pdf", "application/pdf", PDF))
    assert err.value.reason is Reason.ATTACHMENT_FAILED


async def test_a_vendor_found_once_is_not_looked_up_for_every_bill(
    ledger: IntacctLedger, gateway: Gateway
) -> None:
    # Regression: every bill's vendor step queried VENDOR again (547 queries for 268 bills
    # in the 300-item demo, half of them for vendors already found).
    vendor = await ledger.create_vendor("Repeat Supplier Ltd")
    start = len(gateway.requests)
    for _ in range(3):
        assert await ledger.find_vendor("REPEAT SUPPLIER LIMITED") == vendor
    assert gateway.functions()[start:] == []
    # A vendor deleted by hand: its bill is refused, and the next step looks again.
    vendors = gateway.sandbox.company("ACME").vendors
    for recordno in [n for n, v in vendors.items() if v.get("VENDORID") == vendor.id]:
        del vendors[recordno]
    with pytest.raises(LedgerError):
        await ledger.create_draft_bill(vendor, draft(vendor.name, "RS-1"))
    start = len(gateway.requests)
    assert await ledger.find_vendor("Repeat Supplier Ltd") is None
    assert gateway.functions()[start:] == [["query"]]


async def test_attachments_of_bills_made_together_share_a_request(
    ledger: IntacctLedger, gateway: Gateway
) -> None:
    # Regression: each upload and its link went as a transaction of their own, one request
    # per bill whatever else was waiting (268 of the 300-item demo's 409 requests).
    vendor = await ledger.create_vendor("Shared Upload Ltd")
    bills = [
        await ledger.create_draft_bill(vendor, draft(vendor.name, f"SU-{n}", key=f"su:{n}"))
        for n in range(3)
    ]
    await ledger.attachments._ensure_folder()
    start = len(gateway.requests)
    made = await asyncio.gather(
        *(
            ledger.attach_document(
                b, Document.of(f"{b.number}.pdf", "application/pdf", PDF + b.id.encode())
            )
            for b in bills
        )
    )
    assert gateway.functions()[start:] == [["create_supdoc", "update"] * 3]
    assert [await ledger.find_attachment(b) for b in bills] == made


async def test_an_old_lookup_is_not_trusted(
    ledger: IntacctLedger, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adapters.intacct import caching

    monkeypatch.setattr(caching, "MISS_TTL", 0.0)
    vendor = await ledger.create_vendor("Slow Pipeline Ltd")
    assert await ledger.find_bill(vendor.id, "SP-1") is None
    # Time passing is the scenario: the cache reads time.monotonic() itself; with a TTL of 0
    # any age is too old, and 10 ms is an age.
    await asyncio.sleep(0.01)
    start = len(gateway.requests)
    await ledger.create_draft_bill(vendor, draft(vendor.name, "SP-1"))
    assert gateway.functions()[start:] == [["query"], ["create"]]
