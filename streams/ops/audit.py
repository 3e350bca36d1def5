"""Audit: "what happened to invoice X" — one item's timeline across every topic, in order."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

from domain.events import Envelope, Failure, Stage, Work
from streams.config import Settings
from streams.kafka.eventlog import RawRecord, read_records


@dataclass(frozen=True)
class Step:
    time: str
    type: str
    attempt: int
    outcome: str  # ok, or the failure reason
    detail: str
    id: str
    causationid: str | None
    source: str
    topic: str
    offset: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def describe(event: Envelope) -> tuple[str, str]:
    """(outcome, detail) of one event, in words a person reads."""
    data = event.data
    if isinstance(data, Failure):
        return data.reason.value, f"{data.stage.value} failed: {data.message}"
    if isinstance(data, Work):
        bits = [
            f"{data.bill.vendor_name} {data.bill.number} {data.bill.currency} "
            f"{data.bill.total}{' (credit)' if data.bill.credit_note else ''}"
        ]
        vendor_notes = [n for n in data.notes if n.startswith("vendor ")]
        if event.stage is Stage.VENDOR_RESOLVED and data.vendor:
            bits += vendor_notes or [f"vendor {data.vendor.id} found"]
        if event.stage is Stage.BILL_CREATED and data.ledger_bill:
            bits.append(f"draft bill {data.ledger_bill.id}")
            bits += [n for n in data.notes if n not in vendor_notes]
        if event.stage is Stage.ATTACHED and data.attachment:
            bits.append(f"attachment {data.attachment.id} sha256 {data.attachment.sha256[:12]}")
            original = data.attachment.reencoded_from
            if original is not None:
                bits.append(f"re-encoded from {original.filename} sha256 {original.sha256[:12]}")
        review = data.review
        if review is not None and event.source == "review":
            bits.append(
                f"released by {review.by} at {review.at.isoformat(timespec='seconds')}"
                + (f": {review.note}" if review.note else "")
                + f" (held as like {', '.join(review.matches) or '?'})"
            )
        return "ok", "; ".join(bits)
    item = data.item
    return "ok", (
        f"{item.get('payee') or '?'} {item.get('invoice_number') or '?'} "
        f"{item.get('currency') or ''} {item.get('total_amount') or ''}"
    ).strip()


async def timeline(settings: Settings, kafka_url: str, key: str) -> list[Step]:
    topics = [settings.topic(stage) for stage in Stage]
    steps: list[Step] = []
    async for raw in read_records(kafka_url, topics, key=key):
        try:
            ev = Envelope.from_bytes(raw.value)
        except ValueError as exc:
            steps.append(_unreadable_step(raw, exc))
            continue
        outcome, detail = describe(ev)
        steps.append(
            Step(
                ev.time.isoformat(),
                ev.type,
                ev.attempt,
                outcome,
                detail,
                ev.id,
                ev.causationid,
                ev.source,
                raw.topic,
                raw.offset,
            )
        )
    order = {stage.event_type: i for i, stage in enumerate(Stage)}
    # Attempts first (a replay comes after what it replays), then time, then pipeline order.
    steps.sort(key=lambda s: (s.attempt, s.time, order.get(s.type, 99)))
    return steps


def _unreadable_step(raw: RawRecord, exc: Exception) -> Step:
    """A record under this key that is not an event: shown where it sits, not skipped."""
    error = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return Step(
        "",
        "unreadable record",
        0,
        "unreadable",
        f"{len(raw.value)} bytes, sha256 {hashlib.sha256(raw.value).hexdigest()[:12]}: {error}",
        "",
        None,
        "",
        raw.topic,
        raw.offset,
    )
