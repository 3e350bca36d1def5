"""The duplicate check costs the same whatever the supplier's history in Sage.

The sandbox runs in this process so that 10,000 prior invoices can be put straight into its
state (not posted one by one); everything the ledger does still goes over HTTP. The counts
are the calls each new bill costs, by Sage operation, for a supplier with 10, 1,000 and
10,000 earlier invoices: the same at all three.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.sage_accounting.ledger import SageAccountingLedger
from domain.models import Document
from domain.tenants import LedgerConfig, Tenant
from sandboxes.sage_accounting.answers import base_object, new_id
from sandboxes.sage_accounting.sandbox import SageSandbox, SandboxOptions, make_business, running
from sandboxes.sage_accounting.state import Business
from tests.contract.ledger_contract import PDF, draft

P = "SAGE_HISTORY"
TAX = [{"id": "GB_STANDARD", "name": "S20", "percentage": "20"}]
LONG_AGO = "2025-01-02T09:00:00.000000Z"


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[SageSandbox, str]]:
    async with running(SandboxOptions(seed=7)) as served:
        yield served


def new_ledger(
    sandbox: SageSandbox, url: str, tmp_path: Path, biz: Business
) -> SageAccountingLedger:
    tenant = Tenant(
        id="history",
        ledger=LedgerConfig(kind="sage-accounting", company=biz.id, credentials_env=P, url=url),
        base_currency="GBP",
        currencies=["GBP"],
    )
    env = {
        f"{P}_CLIENT_ID": sandbox.options.client_id,
        f"{P}_CLIENT_SECRET": sandbox.options.client_secret,
        f"{P}_REFRESH_TOKEN": sandbox.mint_refresh_token(sandbox.options.client_id),
        f"{P}_VALIDATE_SCHEMA": "1",
        f"{P}_CALLS_PER_MINUTE": "100000",
    }
    return SageAccountingLedger.from_tenant(tenant, env, tmp_path / f"tokens-{biz.id}")


def supplier(biz: Business, name: str) -> dict[str, Any]:
    """A supplier that was in Sage before billstream came: not one this worker created."""
    cid = new_id()
    contact = {
        **base_object("contacts", cid, name),
        "created_at": LONG_AGO,
        "updated_at": LONG_AGO,
        "contact_types": [base_object("contact_types", "VENDOR", "Supplier")],
        "name": name,
        "reference": f"S{len(biz.contacts):05d}",
        "currency": base_object("currencies", "GBP", "GBP"),
        "deletable": True,
        "system": False,
    }
    biz.contacts[cid] = contact
    return contact


def seed_invoices(sandbox: SageSandbox, biz: Business, contact: dict[str, Any], n: int) -> None:
    """``n`` earlier invoices of the supplier, numbered as a supplier numbers them, each with
    its number in ``reference`` too, as billstream writes it."""
    account = next(iter(biz.ledger_accounts))
    for i in range(1, n + 1):
        number = f"INV-{i}"
        bill = sandbox._make_bill(
            biz,
            "purchase_invoices",
            {
                "contact_id": contact["id"],
                "date": "2025-01-02",
                "due_date": "2025-02-01",
                "vendor_reference": number,
                "reference": number,
                "invoice_lines": [
                    {
                        "description": "Earlier",
                        "ledger_account_id": account,
                        "quantity": 1,
                        "unit_price": 10,
                        "tax_rate_id": "GB_STANDARD",
                        "tax_amount": 2,
                    }
                ],
            },
        )
        bill.update(created_at=LONG_AGO, updated_at=LONG_AGO)
        biz.purchase_invoices[bill["id"]] = bill


async def calls_for_one_bill(
    ledger: SageAccountingLedger, vendor_id: str, name: str, number: str
) -> dict[str, int]:
    """What the pipeline's stages ask of the ledger for one new bill, counted by operation."""
    before = dict(ledger.client.by_operation)
    vendor = await ledger.find_vendor(name)
    assert vendor is not None and vendor.id == vendor_id
    assert await ledger.find_bill(vendor.id, number) is None
    bill = await ledger.create_draft_bill(vendor, draft(vendor.name, number))
    assert await ledger.find_attachment(bill) is None
    await ledger.attach_document(bill, Document.of(f"{number}.pdf", "application/pdf", PDF))
    after = ledger.client.by_operation
    return {op: after[op] - before.get(op, 0) for op in after if after[op] != before.get(op, 0)}


@pytest.mark.parametrize("history", [10, 1_000, 10_000])
async def test_calls_per_bill_do_not_grow_with_the_suppliers_history(
    sandbox: tuple[SageSandbox, str], tmp_path: Path, history: int
) -> None:
    box, url = sandbox
    biz = make_business({"tax_rates": TAX})
    box.businesses[biz.id] = biz
    contact = supplier(biz, "Longstanding Supplies")
    seed_invoices(box, biz, contact, history)
    ledger = new_ledger(box, url, tmp_path, biz)
    try:
        # the first bill also reads the chart, tax rates, settings and the supplier
        await calls_for_one_bill(ledger, contact["id"], contact["name"], f"INV-{history + 1}")
        for n in range(history + 2, history + 5):
            calls = await calls_for_one_bill(ledger, contact["id"], contact["name"], f"INV-{n}")
            # one search, one create, one upload: nothing that depends on the history
            assert calls == {
                "getPurchaseInvoices": 1,
                "postPurchaseInvoices": 1,
                "postAttachments": 1,
            }, (history, calls)
        assert len(biz.purchase_invoices) == history + 4
    finally:
        await ledger.aclose()


