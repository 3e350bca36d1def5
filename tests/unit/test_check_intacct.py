"""The Intacct ledger's chart lookups (``AccountCatalog``) over real XML, without sockets.

The sandbox engine answers behind httpx's mock transport. It keeps no GLACCOUNT or
TAXDETAIL objects, as a company whose API role may not read them: then the ledger says it
cannot tell (None). With the objects taught to it here, the missing and inactive codes are
named.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from adapters.intacct.client import IntacctClient, IntacctCredentials
from adapters.intacct.ledger import IntacctLedger
from adapters.intacct.xml import parse_request
from sandboxes.intacct import sandbox as engine
from streams.ops.check import AccountCatalog

BASE = "http://intacct.test"
CREDS = IntacctCredentials(
    sender_id=engine.DEFAULT_SENDER_ID,
    sender_password=engine.DEFAULT_SENDER_PASSWORD,
    company_id="ACME",
    user_id=engine.DEFAULT_USER_ID,
    user_password=engine.DEFAULT_USER_PASSWORD,
)


@pytest.fixture
async def ledger() -> AsyncIterator[IntacctLedger]:
    box = engine.IntacctSandbox(engine.SandboxConfig(companies=("ACME",)))

    async def gateway(request: httpx.Request) -> httpx.Response:
        body = box.process(parse_request(request.content), BASE)
        return httpx.Response(200, content=body, headers={"content-type": "application/xml"})

    client = IntacctClient(
        CREDS, endpoint=f"{BASE}/ia/xml/xmlgw.phtml", transport=httpx.MockTransport(gateway)
    )
    found = IntacctLedger(client)
    yield found
    await found.aclose()


async def test_a_company_that_cannot_list_its_chart_says_so(ledger: IntacctLedger) -> None:
    assert isinstance(ledger, AccountCatalog)
    assert await ledger.unknown_gl_accounts({"7500"}) is None
    assert await ledger.unknown_tax_codes({"S20"}) is None
    assert await ledger.unknown_gl_accounts(set()) == []


async def test_missing_and_inactive_codes_are_named(
    ledger: IntacctLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    charts: dict[str, list[dict[str, Any]]] = {
        "GLACCOUNT": [
            {"RECORDNO": "1", "ACCOUNTNO": "7500", "STATUS": "active"},
            {"RECORDNO": "2", "ACCOUNTNO": "7600", "STATUS": "inactive"},
            {"RECORDNO": "3", "ACCOUNTNO": "7700", "STATUS": "active"},
        ],
        "TAXDETAIL": [{"RECORDNO": "1", "DETAILID": "UK Purchase Goods Standard Rate"}],
    }
    for obj in charts:
        monkeypatch.setitem(
            engine.OBJECT_FIELDS, obj, ("RECORDNO", "ACCOUNTNO", "DETAILID", "STATUS")
        )
    rows = engine.Company.rows

    def with_charts(self: engine.Company, obj: str) -> list[dict[str, Any]]:
        return charts[obj] if obj in charts else rows(self, obj)

    monkeypatch.setattr(engine.Company, "rows", with_charts)
    assert await ledger.unknown_gl_accounts({"7500", "7600", "7700", "7999"}) == ["7600", "7999"]
    assert await ledger.unknown_tax_codes({"UK Purchase Goods Standard Rate", "EU19"}) == ["EU19"]
