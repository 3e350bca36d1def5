"""What a stage's done table keeps per item: a compact record of the outcome, not the event.

The table only has to answer "did this stage already handle this attempt, and what did it
emit?" A success keeps the event's id, type, attempt and time and the part of the work the
stage added (the vendor, the bill, the attachment); validation, which has no side effect,
keeps the day it ran on and is re-derived from its input. A failure keeps its event whole
(it is rare and replay needs all of it). The re-emitted event is the one first sent: same
id, type, attempt, time and data.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict

from domain.events import Envelope, Received, Stage, Work


class DoneRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    v: int = 1
    id: str
    type: str
    source: str
    attempt: int
    time: dt.datetime
    causationid: str | None = None
    today: dt.date
    received_at: dt.datetime | None = None  # what validation stamped, to re-derive the same
    added: dict[str, Any] | None = None  # the Work fields the stage set or changed
    event: Envelope | None = None  # a failure, whole

    @property
    def stage(self) -> Stage:
        return Stage.of_type(self.type)

    def to_bytes(self) -> bytes:
        return self.__pydantic_serializer__.to_json(self, exclude_none=True)


def record(event: Envelope, out: Envelope, today: dt.date) -> DoneRecord:
    """The record of ``out``, the event the stage emitted for ``event``."""
    base = {
        "id": out.id,
        "type": out.type,
        "source": out.source,
        "attempt": out.attempt,
        "time": out.time,
        "causationid": out.causationid,
    }
    if not isinstance(out.data, Work):
        return DoneRecord(**base, today=today, event=out)
    added, received_at = None, None
    if isinstance(event.data, Received):
        received_at = out.data.received_at
    elif isinstance(event.data, Work):
        before, after = event.data, out.data
        changed = {
            name
            for name in Work.model_fields
            if getattr(after, name) is not getattr(before, name)
            and getattr(after, name) != getattr(before, name)
        }
        added = after.model_dump(mode="json", include=changed)
    return DoneRecord(**base, today=today, received_at=received_at, added=added)


def read(raw: bytes) -> DoneRecord | Envelope:
    """A table entry: a record, or a whole event as releases before records kept."""
    if raw.startswith(b'{"specversion"'):
        return Envelope.from_bytes(raw)
    return DoneRecord.model_validate_json(raw)


def rebuilt(event: Envelope, done: DoneRecord, data: Work) -> Envelope:
    """The event first emitted for ``event``, around ``data``."""
    return Envelope.new(
        stage=done.stage,
        subject=event.subject,
        data=data,
        source=done.source,
        attempt=done.attempt,
        causationid=done.causationid,
        time=done.time,
    ).model_copy(update={"id": done.id})


def work_of(event: Envelope, done: DoneRecord) -> Work | None:
    """The work the stage emitted, from its input and what it added; None when it must be
    re-derived from a ``Received`` input (validation)."""
    if isinstance(event.data, Work) and done.added is not None:
        merged = event.data.model_dump(mode="json") | done.added
        return Work.model_validate(merged)
    if isinstance(event.data, Received):
        return None
    raise ValueError(f"a {done.type} record cannot be rebuilt from a {event.type} event")