@pytest.mark.parametrize("history", [10, 10_000])
async def test_an_earlier_bill_is_found_in_a_long_history(
    sandbox: tuple[SageSandbox, str], tmp_path: Path, history: int
) -> None:
    """The flat check still sees what is there: an old bill, and one of another channel
    whose reference carries the number."""
    box, url = sandbox
    biz = make_business({"tax_rates": TAX})
    box.businesses[biz.id] = biz
    contact = supplier(biz, "Longstanding Supplies")
    seed_invoices(box, biz, contact, history)
    ledger = new_ledger(box, url, tmp_path, biz)
    try:
        found = await ledger.find_bill(contact["id"], "inv-7 ")  # as Dext may read it
        assert found is not None and found.number == "INV-7"
        assert found.date == dt.date(2025, 1, 2)
        assert await ledger.find_bill(contact["id"], f"INV-{history + 1}") is None
    finally:
        await ledger.aclose()


async def test_a_supplier_this_worker_created_costs_no_look_per_bill(
    sandbox: tuple[SageSandbox, str], tmp_path: Path
) -> None:
    """Its bills are all known: ours from the create answers, anyone else's from one listing
    of what changed, at most every sync interval; 10,000 old invoices of another supplier
    are not listed again."""
    box, url = sandbox
    biz = make_business({"tax_rates": TAX})
    box.businesses[biz.id] = biz
    seed_invoices(box, biz, supplier(biz, "Someone Else"), 10_000)
    ledger = new_ledger(box, url, tmp_path, biz)
    for book in ledger.books.values():
        book.sync_interval = 3600.0  # one listing in this test: counts, not timing
    try:
        vendor = await ledger.create_vendor("Brand New Ltd")
        first = await calls_for_one_bill(ledger, vendor.id, vendor.name, "BN-1")
        assert first.get("getPurchaseInvoices") == 1  # the one listing of recent changes
        for n in range(2, 5):
            calls = await calls_for_one_bill(ledger, vendor.id, vendor.name, f"BN-{n}")
            assert calls == {"postPurchaseInvoices": 1, "postAttachments": 1}, calls
        # the book still refuses a number that exists, and reads it again before saying so
        again = await ledger.find_bill(vendor.id, "BN-2")
        assert again is not None and again.number == "BN-2"
    finally:
        await ledger.aclose()


async def test_bills_created_at_once_read_the_settings_once(
    sandbox: tuple[SageSandbox, str], tmp_path: Path
) -> None:
    """Regression: six bills posted together on a cold ledger each read the financial
    settings (the e-invoice demo: 6 getFinancialSettings for 6 bills); one read serves all."""
    import asyncio

    box, url = sandbox
    biz = make_business({"tax_rates": TAX})
    box.businesses[biz.id] = biz
    contact = supplier(biz, "Longstanding Supplies")
    ledger = new_ledger(box, url, tmp_path, biz)
    try:
        vendor = await ledger.find_vendor(contact["name"])
        assert vendor is not None
        bills = [draft(vendor.name, f"AT-ONCE-{n}") for n in range(6)]
        await asyncio.gather(*(ledger.create_draft_bill(vendor, b) for b in bills))
        assert ledger.client.by_operation["getFinancialSettings"] == 1
        assert ledger.client.by_operation["postPurchaseInvoices"] == 6
    finally:
        await ledger.aclose()


async def test_a_new_supplier_costs_one_search_and_one_create(
    sandbox: tuple[SageSandbox, str], tmp_path: Path
) -> None:
    """Regression: creating a supplier searched for it again after the create answered with
    a contact made just now (3 calls a supplier, 20 of the 300-item demo's 629 calls)."""
    box, url = sandbox
    biz = make_business({"tax_rates": TAX})
    box.businesses[biz.id] = biz
    ledger = new_ledger(box, url, tmp_path, biz)
    try:
        before = dict(ledger.client.by_operation)
        assert await ledger.find_vendor("Fresh Paint Ltd") is None
        vendor = await ledger.create_vendor("Fresh Paint Ltd")
        after = ledger.client.by_operation
        calls = {
            op: after[op] - before.get(op, 0) for op in after if after[op] != before.get(op, 0)
        }
        assert calls == {"getContacts": 1, "postContacts": 1}, calls
        # a worker that never saw it finds it under another spelling, and makes no second
        other = SageAccountingLedger(ledger.client, tenant_id=ledger.tenant_id)
        assert await other.create_vendor("FRESH PAINT LIMITED") == vendor
        assert [c["name"] for c in biz.contacts.values()] == ["Fresh Paint Ltd"]
    finally:
        await ledger.aclose()
