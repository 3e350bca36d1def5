"""Faults against the sandbox in its own process: nothing is ever posted or uploaded twice.

The driver below retries the way the pipeline does (``streams.pipeline.stages``): a stage
that failed for a transient reason is run again from the top, so ``find_bill`` and
``find_attachment`` always run before a second write. Two ledger instances stand for two
worker processes sharing the company.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import pytest

from adapters.intacct.client import IntacctClient, IntacctCredentials, RequestRetries
from adapters.intacct.ledger import IntacctLedger
from domain.errors import LedgerError, Reason
from domain.models import Attachment, Document, DraftBill, LedgerBill, Vendor
from sandboxes.intacct.harness import SandboxProcess
from tests.contract.ledger_contract import PDF, draft

T = TypeVar("T")

SUPPLIERS = [
    "Smith & Jones Accountants LLP",
    "O'Brien <Catering> Ltd",
    'The "Quoted" Company',
    "Café Zürich GmbH",
    "Viking Direct",
    "WeWork UK Ltd",
]


def ledger_for(
    sandbox: SandboxProcess, company: str, *, timeout: float = 30.0, attempts: int = 3
) -> IntacctLedger:
    creds = sandbox.credentials
    client = IntacctClient(
        IntacctCredentials(
            sender_id=creds["sender_id"],
            sender_password=creds["sender_password"],
            company_id=company,
            user_id=creds["user_id"],
            user_password=creds["user_password"],
        ),
        endpoint=sandbox.url,
        timeout=timeout,
        retry=RequestRetries(attempts=attempts, initial=0.01, maximum=0.1),
    )
    return IntacctLedger(client)


@dataclass
class Driver:
    """The pipeline's retry discipline: transient failures re-run the whole stage."""

    retries: int = 0
    uncertain: int = 0

    async def stage(self, step: Callable[[], Awaitable[T]], budget: int = 60) -> T:
        for attempt in range(budget):
            try:
                return await step()
            except LedgerError as err:
                if not err.transient:
                    raise
                self.retries += 1
                self.uncertain += err.uncertain
                await asyncio.sleep(min(0.005 * 2**attempt, 0.1))
        raise AssertionError("retry budget spent")

    async def resolve_vendor(self, ledger: IntacctLedger, bill: DraftBill) -> Vendor:
        async def step() -> Vendor:
            found = await ledger.find_vendor(bill.vendor_name)
            return found or await ledger.create_vendor(bill.vendor_name)

        return await self.stage(step)

    async def create_bill(
        self, ledger: IntacctLedger, vendor: Vendor, bill: DraftBill
    ) -> LedgerBill:
        async def step() -> LedgerBill:
            existing = await ledger.find_bill(vendor.id, bill.number, credit_note=bill.credit_note)
            if existing is not None:
                if existing.item_key != bill.item_key:
                    raise LedgerError(Reason.DUPLICATE, f"{bill.number} posted by another channel")
                return existing
            return await ledger.create_draft_bill(vendor, bill)

        return await self.stage(step)

    async def attach(self, ledger: IntacctLedger, made: LedgerBill, doc: Document) -> Attachment:
        async def step() -> Attachment:
            existing = await ledger.find_attachment(made)
            return existing or await ledger.attach_document(made, doc)

        return await self.stage(step)

    async def item(self, ledger: IntacctLedger, bill: DraftBill) -> str:
        try:
            vendor = await self.resolve_vendor(ledger, bill)
            made = await self.create_bill(ledger, vendor, bill)
            doc = Document.of(f"{bill.number}.pdf", "application/pdf", PDF + bill.number.encode())
            await self.attach(ledger, made, doc)
        except LedgerError as err:
            print("PARKED", bill.number, err.reason, err.message, err.detail)
            return err.reason.value
        return "attached"


def items(count: int) -> list[DraftBill]:
    out = []
    for n in range(count):
        day = dt.date(2026, 3, 10) if n % 9 == 0 else dt.date(2026, 10, 1 + n % 28)
        out.append(
            draft(SUPPLIERS[n % len(SUPPLIERS)], f"F-{n:03d}", day=day, key=f"faults:DX-{n:04d}")
        )
    return out


@pytest.fixture(scope="module")
def faulty() -> Iterator[SandboxProcess]:
    args = ["--fail-rate", "0.2", "--seed", "20261127", "--closed-period", "2026-03"]
    with SandboxProcess(args) as process:
        yield process


async def test_fail_rate_and_closed_period_end_with_one_bill_and_one_attachment_each(
    faulty: SandboxProcess,
) -> None:
    company = faulty.new_company()
    workers = [ledger_for(faulty, company), ledger_for(faulty, company)]
    driver = Driver()
    bills = items(36)
    try:
        gate = asyncio.Semaphore(8)

        async def run(n: int, bill: DraftBill) -> str:
            async with gate:
                return await driver.item(workers[n % 2], bill)

        outcomes = await asyncio.gather(*(run(n, b) for n, b in enumerate(bills)))
        parked = [b for b, o in zip(bills, outcomes, strict=True) if o != "attached"]
        assert {o for o in outcomes if o != "attached"} == {"period_closed"}
        assert [b.date.month for b in parked] == [3] * len(parked) and len(parked) == 4

        # Reopen the period and replay what was held: every good item ends attached.
        faulty.set_period(company, "2026-03", "open")
        replayed = await asyncio.gather(*(run(n, b) for n, b in enumerate(parked)))
        assert replayed == ["attached"] * len(parked)
    finally:
        for worker in workers:
            await worker.aclose()

    inventory = faulty.inventory(company)
    assert inventory == {b.item_key: {"bills": 1, "attachments": 1} for b in bills}
    assert len(faulty.bills(company)) == len(bills)
    assert len(faulty.supdocs(company)) == len(bills)
    vendors = faulty.admin("GET", f"vendors?company={company}")["vendors"]
    assert len(vendors) == len(SUPPLIERS)
    faults = faulty.stats()["faults"]
    print(f"faults {faults}; pipeline retries {driver.retries}, uncertain {driver.uncertain}")
    # The run was really hostile: writes were interrupted after they happened, and retried.
    assert faults.get("after_write", 0) + faults.get("drop_after_write", 0) >= 1
    assert sum(faults.values()) >= 10
    assert driver.retries >= 1 and driver.uncertain >= 1


