"""The ledger contract on Sage Intacct, over real HTTP against the sandbox in its own process.

One sandbox process serves the module; every test gets a fresh company in it, so tests do not
see each other's vendors, bills or closed periods. Below the contract, what is particular to
Intacct: where the item key, dimensions, tax and credit notes land in the company.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import pytest

from adapters.intacct.keys import derived_vendor_id, supdoc_id
from adapters.intacct.ledger import IntacctLedger
from domain.errors import LedgerError, Reason
from domain.models import Document
from domain.normalize import vendor_match_key
from domain.tenants import LedgerConfig, Tenant
from sandboxes.intacct.harness import SandboxProcess
from tests.contract.ledger_contract import PDF, LedgerContract, draft, unique

PREFIX = "CONTRACT_INTACCT"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess() as process:
        yield process


def ledger_for(
    sandbox: SandboxProcess, company: str, extra_env: dict[str, str] | None = None
) -> IntacctLedger:
    tenant = Tenant(
        id="contract",
        ledger=LedgerConfig(
            kind="intacct", company=company, credentials_env=PREFIX, url=sandbox.url
        ),
        base_currency="GBP",
        currencies=["GBP"],
    )
    return IntacctLedger.from_tenant(tenant, sandbox.env(PREFIX) | (extra_env or {}))


class TestIntacctLedger(LedgerContract):
    @pytest.fixture
    async def ledger(self, sandbox: SandboxProcess) -> AsyncIterator[IntacctLedger]:
        self.sandbox = sandbox
        ledger = ledger_for(sandbox, sandbox.new_company())
        yield ledger
        await ledger.aclose()

    async def close_period(self, ledger: IntacctLedger, period: str) -> None:  # type: ignore[override]
        self.sandbox.set_period(ledger.company, period, "closed")

    async def open_period(self, ledger: IntacctLedger, period: str) -> None:  # type: ignore[override]
        self.sandbox.set_period(ledger.company, period, "open")

    # -- Intacct specifics ----------------------------------------------------------------

    async def test_bill_lands_as_a_draft_with_its_coding(self, ledger: IntacctLedger) -> None:
        vendor = await ledger.create_vendor(unique("Coding & Co"))
        bill = draft(vendor.name, "INV-77")
        made = await ledger.create_draft_bill(vendor, bill)
        [stored] = [b for b in self.sandbox.bills(ledger.company) if b["RECORDNO"] == made.id]
        assert stored["OBJECT"] == "APBILL"
        assert stored["STATE"] == "Draft"
        assert stored["RECORDID"] == "INV-77"
        assert stored["WHENCREATED"] == "10/15/2026"
        assert stored["WHENDUE"] == "11/14/2026"
        assert stored["DESCRIPTION"] == f"contract test [billstream:{bill.item_key}]"
        first, second = stored["LINES"]
        assert first["ACCOUNTNO"] == "7500"
        assert first["TRX_AMOUNT"] == "100.00"  # net: the tax goes in its own entry
        assert first["ENTRYDESCRIPTION"] == "Toner & paper <A4>"
        assert first["DEPARTMENTID"] == "FIN"
        assert first["TAXENTRIES"] == [{"DETAILID": "S20", "TRX_TAX": "20.00"}]
        assert second["TRX_AMOUNT"] == "10.50"
        assert stored["TRX_TOTALENTERED"] == "132.60"

    async def test_credit_note_is_an_ap_adjustment(self, ledger: IntacctLedger) -> None:
        vendor = await ledger.create_vendor(unique("Refunds Ltd"))
        made = await ledger.create_draft_bill(vendor, draft(vendor.name, "CR-1", credit=True))
        [stored] = [b for b in self.sandbox.bills(ledger.company) if b["RECORDNO"] == made.id]
        assert stored["OBJECT"] == "APADJUSTMENT"
        assert stored["TRX_TOTALENTERED"] == "-132.60"
        assert made.total == Decimal("132.60") and made.credit_note
        # A bill and a credit note may share a number: they are different documents.
        assert await ledger.find_bill(vendor.id, "CR-1") is None
        assert await ledger.get_bill(made.id) == made

    async def test_vendor_id_is_derived_and_fits(self, ledger: IntacctLedger) -> None:
        name = unique("A Very Long Supplier Name That Goes On And On Limited")
        vendor = await ledger.create_vendor(name, tax_number="GB 123 4567 89")
        assert vendor.id == derived_vendor_id(vendor_match_key(name))
        assert len(vendor.id) <= 20
        assert await ledger.find_vendor("someone else entirely", tax_number="GB123456789") == vendor

    async def test_vendor_race_between_two_workers_converges(self, ledger: IntacctLedger) -> None:
        # Two clients, as two worker processes would have: no shared lock, only Intacct.
        other = ledger_for(self.sandbox, ledger.company)
        try:
            name = unique("Racing Supplies")
            made = await asyncio.gather(
                *(lg.create_vendor(name) for lg in (ledger, other, ledger, other))
            )
        finally:
            await other.aclose()
        assert len({v.id for v in made}) == 1
        vendors = self.sandbox.admin("GET", f"vendors?company={ledger.company}")["vendors"]
        assert [v["NAME"] for v in vendors].count(name) == 1

    async def test_find_bill_tells_ours_from_another_channel(self, ledger: IntacctLedger) -> None:
        vendor = await ledger.create_vendor(unique("Channel Vendor"))
        bill = draft(vendor.name, "OURS-1")
        await ledger.create_draft_bill(vendor, bill)
        found = await ledger.find_bill(vendor.id, "OURS-1")
        assert found is not None and found.item_key == bill.item_key
        # Retrying our own create adopts the bill rather than refusing it as a duplicate.
        assert await ledger.create_draft_bill(vendor, bill) == found

    async def test_unknown_vendor_is_vendor_not_found(self, ledger: IntacctLedger) -> None:
        ghost = (await ledger.create_vendor(unique("Real"))).model_copy(update={"id": "NOPE-1"})
        with pytest.raises(LedgerError) as err:
            await ledger.create_draft_bill(ghost, draft(ghost.name, "G-1"))
        assert err.value.reason is Reason.VENDOR_NOT_FOUND
        assert "NOPE-1" in err.value.message

    async def test_attachment_keeps_its_derived_id(self, ledger: IntacctLedger) -> None:
        vendor = await ledger.create_vendor(unique("Paper Trail"))
        bill = await ledger.create_draft_bill(vendor, draft(vendor.name, "ATT-9"))
        att = await ledger.attach_document(bill, Document.of("ATT 9.pdf", "application/pdf", PDF))
        assert att.id == supdoc_id(bill.item_key, bill.id)
        [doc] = self.sandbox.supdocs(ledger.company)
        assert doc["supdocid"] == att.id
        assert doc["files"] == [
            {"name": "ATT 9", "type": "pdf", "size": len(PDF), "sha256": att.sha256}
        ]

    async def test_next_open_day_skips_consecutive_closed_months(
        self, ledger: IntacctLedger
    ) -> None:
        for period in ("2026-05", "2026-06"):
            self.sandbox.set_period(ledger.company, period, "closed")
        assert await ledger.next_open_day(dt.date(2026, 5, 20)) == dt.date(2026, 7, 1)
        assert await ledger.next_open_day(dt.date(2026, 7, 2)) == dt.date(2026, 7, 2)


async def test_auto_numbered_vendors_converge_on_the_oldest(sandbox: SandboxProcess) -> None:
    company = sandbox.new_company(vendor_sequence=True)
    env = sandbox.env(PREFIX) | {f"{PREFIX}_VENDOR_IDS": "auto"}
    tenant = Tenant(
        id="auto",
        ledger=LedgerConfig(
            kind="intacct", company=company, credentials_env=PREFIX, url=sandbox.url
        ),
        base_currency="GBP",
        currencies=["GBP"],
    )
    workers = [IntacctLedger.from_tenant(tenant, env) for _ in range(2)]
    try:
        assert workers[0].vendor_ids == "auto"
        made = await asyncio.gather(*(w.create_vendor("Sequenced Supplies Ltd") for w in workers))
        again = await workers[0].create_vendor("SEQUENCED SUPPLIES LIMITED")
    finally:
        for worker in workers:
            await worker.aclose()
    assert len({v.id for v in [*made, again]}) == 1
    assert made[0].id.startswith("V0")


async def test_a_stray_contact_with_auto_numbering_parks_with_intactts_words(
    sandbox: SandboxProcess,
) -> None:
    """Nothing to adopt: the item parks as vendor_not_found with the message Intacct gave,
    not as a crash or a retry loop."""
    company = sandbox.new_company(vendor_sequence=True)
    sandbox.add_contact(company, "Stray Supplies Ltd(VV00001)")  # the next vendor's contact
    ledger = ledger_for(sandbox, company, {f"{PREFIX}_VENDOR_IDS": "auto"})
    try:
        with pytest.raises(LedgerError) as err:
            await ledger.create_vendor("Stray Supplies Ltd")
    finally:
        await ledger.aclose()
    assert err.value.reason is Reason.VENDOR_NOT_FOUND
    message = err.value.message
    assert "the value 'Stray Supplies Ltd(VV00001)' already exists" in message
    assert "BL34000061" in message
    errors = err.value.detail["errors"]  # Intacct's own words, kept for the log
    assert any("Another Contact" in str(e.get("description")) for e in errors)


async def test_with_derived_ids_a_stray_contact_moves_to_the_next_id(
    sandbox: SandboxProcess,
) -> None:
    """A vendor deleted in Intacct leaves its contact NAME(VVENDORID): the supplier comes
    back under the next derived id instead of failing."""
    company = sandbox.new_company()
    name = "Returning Supplies Ltd"
    first_id = derived_vendor_id(vendor_match_key(name))
    sandbox.add_contact(company, f"{name}(V{first_id})")
    ledger = ledger_for(sandbox, company)
    try:
        vendor = await ledger.create_vendor(name)
        assert vendor.id == derived_vendor_id(vendor_match_key(name), 1)
        assert await ledger.find_vendor(name) == vendor
    finally:
        await ledger.aclose()
