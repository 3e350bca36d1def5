"""Attachments that do not fit Sage Accounting as they are, through the attach stage and the
real adapter over HTTP to the sandbox (which refuses what Sage refuses: over 2.5 MiB, a type
its guide does not list): re-encoded and attached, recorded as re-encoded, and reconcile
finds nothing wrong; what cannot fit parks with the sizes."""

from __future__ import annotations

import base64
import datetime as dt
import io
import os
import random
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from adapters.documents import DocumentFetcher
from adapters.intacct.attachments import LIMITS as INTACCT
from adapters.sage_accounting.attachments import MAX_ATTACHMENT_BYTES
from adapters.sage_accounting.ledger import SageAccountingLedger
from domain.errors import LedgerError, Reason, StageError
from domain.events import Envelope, Stage, Work
from domain.models import Document, DocumentRef, Invoice
from sandboxes.sage_accounting.sandbox import SageSandbox, SandboxOptions, make_business, running
from sandboxes.sage_accounting.state import Business
from streams.ops.reconcile import compare
from streams.pipeline import stages
from tests.contract.ledger_contract import draft
from tests.integration.test_sage_accounting_history import TAX, new_ledger
from tests.unit.test_attachment_fit import photo


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[SageSandbox, str]]:
    async with running(SandboxOptions(seed=11)) as served:
        yield served


async def bill_with(
    box: SageSandbox, url: str, tmp_path: Path, document: Path
) -> tuple[SageAccountingLedger, Work, stages.StageContext, Business]:
    biz = make_business({"tax_rates": TAX})
    box.businesses[biz.id] = biz
    ledger = new_ledger(box, url, tmp_path, biz)
    work, ctx = await work_for(ledger, ledger_tenant(ledger), tmp_path, document)
    return ledger, work, ctx, biz


async def work_for(
    ledger: Any, tenant: Any, tmp_path: Path, document: Path
) -> tuple[Work, stages.StageContext]:
    """A bill posted in ``ledger``, and the attach stage's input and context for it."""
    vendor = await ledger.create_vendor("Scanner Supplies Ltd")
    bill = draft(vendor.name, "SC-1", key="history:SC-1")
    made = await ledger.create_draft_bill(vendor, bill)
    invoice = Invoice(
        dext_id="SC-1",
        supplier=vendor.name,
        number="SC-1",
        date=bill.date,
        currency="GBP",
        net=Decimal("110.50"),
        tax=Decimal("20.00"),
        total=Decimal("130.50"),
        lines=[],
        document=DocumentRef(url=document.as_uri(), filename=document.name),
    )
    now = dt.datetime.now(dt.UTC)
    work = Work(invoice=invoice, bill=bill, received_at=now, vendor=vendor, ledger_bill=made)
    ctx = stages.StageContext(
        tenant=tenant,
        ledger=ledger,
        documents=DocumentFetcher(allowed_dirs=[tmp_path]),
        received_at=now,
        subject="history:SC-1",
    )
    return work, ctx


def ledger_tenant(ledger: SageAccountingLedger) -> Any:
    from domain.tenants import LedgerConfig, Tenant

    return Tenant(
        id="history",
        ledger=LedgerConfig(kind="sage-accounting", company=ledger.client.business_id),
        base_currency="GBP",
    )


def held(biz: Business) -> list[bytes]:
    return [base64.b64decode(biz.files[aid]) for aid in biz.attachments]


async def test_a_scan_over_sage_limit_is_attached_re_encoded(
    sandbox: tuple[SageSandbox, str], tmp_path: Path
) -> None:
    box, url = sandbox
    scan = tmp_path / "SC-1.png"
    scan.write_bytes(photo(2400))
    assert scan.stat().st_size > MAX_ATTACHMENT_BYTES
    ledger, work, ctx, biz = await bill_with(box, url, tmp_path, scan)
    try:
        done = await stages.attach(work, ctx)
        att = done.attachment
        assert att is not None and att.reencoded_from is not None
        assert att.reencoded_from.size == scan.stat().st_size
        (content,) = held(biz)
        assert len(content) <= MAX_ATTACHMENT_BYTES
        assert Image.open(io.BytesIO(content)).format == "JPEG"
        found = await ledger.find_attachment(work.ledger_bill)  # type: ignore[arg-type]
        assert found is not None and found.sha256 == att.sha256
        event = Envelope.new(stage=Stage.ATTACHED, subject=ctx.subject, data=done, source="t")
        assert await compare(event, ledger) == []
    finally:
        await ledger.aclose()


