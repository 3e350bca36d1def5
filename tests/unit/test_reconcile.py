"""Reconcile on the local ledger: every kind of difference, and the attachment repair."""

from __future__ import annotations

import datetime as dt

from domain.events import STAGES, Envelope, Received, Stage, Work
from streams.ops.reconcile import compare, repair_attachment
from streams.pipeline import stages
from streams.pipeline.idempotency import StageSpec, run_stage
from streams.pipeline.wiring import Ports
from tests.conftest import dext_item, ledger_of


async def attached(ports: Ports, **item: object) -> Envelope:
    """One item through the four stages, as the worker runs them."""
    event = Envelope.new(
        stage=Stage.RECEIVED,
        subject=f"t1:{item.get('id', 'DX-1')}",
        data=Received(item=dext_item(**item)),
        source="test",
    )
    for name, (source, target) in STAGES.items():
        spec = StageSpec(name, source, target, getattr(stages, name))
        event = await run_stage(event, spec, ports)
        assert event.stage is target, event.data
    return event


async def test_a_bill_as_we_left_it_has_no_difference(ports: Ports) -> None:
    event = await attached(ports)
    assert await compare(event, ports.ledger("t1")) == []


async def test_a_deleted_attachment_is_reported_and_repaired(ports: Ports) -> None:
    event = await attached(ports)
    work = event.data
    assert isinstance(work, Work) and work.ledger_bill and work.attachment
    ledger = ledger_of(ports, "t1")
    ledger.delete_attachment(work.ledger_bill.id)
    (diff,) = await compare(event, ledger)
    assert (diff.kind, diff.item, diff.bill_id) == ("attachment_missing", "t1:DX-1", "B-000001")
    assert work.attachment.sha256[:12] in diff.detail

    fixed = await repair_attachment(event, ports)
    assert fixed.stage is Stage.ATTACHED and fixed.attempt == event.attempt + 1
    assert fixed.source == "reconcile" and fixed.causationid == event.id
    assert isinstance(fixed.data, Work) and fixed.data.attachment is not None
    assert fixed.data.attachment.sha256 == work.attachment.sha256
    assert fixed.data.attachment.id != work.attachment.id
    assert await compare(fixed, ledger) == []
    assert len(ledger.writes("attach_document")) == 2


async def test_a_deleted_bill_is_reported_alone(ports: Ports) -> None:
    event = await attached(ports)
    work = event.data
    assert isinstance(work, Work) and work.ledger_bill
    ledger_of(ports, "t1").delete_bill(work.ledger_bill.id)
    (diff,) = await compare(event, ports.ledger("t1"))
    assert diff.kind == "bill_missing"
    assert "Viking Direct Ltd INV-1 GBP 120.00" in diff.detail


async def test_a_bill_changed_by_hand_is_reported_with_what_changed(ports: Ports) -> None:
    event = await attached(ports)
    work = event.data
    assert isinstance(work, Work) and work.ledger_bill
    ledger = ledger_of(ports, "t1")
    ledger._db.execute(
        "UPDATE bills SET total = '99.00', number = 'INV-1X' WHERE id = ?", (work.ledger_bill.id,)
    )
    (diff,) = await compare(event, ledger)
    assert diff.kind == "bill_changed"
    assert "number 'INV-1' -> 'INV-1X'" in diff.detail and "total 120.00 -> 99.00" in diff.detail


async def test_an_attachment_replaced_by_another_file_is_reported(ports: Ports) -> None:
    from domain.models import Document

    event = await attached(ports)
    work = event.data
    assert isinstance(work, Work) and work.ledger_bill
    ledger = ledger_of(ports, "t1")
    ledger.delete_attachment(work.ledger_bill.id)
    other = Document.of("other.pdf", "application/pdf", b"%PDF-1.4 another file")
    await ledger.attach_document(work.ledger_bill, other)
    (diff,) = await compare(event, ledger)
    assert diff.kind == "attachment_changed" and other.sha256[:12] in diff.detail


async def test_a_repair_that_cannot_fetch_the_document_says_why(ports: Ports) -> None:
    event = await attached(ports)
    work = event.data
    assert isinstance(work, Work) and work.ledger_bill and work.invoice.document
    ledger_of(ports, "t1").delete_attachment(work.ledger_bill.id)
    gone = work.invoice.document.model_copy(update={"url": "file:///nowhere/DX-1.pdf"})
    moved = work.model_copy(update={"invoice": work.invoice.model_copy(update={"document": gone})})
    broken = event.model_copy(update={"data": moved, "time": dt.datetime.now(dt.UTC)})
    out = await repair_attachment(broken, ports)
    assert out.stage is Stage.FAILED


async def test_a_re_encoded_attachment_is_told_from_a_wrong_one(ports: Ports, tmp_path) -> None:
    from adapters.documents import DocumentFetcher
    from domain.models import AttachmentLimits, Document
    from tests.unit.test_attachment_fit import photo

    scan = tmp_path / "DX-1.png"
    scan.write_bytes(photo(1800))
    ports.documents = DocumentFetcher(allowed_dirs=[tmp_path])
    ledger = ledger_of(ports, "t1")
    ledger.attachment_limits = AttachmentLimits("Sage-like", 200_000, frozenset({"image/jpeg"}))
    event = await attached(ports, document={"url": scan.as_uri(), "filename": "DX-1.png"})
    work = event.data
    assert isinstance(work, Work) and work.attachment and work.attachment.reencoded_from
    assert await compare(event, ledger) == []  # the re-encoded copy, as recorded
    assert work.attachment.sha256 != work.attachment.reencoded_from.sha256
    assert work.ledger_bill is not None
    ledger.delete_attachment(work.ledger_bill.id)
    other = Document.of("other.jpg", "image/jpeg", b"\xff\xd8\xff another picture")
    await ledger.attach_document(work.ledger_bill, other)
    (diff,) = await compare(event, ledger)
    assert diff.kind == "attachment_changed"
    assert "a re-encoded copy of DX-1.png" in diff.detail and other.sha256[:12] in diff.detail