@pytest.fixture(scope="module")
def calm() -> Iterator[SandboxProcess]:
    with SandboxProcess(["--hang-seconds", "2"]) as process:
        yield process


@pytest.mark.parametrize("fault", ["after_write", "drop_after_write", "hang_after_write"])
async def test_bill_write_lost_after_it_happened_is_adopted_not_reposted(
    calm: SandboxProcess, fault: str
) -> None:
    company = calm.new_company()
    ledger = ledger_for(calm, company, timeout=0.5)
    driver = Driver()
    try:
        vendor = await driver.resolve_vendor(ledger, draft(SUPPLIERS[0], "x"))
        bill = draft(vendor.name, "LOST-1", key=f"faults:{fault}")
        calm.faults(next=["ok", fault])  # the duplicate guard passes, the create is lost
        with pytest.raises(LedgerError) as err:
            await ledger.create_draft_bill(vendor, bill)
        assert err.value.reason is Reason.UNAVAILABLE and err.value.uncertain
        made = await driver.create_bill(ledger, vendor, bill)
        assert made.item_key == bill.item_key
    finally:
        await ledger.aclose()
    assert calm.inventory(company) == {bill.item_key: {"bills": 1, "attachments": 0}}


async def test_upload_lost_after_it_happened_is_found_not_uploaded_again(
    calm: SandboxProcess,
) -> None:
    company = calm.new_company()
    ledger = ledger_for(calm, company)
    driver = Driver()
    try:
        vendor = await driver.resolve_vendor(ledger, draft(SUPPLIERS[1], "x"))
        warm = await driver.create_bill(ledger, vendor, draft(vendor.name, "W-1", key="faults:w"))
        await driver.attach(ledger, warm, Document.of("w.pdf", "application/pdf", PDF))
        made = await driver.create_bill(ledger, vendor, draft(vendor.name, "U-1", key="faults:u"))
        doc = Document.of("U-1.pdf", "application/pdf", PDF + b"u")
        # a bill this client has just created needs no look first: the upload itself is lost
        calm.faults(next=["drop_after_write"])
        with pytest.raises(LedgerError) as err:
            await ledger.attach_document(made, doc)
        assert err.value.uncertain
        attachment = await driver.attach(ledger, made, doc)
        assert attachment.sha256 == doc.sha256
    finally:
        await ledger.aclose()
    assert calm.inventory(company) == {
        "faults:w": {"bills": 1, "attachments": 1},
        "faults:u": {"bills": 1, "attachments": 1},
    }
    assert len(calm.supdocs(company)) == 2


async def test_rate_limit_and_outage_past_the_budget_surface_as_transient_reasons(
    calm: SandboxProcess,
) -> None:
    ledger = ledger_for(calm, calm.new_company(), attempts=2)
    try:
        await ledger.check_connection()
        calm.faults(next=["rate_limit", "rate_limit"])
        with pytest.raises(LedgerError) as limited:
            await ledger.find_vendor("Anyone")
        calm.faults(next=["unavailable", "unavailable"])
        with pytest.raises(LedgerError) as down:
            await ledger.find_vendor("Anyone")
        calm.faults(next=["unavailable"])
        assert await ledger.find_vendor("Anyone") is None  # one 503, then the retry succeeds
    finally:
        await ledger.aclose()
    assert limited.value.reason is Reason.RATE_LIMITED and limited.value.retry_after == 1.0
    assert down.value.reason is Reason.UNAVAILABLE and not down.value.uncertain


async def test_twins_posted_by_two_workers_at_once_make_one_bill(calm: SandboxProcess) -> None:
    # Regression: two items with the same supplier and number, on two workers, both looked
    # up before either posted and both bills were created. The create's control id is now
    # the supplier and number, so Intacct's uniqueid refuses the second.
    company = calm.new_company()
    workers = [ledger_for(calm, company), ledger_for(calm, company)]
    try:
        vendor = await Driver().resolve_vendor(workers[0], draft(SUPPLIERS[2], "x"))
        twins = [draft(vendor.name, "TWIN-1", key=f"faults:twin-{n}") for n in (1, 2)]
        for worker in workers:  # both lookups miss before either posts
            assert await worker.find_bill(vendor.id, "TWIN-1") is None
        outcomes = await asyncio.gather(
            *(w.create_draft_bill(vendor, b) for w, b in zip(workers, twins, strict=True)),
            return_exceptions=True,
        )
    finally:
        for worker in workers:
            await worker.aclose()
    refused = [o for o in outcomes if isinstance(o, LedgerError)]
    assert [e.reason for e in refused] == [Reason.DUPLICATE]
    assert len(calm.bills(company)) == 1
