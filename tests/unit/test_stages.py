"""Every stage function, called directly over the local ledger (no Kafka)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import os
from pathlib import Path
from typing import cast

import pytest

from adapters.documents import DocumentFetcher
from domain.errors import LedgerError, Reason, StageError
from domain.events import Envelope, Received, Review, Stage, Work
from domain.models import AttachmentLimits, DocumentRef, DraftBill, LedgerBill, Vendor
from domain.ports import Ledger
from streams.pipeline import stages
from streams.pipeline.idempotency import _context
from streams.pipeline.wiring import Ports
from tests.conftest import DOCUMENTS_DIR, dext_item, ledger_of


def ctx_for(ports: Ports, tenant: str = "t1", item_id: str = "DX-1") -> stages.StageContext:
    ev = Envelope.new(
        stage=Stage.RECEIVED,
        subject=f"{tenant}:{item_id}",
        data=Received(item={"id": item_id}),
        source="test",
    )
    return _context(ev, ports)


async def through(ports: Ports, item: dict, upto: str, tenant: str = "t1") -> Work:
    ctx = ctx_for(ports, tenant, item["id"])
    work = await stages.validate(Received(item=item), ctx)
    for name in ("resolve_vendor", "create_bill", "attach"):
        if name == upto:
            return work
        work = await getattr(stages, name)(work, ctx)
    return work


async def test_validate_codes_the_bill(ports: Ports) -> None:
    work = await stages.validate(Received(item=dext_item()), ctx_for(ports))
    assert work.bill.item_key == "t1:DX-1"
    assert work.bill.lines[0].gl_account == "7500"
    assert work.bill.total == work.invoice.total
    assert work.vendor is None and work.ledger_bill is None


async def test_validate_fails_with_every_problem(ports: Ports) -> None:
    item = dext_item(invoice_number=None, date=None)
    with pytest.raises(StageError) as err:
        await stages.validate(Received(item=item), ctx_for(ports))
    assert err.value.reason is Reason.VALIDATION
    fields = {p.field for p in err.value.problems}
    assert {"invoice_number", "date"} <= fields


async def test_validate_uses_the_sources_document(ports: Ports) -> None:
    ref = DocumentRef(url="file:///elsewhere/x.pdf", filename="x.pdf")
    work = await stages.validate(Received(item=dext_item(), document=ref), ctx_for(ports))
    assert work.invoice.document == ref


async def test_validate_refuses_an_item_whose_id_is_not_its_key(ports: Ports) -> None:
    with pytest.raises(StageError, match="does not match"):
        await stages.validate(Received(item=dext_item(id="DX-9")), ctx_for(ports))


async def test_resolve_vendor_creates_once_then_finds(ports: Ports) -> None:
    first = await through(ports, dext_item(), "create_bill")
    again = await through(ports, dext_item(id="DX-2", payee="VIKING DIRECT LIMITED"), "create_bill")
    assert first.vendor is not None and again.vendor == first.vendor
    assert len(ledger_of(ports, "t1").writes("create_vendor")) == 1


async def test_resolve_vendor_refuses_when_auto_create_is_off(ports: Ports) -> None:
    item = dext_item(currency="USD", line_items=[], category="Office Supplies")
    with pytest.raises(StageError) as err:
        await through(ports, item, "create_bill", tenant="t2")
    assert err.value.reason is Reason.VENDOR_NOT_FOUND


async def test_create_bill_posts_a_draft(ports: Ports) -> None:
    work = await through(ports, dext_item(), "attach")
    assert work.ledger_bill is not None
    assert work.ledger_bill.state == "draft"
    assert work.ledger_bill.item_key == "t1:DX-1"


async def test_create_bill_adopts_its_own_bill_on_a_second_run(ports: Ports) -> None:
    ctx = ctx_for(ports)
    work = await through(ports, dext_item(), "create_bill")
    first = await stages.create_bill(work, ctx)
    second = await stages.create_bill(work, ctx)
    assert second.ledger_bill == first.ledger_bill
    assert any("adopted" in n for n in second.notes)
    assert len(ledger_of(ports, "t1").writes("create_draft_bill")) == 1


async def test_create_bill_parks_another_channels_bill_as_duplicate(ports: Ports) -> None:
    await through(ports, dext_item(), "attach")
    twin = await through(ports, dext_item(id="DX-2"), "create_bill")
    with pytest.raises(StageError) as err:
        await stages.create_bill(twin, ctx_for(ports, item_id="DX-2"))
    assert err.value.reason is Reason.DUPLICATE
    assert "already exists" in err.value.message
    assert len(ledger_of(ports, "t1").writes("create_draft_bill")) == 1


class _CheckThenPost:
    """A ledger whose lookup and create are separate round trips, as Sage's are."""

    def __init__(self) -> None:
        self.bills: list[LedgerBill] = []

    async def find_bill(
        self, vendor_id: str, number: str, *, credit_note: bool = False
    ) -> LedgerBill | None:
        await asyncio.sleep(0.01)
        return next((b for b in self.bills if (b.vendor_id, b.number) == (vendor_id, number)), None)

    async def create_draft_bill(self, vendor: Vendor, bill: DraftBill) -> LedgerBill:
        await asyncio.sleep(0.01)
        made = LedgerBill(
            id=f"B{len(self.bills) + 1}",
            vendor_id=vendor.id,
            number=bill.number,
            date=bill.date,
            currency=bill.currency,
            total=bill.total,
            item_key=bill.item_key,
        )
        self.bills.append(made)
        return made


