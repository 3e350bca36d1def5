"""The contract every ledger must pass (docs/architecture.md, "The ledger port").

A ledger is done when a subclass of ``LedgerContract`` passes against it: the local one
directly, the others over real HTTP against their sandboxes.

Subclasses provide the ``ledger`` fixture (a fresh, empty company whose periods are all
open) and ``close_period`` / ``open_period`` (the administrative side, done the way that
system does it: an SQL update, a sandbox admin call...).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from decimal import Decimal

import pytest

from domain.errors import LedgerError, Reason
from domain.models import BillLine, Dimensions, Document, DraftBill
from domain.normalize import vendor_match_key
from domain.ports import Ledger

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def draft(
    vendor: str,
    number: str,
    *,
    day: dt.date = dt.date(2026, 10, 15),
    credit: bool = False,
    key: str | None = None,
) -> DraftBill:
    lines = [
        BillLine(
            description="Toner & paper <A4>",
            gl_account="7500",
            quantity=Decimal(2),
            unit_price=Decimal("50.00"),
            net=Decimal("100.00"),
            tax=Decimal("20.00"),
            total=Decimal("120.00"),
            tax_code="S20",
            tax_rate=Decimal(20),
            dimensions=Dimensions(department="FIN"),
        ),
        BillLine(
            description="Delivery",
            gl_account="7400",
            unit_price=Decimal("10.50"),
            net=Decimal("10.50"),
            tax=Decimal("2.10"),
            total=Decimal("12.60"),
            tax_code="S20",
            tax_rate=Decimal(20),
        ),
    ]
    return DraftBill(
        item_key=key or f"contract:{uuid.uuid4().hex[:12]}",
        vendor_name=vendor,
        vendor_match_key=vendor_match_key(vendor),
        number=number,
        date=day,
        due_date=day + dt.timedelta(days=30),
        currency="GBP",
        credit_note=credit,
        net=Decimal("110.50"),
        tax=Decimal("22.10"),
        total=Decimal("132.60"),
        memo="contract test",
        lines=lines,
    )


def unique(name: str) -> str:
    return f"{name} {uuid.uuid4().hex[:6]}"


class LedgerContract:
    """Behaviour every implementation of ``domain.ports.Ledger`` must show."""

    async def close_period(self, ledger: Ledger, period: str) -> None:
        raise NotImplementedError

    async def open_period(self, ledger: Ledger, period: str) -> None:
        raise NotImplementedError

    async def test_is_a_ledger(self, ledger: Ledger) -> None:
        assert isinstance(ledger, Ledger)
        await ledger.check_connection()

    async def test_vendor_is_found_by_normalised_name(self, ledger: Ledger) -> None:
        base = unique("Acme & Sons")
        created = await ledger.create_vendor(f"{base} Ltd.")
        assert (await ledger.find_vendor(f"{base.upper()} LIMITED")) == created
        assert (await ledger.find_vendor(f"  {base.lower()}  ltd ")) == created
        assert await ledger.find_vendor(unique("Nobody")) is None

    async def test_creating_a_vendor_twice_gives_one_vendor(self, ledger: Ledger) -> None:
        name = unique("O'Brien <Catering>")
        first = await ledger.create_vendor(name)
        second = await ledger.create_vendor(f"{name} Limited")
        assert first.id == second.id

    async def test_concurrent_vendor_creation_gives_one_vendor(self, ledger: Ledger) -> None:
        name = unique("Race Condition")
        made = await asyncio.gather(*(ledger.create_vendor(name) for _ in range(4)))
        assert len({v.id for v in made}) == 1

    async def test_draft_bill_round_trip(self, ledger: Ledger) -> None:
        vendor = await ledger.create_vendor(unique("Viking Direct"))
        bill = draft(vendor.name, "INV-1001")
        made = await ledger.create_draft_bill(vendor, bill)
        assert made.vendor_id == vendor.id
        assert made.number == "INV-1001"
        assert made.total == Decimal("132.60")
        assert made.currency == "GBP"
        assert made.date == bill.date
        assert not made.credit_note
        assert made.item_key == bill.item_key
        found = await ledger.find_bill(vendor.id, "INV-1001")
        assert found == made
        assert await ledger.get_bill(made.id) == made

    async def test_find_bill_misses_other_numbers_and_vendors(self, ledger: Ledger) -> None:
        a = await ledger.create_vendor(unique("Vendor A"))
        b = await ledger.create_vendor(unique("Vendor B"))
        await ledger.create_draft_bill(a, draft(a.name, "X-1"))
        assert await ledger.find_bill(a.id, "X-2") is None
        assert await ledger.find_bill(b.id, "X-1") is None

    async def test_duplicate_vendor_and_number_is_refused(self, ledger: Ledger) -> None:
        vendor = await ledger.create_vendor(unique("Dup Vendor"))
        first = await ledger.create_draft_bill(vendor, draft(vendor.name, "D-1"))
        with pytest.raises(LedgerError) as err:
            await ledger.create_draft_bill(vendor, draft(vendor.name, "D-1"))
        assert err.value.reason is Reason.DUPLICATE
        assert await ledger.find_bill(vendor.id, "D-1") == first

    async def test_credit_note_is_posted_as_a_credit(self, ledger: Ledger) -> None:
        vendor = await ledger.create_vendor(unique("Credit Vendor"))
        made = await ledger.create_draft_bill(vendor, draft(vendor.name, "CN-7", credit=True))
        assert made.credit_note
        assert made.total == Decimal("132.60")
        assert (await ledger.find_bill(vendor.id, "CN-7", credit_note=True)) == made

    async def test_closed_period_is_refused_then_reopened(self, ledger: Ledger) -> None:
        vendor = await ledger.create_vendor(unique("Period Vendor"))
        day = dt.date(2026, 3, 10)
        await self.close_period(ledger, "2026-03")
        assert not await ledger.period_is_open(day)
        assert await ledger.next_open_day(day) == dt.date(2026, 4, 1)
        with pytest.raises(LedgerError) as err:
            await ledger.create_draft_bill(vendor, draft(vendor.name, "P-1", day=day))
        assert err.value.reason is Reason.PERIOD_CLOSED
        assert await ledger.find_bill(vendor.id, "P-1") is None
        await self.open_period(ledger, "2026-03")
        assert await ledger.period_is_open(day)
        made = await ledger.create_draft_bill(vendor, draft(vendor.name, "P-1", day=day))
        assert made.number == "P-1"

    async def test_one_attachment_per_bill(self, ledger: Ledger) -> None:
        vendor = await ledger.create_vendor(unique("Attach Vendor"))
        bill = await ledger.create_draft_bill(vendor, draft(vendor.name, "A-1"))
        assert await ledger.find_attachment(bill) is None
        doc = Document.of("A-1.pdf", "application/pdf", PDF)
        att = await ledger.attach_document(bill, doc)
        assert att.bill_id == bill.id
        assert att.sha256 == doc.sha256
        assert att.size == len(PDF)
        assert await ledger.find_attachment(bill) == att
        with pytest.raises(LedgerError) as err:
            await ledger.attach_document(bill, doc)
        assert err.value.reason is Reason.ATTACHMENT_FAILED
        assert await ledger.find_attachment(bill) == att
