"""Reconcile: does Sage still hold what the event log says billstream attached?

For every item whose latest event is in ``attached`` (optionally one tenant's, or since a
time), the bill is read back from the ledger: it must exist with the same vendor, number and
total, and its attachment must be there with the SHA-256 of the document we sent. Each
difference is reported; nothing is changed.

``repair_attachments`` re-attaches the documents that went missing, through the attach
stage itself (``streams.pipeline.stages.attach`` under ``run_stage``: the same lookup-before-upload,
document fetching and retries as the worker), and then appends the new ``attached`` event
(attempt + 1, source ``reconcile``) so the log stays the truth and the next reconcile
compares against the new attachment. Re-publishing to ``bill-created`` would not do: the
attach stage's table rightly treats an item it attached as done and would re-emit the old
result. A deleted or changed bill is only reported: whether to post it again is for a
person to decide.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Literal

from domain.errors import LedgerError
from domain.events import Envelope, Stage, Work
from domain.ports import Ledger
from streams.config import Settings
from streams.kafka.eventlog import read_topics
from streams.pipeline import stages
from streams.pipeline.idempotency import StageSpec, run_stage
from streams.pipeline.wiring import Ports

Kind = Literal[
    "bill_missing", "bill_changed", "attachment_missing", "attachment_changed", "unreadable"
]
CONCURRENCY = 4  # ledger reads at once: Sage's rate limits are per company


@dataclass
class Difference:
    item: str
    tenant: str
    kind: Kind
    bill_id: str
    detail: str
    repaired: bool = False
    repair: str = ""  # what the repair did, or why it could not

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class ReconcileReport:
    checked: int = 0
    differences: list[Difference] = field(default_factory=list)
    repaired: int = 0
    # Attachments that hold, as recorded, a re-encoded copy of the original: not differences.
    reencoded: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "checked": self.checked,
            "differences": [d.as_dict() for d in self.differences],
            "repaired": self.repaired,
            "reencoded": self.reencoded,
        }


async def attached_items(
    settings: Settings,
    kafka_url: str,
    *,
    tenant: str | None = None,
    since: dt.datetime | None = None,
) -> dict[str, Envelope]:
    """The latest attached event of each item (by attempt, then time)."""
    latest: dict[str, Envelope] = {}
    async for logged in read_topics(kafka_url, [settings.topic(Stage.ATTACHED)]):
        ev = logged.event
        if tenant is not None and ev.tenant != tenant:
            continue
        if since is not None and ev.time < since:
            continue
        seen = latest.get(ev.subject)
        if seen is None or (ev.attempt, ev.time) >= (seen.attempt, seen.time):
            latest[ev.subject] = ev
    return latest


def _describe(work: Work) -> str:
    bill = work.bill
    return f"{bill.vendor_name} {bill.number} {bill.currency} {bill.total}"


async def compare(event: Envelope, ledger: Ledger) -> list[Difference]:
    """What differs between one attached event and the ledger now."""
    work = event.data
    assert isinstance(work, Work) and work.ledger_bill is not None
    sent = work.ledger_bill

    def diff(kind: Kind, detail: str) -> Difference:
        return Difference(event.subject, event.tenant, kind, sent.id, detail)

    try:
        now = await ledger.get_bill(sent.id)
        if now is None:
            return [diff("bill_missing", f"bill {sent.id} ({_describe(work)}) is not in Sage")]
        changes = []
        if now.vendor_id != sent.vendor_id:
            changes.append(f"vendor {sent.vendor_id} -> {now.vendor_id}")
        if now.number != sent.number:
            changes.append(f"number {sent.number!r} -> {now.number!r}")
        if now.total != sent.total:
            changes.append(f"total {sent.total} -> {now.total}")
        if now.credit_note != sent.credit_note:
            changes.append("bill/credit note swapped")
        out = []
        if changes:
            out.append(
                diff("bill_changed", f"bill {sent.id} ({_describe(work)}): {'; '.join(changes)}")
            )
        found = await ledger.find_attachment(now)
        ours = work.attachment
        if found is None:
            what = f"attachment {ours.id}, sha256 {ours.sha256[:12]}" if ours else "a document"
            out.append(
                diff("attachment_missing", f"bill {sent.id} has no attachment (we sent {what})")
            )
        elif ours is not None and found.sha256 != ours.sha256:
            original = ours.reencoded_from
            copy = (
                f" (a re-encoded copy of {original.filename}, sha256 {original.sha256[:12]})"
                if original is not None
                else ""
            )
            out.append(
                diff(
                    "attachment_changed",
                    f"bill {sent.id}: attachment {found.id} has sha256 {found.sha256[:12]}, "
                    f"we sent {ours.sha256[:12]}{copy}",
                )
            )
        return out
    except LedgerError as err:
        return [diff("unreadable", f"could not read bill {sent.id}: {err.message}")]


def _reencoded(event: Envelope) -> bool:
    work = event.data
    return isinstance(work, Work) and bool(work.attachment and work.attachment.reencoded_from)


async def repair_attachment(event: Envelope, ports: Ports) -> Envelope:
    """Attach the document again through the attach stage; the event it produced."""
    work = event.data
    assert isinstance(work, Work) and work.ledger_bill is not None
    ledger = ports.ledger(event.tenant)
    current = await ledger.get_bill(work.ledger_bill.id) or work.ledger_bill
    stage_input = Envelope.new(
        stage=Stage.BILL_CREATED,
        subject=event.subject,
        data=work.model_copy(update={"attachment": None, "ledger_bill": current}),
        source="reconcile",
        attempt=event.attempt + 1,
        causationid=event.id,
    )
    spec = StageSpec("attach", Stage.BILL_CREATED, Stage.ATTACHED, stages.attach)
    out = await run_stage(stage_input, spec, ports)
    # Caused by the attached event whose attachment went missing: the synthetic input is
    # not in the log, the finding is.
    return out.model_copy(update={"causationid": event.id})


async def reconcile(
    settings: Settings,
    kafka_url: str,
    *,
    tenant: str | None = None,
    since: dt.datetime | None = None,
    repair_attachments: bool = False,
    ports: Ports | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ReconcileReport:
    from domain.events import Failure
    from streams.kafka.publish import Publisher

    items = await attached_items(settings, kafka_url, tenant=tenant, since=since)
    own_ports = ports is None
    ports = ports or Ports.from_settings(settings)
    report = ReconcileReport(checked=len(items))
    limit = asyncio.Semaphore(CONCURRENCY)
    done = 0

    async def one(event: Envelope) -> list[Difference]:
        nonlocal done
        async with limit:
            try:
                ledger = ports.ledger(event.tenant)
            except (KeyError, LedgerError) as exc:
                work = event.data
                bill = work.ledger_bill.id if isinstance(work, Work) and work.ledger_bill else ""
                reason = exc.message if isinstance(exc, LedgerError) else str(exc.args[0])
                return [Difference(event.subject, event.tenant, "unreadable", bill, reason)]
            found = await compare(event, ledger)
        done += 1
        if progress:
            progress(done, len(items))
        return found

    try:
        ordered = [items[k] for k in sorted(items)]
        for event, found in zip(
            ordered, await asyncio.gather(*(one(ev) for ev in ordered)), strict=True
        ):
            report.differences.extend(found)
            if not found and _reencoded(event):
                report.reencoded += 1
        missing = [d for d in report.differences if d.kind == "attachment_missing"]
        if repair_attachments and missing:
            async with Publisher(settings, kafka_url) as publisher:
                for d in missing:
                    out = await repair_attachment(items[d.item], ports)
                    if out.stage is Stage.ATTACHED and isinstance(out.data, Work):
                        await publisher.send(out)
                        att = out.data.attachment
                        d.repaired = True
                        d.repair = f"attached again as {att.id if att else '?'}"
                        report.repaired += 1
                    else:
                        failure = out.data
                        why = failure.message if isinstance(failure, Failure) else out.type
                        d.repair = f"not repaired: {why}"
    finally:
        if own_ports:
            await ports.aclose()
    return report