async def test_twins_posted_at_once_make_one_bill_and_one_duplicate(ports: Ports) -> None:
    # Regression: the sample set's deliberate twin, replayed beside its original after a
    # period reopened, was posted too (both lookups missed before either create).
    first = await through(ports, dext_item(), "create_bill")
    twin = await through(ports, dext_item(id="DX-2"), "create_bill")
    ledger = _CheckThenPost()
    contexts = [
        dataclasses.replace(ctx_for(ports, item_id=i), ledger=cast(Ledger, ledger))
        for i in ("DX-1", "DX-2")
    ]
    outcomes = await asyncio.gather(
        stages.create_bill(first, contexts[0]),
        stages.create_bill(twin, contexts[1]),
        return_exceptions=True,
    )
    assert len(ledger.bills) == 1
    refused = [o for o in outcomes if isinstance(o, StageError)]
    assert [e.reason for e in refused] == [Reason.DUPLICATE]
    assert stages._posting == {}


async def test_closed_period_holds_by_default(ports: Ports) -> None:
    ledger_of(ports, "t1").close_period("2026-10")
    work = await through(ports, dext_item(), "create_bill")
    with pytest.raises(LedgerError) as err:
        await stages.create_bill(work, ctx_for(ports))
    assert err.value.reason is Reason.PERIOD_CLOSED


async def test_closed_period_redates_when_the_tenant_says_so(ports: Ports) -> None:
    ledger = ledger_of(ports, "t2")
    vendor = await ledger.create_vendor("Staples")
    ledger.close_period("2026-10")
    item = dext_item(payee="Staples", currency="USD", line_items=[])
    work = await stages.validate(Received(item=item), ctx_for(ports, "t2"))
    work = work.model_copy(update={"vendor": vendor})
    made = await stages.create_bill(work, ctx_for(ports, "t2"))
    assert made.ledger_bill is not None
    assert made.ledger_bill.date == dt.date(2026, 11, 1)
    assert made.bill.date == dt.date(2026, 11, 1)
    assert any("posted on 2026-11-01" in n for n in made.notes)


async def test_attach_uploads_the_document_once(ports: Ports) -> None:
    work = await through(ports, dext_item(), "attach")
    ctx = ctx_for(ports)
    done = await stages.attach(work, ctx)
    again = await stages.attach(work, ctx)
    assert done.attachment is not None and again.attachment == done.attachment
    assert done.attachment.size > 0
    assert len(ledger_of(ports, "t1").writes("attach_document")) == 1


async def test_attach_without_a_document_is_document_unavailable(ports: Ports) -> None:
    work = await through(ports, dext_item(document=None), "attach")
    with pytest.raises(StageError) as err:
        await stages.attach(work, ctx_for(ports))
    assert err.value.reason is Reason.DOCUMENT_UNAVAILABLE


async def test_attach_refuses_a_document_outside_allowed_folders(ports: Ports, tmp_path) -> None:
    stray = tmp_path / "stray.pdf"
    stray.write_bytes(b"%PDF-1.4 stray")
    item = dext_item(document={"url": stray.as_uri(), "filename": "stray.pdf"})
    work = await through(ports, item, "attach")
    with pytest.raises(StageError) as err:
        await stages.attach(work, ctx_for(ports))
    assert err.value.reason is Reason.DOCUMENT_UNAVAILABLE
    assert "not one this tenant allows" in err.value.message


SAGE_LIKE = AttachmentLimits("Sage-like", 200_000, frozenset({"application/pdf", "image/jpeg"}))


def big_scan(path: Path) -> Path:
    from tests.unit.test_attachment_fit import photo

    path.write_bytes(photo(1800))
    return path


async def test_attach_re_encodes_a_document_over_the_ledgers_limit(
    ports: Ports, tmp_path: Path
) -> None:
    scan = big_scan(tmp_path / "DX-1.png")
    ports.documents = DocumentFetcher(allowed_dirs=[tmp_path])
    ledger_of(ports, "t1").attachment_limits = SAGE_LIKE
    item = dext_item(document={"url": scan.as_uri(), "filename": "DX-1.png"})
    work = await through(ports, item, "attach")
    done = await stages.attach(work, ctx_for(ports))
    attachment = done.attachment
    assert attachment is not None and attachment.reencoded_from is not None
    held = ledger_of(ports, "t1").attachment_content(attachment.bill_id)
    assert held is not None and len(held) <= SAGE_LIKE.max_bytes
    assert hashlib.sha256(held).hexdigest() == attachment.sha256  # what the ledger holds
    original = attachment.reencoded_from
    assert original.sha256 == hashlib.sha256(scan.read_bytes()).hexdigest()
    assert (original.filename, original.size) == ("DX-1.png", scan.stat().st_size)
    assert any("re-encoded to fit Sage-like" in n for n in done.notes)


