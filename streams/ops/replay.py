"""Replay: put parked items back on the topic of the stage that failed, attempt + 1.

An item is parked when its latest failure is newer (by attempt) than anything it reached in
``attached``. Replaying a parked item re-publishes the exact input event the stage failed on,
with a new attempt number; the stage's table then re-runs it instead of re-emitting the
failure, and every earlier effect (vendor, bill) is found again rather than repeated.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from domain.errors import RETRY_OF, Reason, Retry
from domain.events import Envelope, Failure, Stage, event_id
from streams.config import Settings
from streams.kafka.eventlog import RawRecord, read_records
from streams.kafka.publish import Publisher

log = logging.getLogger(__name__)
CHUNK = 500  # replayed events sent per batch of acknowledgements


@dataclass(frozen=True)
class ReplayFilter:
    reasons: frozenset[Reason] | None = None  # None = any reason that is ever retried
    tenant: str | None = None
    item: str | None = None
    since: dt.datetime | None = None

    def matches(self, event: Envelope) -> bool:
        failure = event.data
        assert isinstance(failure, Failure)
        if failure.input is None:
            return False  # an unreadable record: nothing to send back
        if self.reasons is None:
            # "any" means any reason worth retrying: a duplicate is replayed only by name.
            wanted = RETRY_OF[failure.reason] is not Retry.NEVER
        else:
            wanted = failure.reason in self.reasons
        return (
            wanted
            and (self.tenant is None or event.tenant == self.tenant)
            and (self.item is None or event.subject == self.item)
            and (self.since is None or event.time >= self.since)
        )


@dataclass
class ReplayReport:
    matched: int = 0
    sent: int = 0
    dry_run: bool = False
    items: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "matched": self.matched,
            "sent": self.sent,
            "dry_run": self.dry_run,
            "items": self.items,
        }


def parse_since(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """``2026-11-01``, ``2026-11-01T09:00:00Z``, or relative ``90m``, ``2h``, ``7d``."""
    now = now or dt.datetime.now(dt.UTC)
    rel = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", text)
    if rel:
        n, unit = int(rel.group(1)), rel.group(2)
        seconds = n * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
        return now - dt.timedelta(seconds=seconds)
    try:
        parsed = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"--since {text!r}: use an ISO date/time (2026-11-01T09:00Z) or 90m, 2h, 7d"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def replay_event(failed: Envelope) -> tuple[Envelope, Stage]:
    """The input the stage failed on, as attempt + 1, caused by the failure."""
    failure = failed.data
    assert isinstance(failure, Failure)
    original = failure.input
    assert original is not None, "an unreadable record is never replayed"
    attempt = failed.attempt + 1
    event = original.model_copy(
        update={
            "id": event_id(original.subject, original.stage, attempt),
            "attempt": attempt,
            "time": dt.datetime.now(dt.UTC),
            "causationid": failed.id,
            "source": "replay",
        }
    )
    return event, failure.stage


def _head(raw: RawRecord) -> tuple[str, int] | None:
    """Subject and attempt of a record, read without validating the whole event."""
    try:
        body = orjson.loads(raw.value)
        subject, attempt = body["subject"], body["attempt"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        subject = attempt = None
    if not isinstance(subject, str) or not isinstance(attempt, int):
        log.warning("%s/%d@%d is not a readable event", raw.topic, raw.partition, raw.offset)
        return None
    return subject, attempt


async def parked_items(settings: Settings, kafka_url: str, flt: ReplayFilter) -> list[Envelope]:
    """The latest failure of each item not attached since (by attempt), decoding in full
    only the failures that are parked.

    An item's events share a key, hence a partition, so log order is their order: the last
    failure at the highest attempt is the latest.
    """
    done_at: dict[str, int] = {}
    async for raw in read_records(kafka_url, [settings.topic(Stage.ATTACHED)]):
        head = _head(raw)
        if head is not None:
            done_at[head[0]] = max(done_at.get(head[0], 0), head[1])
    latest: dict[str, tuple[int, RawRecord]] = {}
    async for raw in read_records(kafka_url, [settings.topic(Stage.FAILED)]):
        head = _head(raw)
        if head is not None and head[1] >= latest.get(head[0], (0, raw))[0]:
            latest[head[0]] = (head[1], raw)
    parked: list[Envelope] = []
    for subject, (attempt, raw) in sorted(latest.items()):
        if attempt <= done_at.get(subject, 0):
            continue
        try:
            event = Envelope.from_bytes(raw.value)
        except ValueError as exc:
            log.warning("%s/%d@%d: %s", raw.topic, raw.partition, raw.offset, str(exc)[:300])
            continue
        if isinstance(event.data, Failure) and flt.matches(event):
            parked.append(event)
    return parked


async def replay(
    settings: Settings,
    kafka_url: str,
    flt: ReplayFilter,
    *,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayReport:
    matched = await parked_items(settings, kafka_url, flt)
    report = ReplayReport(matched=len(matched), dry_run=dry_run)
    for ev in matched:
        failure = ev.data
        assert isinstance(failure, Failure)
        report.items.append(
            {
                "item": ev.subject,
                "reason": failure.reason.value,
                "stage": failure.stage.value,
                "attempt": str(ev.attempt + 1),
            }
        )
    if dry_run or not matched:
        return report
    async with Publisher(settings, kafka_url) as publisher:
        for start in range(0, len(matched), CHUNK):
            chunk = matched[start : start + CHUNK]
            await publisher.send_many([replay_event(ev) for ev in chunk])
            report.sent = start + len(chunk)
            if progress:
                progress(report.sent, len(matched))
    return report
