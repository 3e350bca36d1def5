"""The stage functions: plain async functions over ports, no Faust, no Kafka.

Each takes the input payload and a ``StageContext`` and returns the next payload, or raises
``StageError`` with a failure reason (``domain.errors.Reason``). Idempotency, retries and
topics are the caller's business (``streams.pipeline.idempotency``), so tests call these
directly with fakes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from adapters.attachment_fit import fit_document
from domain.duplicates import Candidate, Decision, Rule
from domain.errors import Reason, StageError
from domain.events import Received, Work
from domain.models import Document, DraftBill, split_item_key
from domain.ports import DocumentSource, DuplicateCheck, Ledger
from domain.tenants import Tenant
from domain.validation import validate_item


@dataclass
class StageContext:
    tenant: Tenant
    ledger: Ledger
    documents: DocumentSource
    received_at: dt.datetime
    subject: str
    today: dt.date = field(default_factory=dt.date.today)
    duplicates: DuplicateCheck | None = None


async def validate(data: Received, ctx: StageContext) -> Work:
    """Dext item -> clean invoice + coded draft bill, or every problem at once."""
    _, dext_id = split_item_key(ctx.subject)
    result = validate_item(data.item, ctx.tenant, today=ctx.today)
    if not result.ok or result.invoice is None or result.bill is None:
        reason = result.reason or Reason.VALIDATION
        summary = "; ".join(p.message for p in result.problems[:3])
        more = len(result.problems) - 3
        if more > 0:
            summary += f" (and {more} more)"
        raise StageError(reason, summary or "the item is not valid", problems=result.problems)
    if str(result.invoice.dext_id) != dext_id:
        raise StageError(
            Reason.VALIDATION,
            f"The item id {result.invoice.dext_id!r} does not match its key {ctx.subject!r}.",
        )
    invoice = result.invoice
    if data.document is not None:
        # The source resolved where the document really is (a local path, a signed URL);
        # that wins over whatever the item's own fields say.
        invoice = invoice.model_copy(update={"document": data.document})
    return Work(invoice=invoice, bill=result.bill, received_at=ctx.received_at)


async def resolve_vendor(work: Work, ctx: StageContext) -> Work:
    """Find the supplier in the ledger by normalised name or tax number; create it if allowed."""
    bill = work.bill
    vendor = await ctx.ledger.find_vendor(bill.vendor_name, tax_number=bill.vendor_tax_number)
    notes = list(work.notes)
    if vendor is None:
        if not ctx.tenant.auto_create_vendors:
            raise StageError(
                Reason.VENDOR_NOT_FOUND,
                f"Supplier {bill.vendor_name!r} is not in {ctx.tenant.ledger.company} and "
                f"auto-create is off for tenant {ctx.tenant.id}.",
            )
        vendor = await ctx.ledger.create_vendor(bill.vendor_name, tax_number=bill.vendor_tax_number)
        notes.append(f"vendor {vendor.id} created")
    return work.model_copy(update={"vendor": vendor, "notes": notes})


_BillKey = tuple[str, str, str, bool]
_posting: dict[_BillKey, tuple[asyncio.Lock, int]] = {}


@asynccontextmanager
async def _one_at_a_time(key: _BillKey) -> AsyncIterator[None]:
    # Two items with the same supplier and number (a deliberate twin, a resend under a new
    # id) sit on different partitions; without this both lookups miss and both post. The
    # lock holds within a worker; across workers the ledger adapter's own guard must.
    lock, users = _posting.get(key, (asyncio.Lock(), 0))
    _posting[key] = (lock, users + 1)
    try:
        async with lock:
            yield
    finally:
        lock, users = _posting[key]
        if users == 1:
            del _posting[key]
        else:
            _posting[key] = (lock, users - 1)


async def create_bill(work: Work, ctx: StageContext) -> Work:
    """Post the draft bill once: adopt our own, refuse another channel's, honour periods;
    an invoice that looks like one seen before is held for a person first."""
    assert work.vendor is not None, "create_bill needs a resolved vendor"
    await _check_duplicates(work, ctx)
    key = (ctx.tenant.id, work.vendor.id, work.bill.number, work.bill.credit_note)
    async with _one_at_a_time(key):
        return await _create_bill(work, ctx)


async def _check_duplicates(work: Work, ctx: StageContext) -> None:
    """Hold a near match (``possible_duplicate``, naming what it matched); an exact one
    (the number as written, same supplier) goes on to the ledger's own check, which adopts
    this item's own bill or refuses another's."""
    if ctx.duplicates is None or (work.review is not None and work.review.decision == "release"):
        return
    candidate = Candidate.of_invoice(
        work.invoice,
        ctx.tenant.id,
        key=ctx.subject,
        document_sha256=await _document_sha256(work, ctx),
    )
    verdict = await ctx.duplicates.check(candidate)
    if verdict.decision is not Decision.HOLD or verdict.rule is None:
        return
    what = _RULE_WORDS[verdict.rule]
    raise StageError(
        Reason.POSSIBLE_DUPLICATE,
        f"{'Credit note' if work.bill.credit_note else 'Invoice'} {work.bill.number} from "
        f"{work.bill.vendor_name} looks like {', '.join(verdict.matches)} ({what}); held for "
        "a person to release or reject.",
        detail=verdict.to_json(),
    )


_RULE_WORDS = {
    Rule.SAME_NUMBER: "the same number from the same supplier",
    Rule.NUMBER_VARIANT: "the same number written differently, same supplier",
    Rule.SAME_DOCUMENT: "the same document file",
    Rule.SAME_TOTAL_NEAR_DATE: "the same supplier and total within days, another number",
}


async def _document_sha256(work: Work, ctx: StageContext) -> str | None:
    """The document's SHA-256 for the same-file rule, fetched now (and kept for the attach
    stage) when no source said it; None when it cannot be had now."""
    ref = work.invoice.document
    if ref is None or not ctx.tenant.duplicate_rules.holds(Rule.SAME_DOCUMENT):
        return None
    try:
        document = await ctx.documents.fetch(ref, ctx.tenant)
    except StageError:
        return None  # the attach stage reports it, with its reason
    _remember(ref.url, document)
    return document.sha256


# Documents fetched for the check, kept for the attach stage a moment later (bounded).
_FETCHED: dict[str, Document] = {}
_FETCHED_MAX_BYTES = 64 * 1024 * 1024


def _remember(url: str, document: Document) -> None:
    _FETCHED[url] = document
    while sum(len(d.content) for d in _FETCHED.values()) > _FETCHED_MAX_BYTES and _FETCHED:
        del _FETCHED[next(iter(_FETCHED))]


async def _create_bill(work: Work, ctx: StageContext) -> Work:
    assert work.vendor is not None
    bill, notes = work.bill, list(work.notes)
    # The lookup comes first on every try, so a retry after an uncertain write, or a crash
    # between Sage's answer and our table, adopts the bill instead of posting it again.
    existing = await ctx.ledger.find_bill(work.vendor.id, bill.number, credit_note=bill.credit_note)
    if existing is not None:
        if existing.item_key != bill.item_key:
            raise StageError(
                Reason.DUPLICATE,
                f"{'Credit note' if bill.credit_note else 'Bill'} {bill.number} from "
                f"{bill.vendor_name} already exists in {ctx.tenant.ledger.company} as "
                f"{existing.id}, not posted by this item; it was not posted again.",
                detail={"bill_id": existing.id, "existing_item_key": existing.item_key},
            )
        notes.append(f"adopted bill {existing.id} created earlier for this item")
        return work.model_copy(update={"ledger_bill": existing, "notes": notes})
    try:
        created = await ctx.ledger.create_draft_bill(work.vendor, bill)
    except StageError as err:
        if err.reason is not Reason.PERIOD_CLOSED or ctx.tenant.closed_period != "redate":
            raise
        redated = await _redated(bill, ctx)
        if redated is None:
            raise
        created = await ctx.ledger.create_draft_bill(work.vendor, redated)
        notes.append(
            f"period of {bill.date.isoformat()} is closed: posted on {redated.date.isoformat()}"
        )
        bill = redated
    return work.model_copy(update={"ledger_bill": created, "bill": bill, "notes": notes})


async def _redated(bill: DraftBill, ctx: StageContext) -> DraftBill | None:
    day = await ctx.ledger.next_open_day(bill.date)
    if day is None or day == bill.date:
        return None
    return bill.model_copy(update={"date": day, "due_date": max(bill.due_date, day)})


async def attach(work: Work, ctx: StageContext) -> Work:
    """Attach the original document, exactly one per bill, found before uploading again."""
    assert work.ledger_bill is not None, "attach needs a bill"
    existing = await ctx.ledger.find_attachment(work.ledger_bill)
    if existing is not None:
        return work.model_copy(update={"attachment": existing})
    ref = work.invoice.document
    if ref is None:
        raise StageError(
            Reason.DOCUMENT_UNAVAILABLE,
            f"Item {work.invoice.dext_id} has no original document to attach.",
        )
    document = _FETCHED.pop(ref.url, None) or await ctx.documents.fetch(ref, ctx.tenant)
    # Over the ledger's limit or of a type it refuses: re-encoded to fit, or parked with the
    # sizes (attachment_too_large / attachment_type); never a bill whose document vanished.
    fitted = await asyncio.to_thread(fit_document, document, ctx.ledger.attachment_limits)
    attachment = await ctx.ledger.attach_document(work.ledger_bill, fitted.document)
    notes = list(work.notes)
    if fitted.reencoded_from is not None:
        attachment = attachment.model_copy(update={"reencoded_from": fitted.reencoded_from})
        original = fitted.reencoded_from
        notes.append(
            f"document {original.filename} ({original.size:,} bytes) re-encoded to fit "
            f"{ctx.ledger.attachment_limits.ledger}: {original.how}, "
            f"{len(fitted.document.content):,} bytes"
        )
    return work.model_copy(update={"attachment": attachment, "notes": notes})