async def test_attach_parks_what_cannot_be_made_to_fit(ports: Ports, tmp_path: Path) -> None:
    doc = tmp_path / "DX-1.pdf"
    doc.write_bytes(b"%PDF-1.4\n" + os.urandom(300_000))  # not even a PDF pikepdf can open
    ports.documents = DocumentFetcher(allowed_dirs=[tmp_path])
    ledger_of(ports, "t1").attachment_limits = SAGE_LIKE
    item = dext_item(document={"url": doc.as_uri(), "filename": "DX-1.pdf"})
    work = await through(ports, item, "attach")
    with pytest.raises(StageError) as err:
        await stages.attach(work, ctx_for(ports))
    assert err.value.reason is Reason.ATTACHMENT_TOO_LARGE
    assert "300,009 bytes" in err.value.message and "200,000" in err.value.message
    assert ledger_of(ports, "t1").writes("attach_document") == []


# -- the duplicate check before the bill ----------------------------------------------------


async def held(ports: Ports, item: dict) -> StageError:
    work = await through(ports, item, "create_bill")
    with pytest.raises(StageError) as err:
        await stages.create_bill(work, ctx_for(ports, item_id=item["id"]))
    return err.value


async def test_the_same_number_written_otherwise_is_held_naming_the_first(ports: Ports) -> None:
    first = await through(ports, dext_item(invoice_number="INV-0042"), "attach")
    assert first.ledger_bill is not None
    again = dext_item(id="DX-2", invoice_number="42", payee="VIKING DIRECT LIMITED")
    err = await held(ports, again)
    assert err.reason is Reason.POSSIBLE_DUPLICATE
    assert err.detail["rule"] == "number_variant" and err.detail["matches"] == ["t1:DX-1"]
    assert "looks like t1:DX-1" in err.message
    assert len(ledger_of(ports, "t1").writes("create_draft_bill")) == 1


async def test_a_reissue_with_a_new_number_is_held(ports: Ports) -> None:
    await through(ports, dext_item(), "attach")
    reissue = dext_item(id="DX-2", invoice_number="INV-77", date="2026-10-20")
    reissue["document"] = dict(reissue["document"], url=(DOCUMENTS_DIR / "DX-100002.pdf").as_uri())
    err = await held(ports, reissue)
    assert err.detail["rule"] == "same_total_near_date"


async def test_the_same_file_under_another_number_is_held(ports: Ports) -> None:
    await through(ports, dext_item(), "attach")
    other = dext_item(id="DX-2", invoice_number="B-9", payee="Someone Else", total_amount="120.00")
    err = await held(ports, other)
    assert err.detail["rule"] == "same_document"


async def test_released_by_a_person_it_goes_on_once(ports: Ports) -> None:
    await through(ports, dext_item(invoice_number="INV-0042"), "attach")
    again = dext_item(id="DX-2", invoice_number="42")
    work = await through(ports, again, "create_bill")
    now = dt.datetime.now(dt.UTC)
    released = work.model_copy(update={"review": Review(decision="release", by="ana", at=now)})
    made = await stages.create_bill(released, ctx_for(ports, item_id="DX-2"))
    assert made.ledger_bill is not None
    # the same release delivered twice adopts the bill it made
    again_made = await stages.create_bill(released, ctx_for(ports, item_id="DX-2"))
    assert again_made.ledger_bill == made.ledger_bill
    assert len(ledger_of(ports, "t1").writes("create_draft_bill")) == 2


async def test_a_credit_note_is_never_its_invoices_duplicate(ports: Ports) -> None:
    await through(ports, dext_item(), "attach")
    credit = dext_item(id="DX-2", type="credit_note", invoice_number="CN-1")
    credit["document"] = dict(credit["document"], url=(DOCUMENTS_DIR / "DX-100002.pdf").as_uri())
    done = await through(ports, credit, "attach")
    assert done.ledger_bill is not None and done.ledger_bill.credit_note


async def test_an_item_retried_is_not_its_own_duplicate(ports: Ports) -> None:
    work = await through(ports, dext_item(), "create_bill")
    ctx = ctx_for(ports)
    first = await stages.create_bill(work, ctx)
    again = await stages.create_bill(work, ctx)  # a retry after an uncertain write
    assert again.ledger_bill == first.ledger_bill


async def test_the_exact_number_goes_to_the_ledgers_own_check(ports: Ports) -> None:
    await through(ports, dext_item(), "attach")
    err = await held(ports, dext_item(id="DX-2"))  # the same number as written
    assert err.reason is Reason.DUPLICATE  # refused by the ledger, never posted twice