async def test_what_cannot_fit_parks_and_sage_holds_nothing(
    sandbox: tuple[SageSandbox, str], tmp_path: Path
) -> None:
    box, url = sandbox
    big = tmp_path / "SC-1.pdf"
    big.write_bytes(b"%PDF-1.4\n" + os.urandom(MAX_ATTACHMENT_BYTES))
    ledger, work, ctx, biz = await bill_with(box, url, tmp_path, big)
    try:
        with pytest.raises(StageError) as err:
            await stages.attach(work, ctx)
        assert err.value.reason is Reason.ATTACHMENT_TOO_LARGE
        assert f"{big.stat().st_size:,} bytes" in err.value.message
        assert held(biz) == []
    finally:
        await ledger.aclose()


async def test_the_sandbox_refuses_a_type_sage_does_not_list(
    sandbox: tuple[SageSandbox, str], tmp_path: Path
) -> None:
    """Past the stage's conversion, straight to the adapter: the sandbox says no, as Sage."""
    box, url = sandbox
    out = io.BytesIO()
    Image.new("RGB", (20, 20)).save(out, "GIF")
    gif = tmp_path / "SC-1.gif"
    gif.write_bytes(out.getvalue())
    ledger, work, _, biz = await bill_with(box, url, tmp_path, gif)
    try:
        with pytest.raises(LedgerError) as err:
            await ledger.attach_document(
                work.ledger_bill,  # type: ignore[arg-type]
                Document.of("SC-1.gif", "image/gif", gif.read_bytes()),
            )
        assert err.value.reason is Reason.ATTACHMENT_FAILED
        assert "image/gif" in err.value.message
        assert held(biz) == []
    finally:
        await ledger.aclose()


# -- Sage Intacct: 20 MB, any type ------------------------------------------------------------


@pytest.fixture(scope="module")
def intacct() -> Iterator[Any]:
    from sandboxes.intacct.harness import SandboxProcess

    with SandboxProcess() as process:
        yield process


def noise_png(path: Path, side: int) -> Path:
    rng = random.Random(side)
    Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3)).save(path, "PNG")
    return path


async def test_intacct_takes_a_huge_scan_re_encoded(intacct: Any, tmp_path: Path) -> None:
    from tests.contract.test_intacct_ledger import ledger_for

    scan = noise_png(tmp_path / "SC-1.png", 2600)
    assert INTACCT.max_bytes < scan.stat().st_size < 20 * 1024 * 1024  # fetched, too big
    ledger = ledger_for(intacct, intacct.new_company())
    try:
        work, ctx = await work_for(ledger, intacct_tenant(ledger), tmp_path, scan)
        done = await stages.attach(work, ctx)
        att = done.attachment
        assert att is not None and att.reencoded_from is not None
        assert att.size <= INTACCT.max_bytes and att.reencoded_from.size == scan.stat().st_size
        found = await ledger.find_attachment(done.ledger_bill)  # type: ignore[arg-type]
        assert found is not None and found.sha256 == att.sha256
    finally:
        await ledger.aclose()


async def test_intacct_parks_a_pdf_that_cannot_shrink(intacct: Any, tmp_path: Path) -> None:
    from tests.contract.test_intacct_ledger import ledger_for

    big = tmp_path / "SC-1.pdf"
    big.write_bytes(b"%PDF-1.4\n" + os.urandom(INTACCT.max_bytes + 500_000))
    ledger = ledger_for(intacct, intacct.new_company())
    try:
        work, ctx = await work_for(ledger, intacct_tenant(ledger), tmp_path, big)
        with pytest.raises(StageError) as err:
            await stages.attach(work, ctx)
        assert err.value.reason is Reason.ATTACHMENT_TOO_LARGE
        assert "20,000,000 bytes" in err.value.message
        assert await ledger.find_attachment(work.ledger_bill) is None  # type: ignore[arg-type]
    finally:
        await ledger.aclose()


def intacct_tenant(ledger: Any) -> Any:
    from domain.tenants import LedgerConfig, Tenant

    return Tenant(
        id="history",
        ledger=LedgerConfig(kind="intacct", company=ledger.company),
        base_currency="GBP",
    )
