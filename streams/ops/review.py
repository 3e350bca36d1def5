"""Review of held duplicates: list them beside what they match, release or reject each.

An item held as ``possible_duplicate`` waits for a person; ``replay`` never sends it back.
Releasing puts its input back on the stage that held it (attempt + 1, source ``review``),
carrying who released it, so the check is not asked again and the bill is posted once.
Rejecting ends it as ``duplicate``, a failure that cites the hold. Both are events in the
log: ``billstream audit`` shows who decided, when, and why.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from domain.errors import Reason, Retry
from domain.events import Envelope, Failure, Review, Stage, Work, event_id
from streams.config import Settings
from streams.kafka.publish import Publisher
from streams.ops.replay import ReplayFilter, parked_items, replay_event

HOLD = frozenset({Reason.POSSIBLE_DUPLICATE})


class ReviewError(ValueError):
    """The item cannot be decided: not held, or held for another reason."""


@dataclass(frozen=True)
class Held:
    event: Envelope  # the failure that holds it

    @property
    def failure(self) -> Failure:
        assert isinstance(self.event.data, Failure)
        return self.event.data

    @property
    def work(self) -> Work | None:
        data = self.failure.input.data if self.failure.input else None
        return data if isinstance(data, Work) else None

    def as_dict(self) -> dict[str, Any]:
        work, detail = self.work, self.failure.detail
        bill = work.bill if work else None
        return {
            "item": self.event.subject,
            "tenant": self.event.tenant,
            "held_at": self.event.time.isoformat(),
            "attempt": self.event.attempt,
            "rule": detail.get("rule"),
            "matches": list(detail.get("matches", [])),
            "rules": detail.get("rules", {}),
            "supplier": bill.vendor_name if bill else None,
            "number": bill.number if bill else None,
            "date": bill.date.isoformat() if bill else None,
            "currency": bill.currency if bill else None,
            "total": str(bill.total) if bill else None,
            "credit_note": bill.credit_note if bill else None,
            "message": self.failure.message,
        }


async def held_items(
    settings: Settings, kafka_url: str, *, tenant: str | None = None, item: str | None = None
) -> list[Held]:
    flt = ReplayFilter(reasons=HOLD, tenant=tenant, item=item)
    return [Held(ev) for ev in await parked_items(settings, kafka_url, flt)]


def decision_event(
    held: Held, decision: Literal["release", "reject"], by: str, note: str = ""
) -> tuple[Envelope, Stage]:
    """The event that carries a person's decision, and the topic it goes to."""
    by = by.strip()
    if not by:
        raise ReviewError("say who decides (--by): the log keeps it for the auditor")
    failure, failed = held.failure, held.event
    original = failure.input
    if original is None or held.work is None:
        raise ReviewError(f"{failed.subject}: the held event cannot be sent on")
    now = dt.datetime.now(dt.UTC)
    review = Review(decision=decision, by=by, at=now, note=note, matches=held.as_dict()["matches"])
    attempt = failed.attempt + 1
    if decision == "release":
        # A replay of the held input (attempt + 1, caused by the hold) carrying the decision.
        replayed, stage = replay_event(failed)
        work = held.work.model_copy(update={"review": review})
        event = replayed.model_copy(update={"source": "review", "data": work, "time": now})
        return event, stage
    matches = ", ".join(review.matches) or "an earlier invoice"
    rejected = Failure(
        stage=failure.stage,
        reason=Reason.DUPLICATE,
        message=f"Rejected by {by} as a duplicate of {matches}" + (f": {note}" if note else "."),
        retry=Retry.NEVER,
        detail={"review": review.model_dump(mode="json"), "held": failure.detail},
        input=original.model_copy(update={"data": held.work.model_copy(update={"review": review})}),
    )
    event = failed.model_copy(
        update={
            "id": event_id(failed.subject, Stage.FAILED, attempt),
            "attempt": attempt,
            "time": now,
            "causationid": failed.id,
            "source": "review",
            "data": rejected,
        }
    )
    return event, Stage.FAILED


async def decide(
    settings: Settings,
    kafka_url: str,
    item: str,
    decision: Literal["release", "reject"],
    *,
    by: str,
    note: str = "",
) -> dict[str, Any]:
    """Release or reject the held item ``item``; what was sent, for the CLI and the page."""
    found = await held_items(settings, kafka_url, item=item)
    if not found:
        raise ReviewError(f"{item} is not held as a possible duplicate (see `duplicates held`)")
    event, topic = decision_event(found[0], decision, by, note)
    async with Publisher(settings, kafka_url) as publisher:
        await publisher.send_many([(event, topic)])
    return {
        "item": item,
        "decision": decision,
        "by": by.strip(),
        "attempt": event.attempt,
        "topic": settings.topic(topic),
        "event": event.id,
    }
