"""The ledger contract on Sage Accounting, over real HTTP against the sandbox in its own process.

Each test gets a fresh business (and its own refresh token) in one shared sandbox. Periods
close the way Sage closes them: the lock date (``year_end_lockdown_date``, set through
``PUT /financial_settings``). Closing 2026-03 locks everything up to 2026-03-31; opening it
moves the lock date back to 2026-02-28. Every request and response is checked against Sage's
Swagger definitions, client side and sandbox side.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.sage_accounting.ledger import SageAccountingLedger
from domain.errors import LedgerError, Reason
from domain.models import Document
from domain.tenants import LedgerConfig, Tenant
from sandboxes.sage_accounting.harness import SandboxProcess
from tests.contract.ledger_contract import PDF, LedgerContract, draft, unique

PREFIX = "SAGE_CONTRACT"
TAX_RATES = [
    {"id": "GB_STANDARD", "name": "S20", "percentage": "20"},
    {"id": "GB_ZERO", "name": "Z0", "percentage": "0"},
]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess() as sb:
        yield sb
        assert sb.stats()["schema_violations"] == 0


def sage_ledger(
    sandbox: SandboxProcess,
    tmp_path: Path,
    *,
    draft_mode: str = "draft",
    config: dict[str, object] | None = None,
) -> SageAccountingLedger:
    business, refresh = sandbox.new_business({"tax_rates": TAX_RATES, **(config or {})})
    tenant = Tenant(
        id="contract",
        ledger=LedgerConfig(
            kind="sage-accounting", company=business, credentials_env=PREFIX, url=sandbox.url
        ),
        base_currency="GBP",
        currencies=["GBP"],
    )
    creds = sandbox.credentials
    env = {
        f"{PREFIX}_CLIENT_ID": creds["client_id"],
        f"{PREFIX}_CLIENT_SECRET": creds["client_secret"],
        f"{PREFIX}_REFRESH_TOKEN": refresh,
        f"{PREFIX}_VALIDATE_SCHEMA": "1",
        f"{PREFIX}_DRAFT_MODE": draft_mode,
    }
    return SageAccountingLedger.from_tenant(tenant, env, tmp_path / "tokens")


async def set_lock_date(ledger: SageAccountingLedger, day: dt.date) -> None:
    await ledger.client.call(
        "putFinancialSettings",
        body={"financial_settings": {"year_end_lockdown_date": day.isoformat()}},
        write=True,
        what="moving the lock date",
    )


class TestSageAccountingLedger(LedgerContract):
    @pytest.fixture
    async def ledger(
        self, sandbox: SandboxProcess, tmp_path: Path
    ) -> AsyncIterator[SageAccountingLedger]:
        ledger = sage_ledger(sandbox, tmp_path)
        yield ledger
        await ledger.aclose()

    async def close_period(self, ledger: SageAccountingLedger, period: str) -> None:  # type: ignore[override]
        first = dt.date.fromisoformat(f"{period}-01")
        last = first.replace(day=calendar.monthrange(first.year, first.month)[1])
        await set_lock_date(ledger, last)

    async def open_period(self, ledger: SageAccountingLedger, period: str) -> None:  # type: ignore[override]
        first = dt.date.fromisoformat(f"{period}-01")
        await set_lock_date(ledger, first - dt.timedelta(days=1))

    # -- Sage Accounting specifics ------------------------------------------------------------

    async def test_bill_is_a_draft_in_sage_and_can_be_released(
        self, ledger: SageAccountingLedger
    ) -> None:
        vendor = await ledger.create_vendor(unique("Draft Vendor"))
        made = await ledger.create_draft_bill(vendor, draft(vendor.name, "DR-1"))
        assert made.state == "draft"
        released = await ledger.release(made)
        assert released.state == "unpaid" and released.id == made.id

    async def test_posted_mode_posts_at_once(self, sandbox: SandboxProcess, tmp_path: Path) -> None:
        ledger = sage_ledger(sandbox, tmp_path, draft_mode="posted")
        try:
            vendor = await ledger.create_vendor(unique("Posted Vendor"))
            made = await ledger.create_draft_bill(vendor, draft(vendor.name, "PO-1"))
            assert made.state == "unpaid"
        finally:
            await ledger.aclose()

    async def test_unknown_gl_and_tax_codes_are_all_named(
        self, ledger: SageAccountingLedger
    ) -> None:
        vendor = await ledger.create_vendor(unique("Mapping Vendor"))
        bill = draft(vendor.name, "M-1")
        lines = [
            bill.lines[0].model_copy(update={"gl_account": "9999"}),
            bill.lines[1].model_copy(update={"tax_code": "NOPE"}),
        ]
        with pytest.raises(LedgerError) as err:
            await ledger.create_draft_bill(vendor, bill.model_copy(update={"lines": lines}))
        assert err.value.reason is Reason.MAPPING_MISSING
        assert {p.field for p in err.value.problems} == {"lines[0].gl_account", "lines[1].tax_code"}
        assert "9999" in err.value.message and "NOPE" in err.value.message

    async def test_foreign_currency_without_multi_currency_is_refused(
        self, ledger: SageAccountingLedger
    ) -> None:
        vendor = await ledger.create_vendor(unique("Euro Vendor"))
        bill = draft(vendor.name, "EU-1").model_copy(update={"currency": "EUR"})
        with pytest.raises(LedgerError) as err:
            await ledger.create_draft_bill(vendor, bill)
        assert err.value.reason is Reason.CURRENCY_MISMATCH

    async def test_foreign_currency_with_multi_currency(
        self, sandbox: SandboxProcess, tmp_path: Path
    ) -> None:
        ledger = sage_ledger(sandbox, tmp_path, config={"currencies": ["GBP", "EUR"]})
        try:
            vendor = await ledger.create_vendor(unique("Euro Vendor"))
            made = await ledger.create_draft_bill(
                vendor, draft(vendor.name, "EU-2").model_copy(update={"currency": "EUR"})
            )
            assert made.currency == "EUR"
        finally:
            await ledger.aclose()

    async def test_invoice_number_longer_than_sage_keeps_is_refused(
        self, ledger: SageAccountingLedger
    ) -> None:
        vendor = await ledger.create_vendor(unique("Long Number"))
        with pytest.raises(LedgerError) as err:
            await ledger.create_draft_bill(vendor, draft(vendor.name, "N" * 32))
        assert err.value.reason is Reason.VALIDATION
        assert err.value.problems[0].field == "number"

    async def test_amounts_that_do_not_multiply_out_still_total_right(
        self, ledger: SageAccountingLedger
    ) -> None:
        vendor = await ledger.create_vendor(unique("Rounding Vendor"))
        bill = draft(vendor.name, "R-1")
        odd = bill.lines[0].model_copy(
            update={
                "quantity": Decimal(3),
                "unit_price": Decimal("33.33"),
                "net": Decimal("100.00"),
                "tax": Decimal("20.00"),
                "total": Decimal("120.00"),
            }
        )
        made = await ledger.create_draft_bill(
            vendor, bill.model_copy(update={"lines": [odd, bill.lines[1]]})
        )
        assert made.total == Decimal("132.60")

    async def test_vendor_found_by_tax_number_despite_another_name(
        self, ledger: SageAccountingLedger
    ) -> None:
        base = unique("Tax Match")
        made = await ledger.create_vendor(f"{base} Ltd", tax_number="GB 123 4567 89")
        found = await ledger.find_vendor(f"{base} Trading", tax_number="GB123456789")
        assert found == made

    async def test_period_helpers_follow_the_lock_date(self, ledger: SageAccountingLedger) -> None:
        await set_lock_date(ledger, dt.date(2026, 5, 31))
        assert not await ledger.period_is_open(dt.date(2026, 1, 10))
        assert await ledger.period_is_open(dt.date(2026, 6, 1))
        assert await ledger.next_open_day(dt.date(2026, 1, 10)) == dt.date(2026, 6, 1)
        assert await ledger.next_open_day(dt.date(2026, 7, 4)) == dt.date(2026, 7, 4)

    async def test_attachment_over_two_and_a_half_mib_is_refused_before_sending(
        self, ledger: SageAccountingLedger
    ) -> None:
        vendor = await ledger.create_vendor(unique("Big File"))
        bill = await ledger.create_draft_bill(vendor, draft(vendor.name, "BIG-1"))
        calls = ledger.client.requests
        big = Document.of("big.pdf", "application/pdf", PDF + b"0" * (2_621_440 - len(PDF) + 1))
        with pytest.raises(LedgerError) as err:
            await ledger.attach_document(bill, big)
        assert err.value.reason is Reason.ATTACHMENT_TOO_LARGE
        assert "2,621,441 bytes" in err.value.message and "2,621,440" in err.value.message
        assert ledger.client.requests == calls  # nothing went to Sage
        exact = Document.of("max.pdf", "application/pdf", PDF + b"0" * (2_621_440 - len(PDF)))
        att = await ledger.attach_document(bill, exact)
        assert att.size == 2_621_440
        assert await ledger.find_attachment(bill) == att

    async def test_credit_note_attachment(self, ledger: SageAccountingLedger) -> None:
        vendor = await ledger.create_vendor(unique("Credit Attach"))
        credit = await ledger.create_draft_bill(vendor, draft(vendor.name, "C-9", credit=True))
        att = await ledger.attach_document(credit, Document.of("c.pdf", "application/pdf", PDF))
        assert await ledger.find_attachment(credit) == att
        assert await ledger.get_bill(credit.id) == credit

    async def test_a_deleted_bill_is_created_again_on_replay(
        self,
        sandbox: SandboxProcess,
        ledger: SageAccountingLedger,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Within Sage's 7-day idempotency window a replay would hand back the deleted bill."""
        import adapters.sage_accounting.ledger as bills_module

        vendor = await ledger.create_vendor(unique("Deleted Bill"))
        bill = draft(vendor.name, "DEL-1")
        first = await ledger.create_draft_bill(vendor, bill)
        sandbox.delete_bill(ledger.client.business_id, first.id)
        assert await ledger.find_bill(vendor.id, "DEL-1") is None
        real = bills_module.created_at

        def a_day_older(data: dict[str, object]) -> dt.datetime | None:
            when = real(data)
            return None if when is None else when - dt.timedelta(days=1)

        # the replayed answer now looks as old as a replay days later would
        monkeypatch.setattr(bills_module, "created_at", a_day_older)
        again = await ledger.create_draft_bill(vendor, bill)
        assert again.id != first.id
        assert await ledger.find_bill(vendor.id, "DEL-1") == again

    async def test_a_deleted_supplier_is_created_again(
        self,
        sandbox: SandboxProcess,
        ledger: SageAccountingLedger,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        import adapters.sage_accounting.vendors as vendors_module

        name = unique("Gone Supplier")
        first = await ledger.create_vendor(name)
        sandbox.delete_contact(ledger.client.business_id, first.id)
        # a ledger with empty caches, as a worker that never saw the supplier
        fresh = SageAccountingLedger(ledger.client, tenant_id=ledger.tenant_id)
        real = vendors_module.created_at

        def a_day_older(data: dict[str, object]) -> dt.datetime | None:
            when = real(data)
            return None if when is None else when - dt.timedelta(days=1)

        monkeypatch.setattr(vendors_module, "created_at", a_day_older)
        assert await fresh.find_vendor(name) is None
        again = await fresh.create_vendor(name)
        assert again.id != first.id
        assert await fresh.find_vendor(name) == again
