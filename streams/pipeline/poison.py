"""Records no stage can read or carry, turned into failures so the partition moves on.

A record that does not decode (corrupt, too deeply nested, of an unknown type) or whose
result is too large for the log would otherwise crash its agent, and every restarted worker
would crash on it again. Instead it becomes an ``unreadable`` failure that points at the
record (topic, partition, offset, hash, size, the start as text): never a copy that could
outgrow the limit it broke. Such failures are never replayed.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from domain.errors import RETRY_OF, Reason
from domain.events import EVENT_NAMESPACE, Envelope, Failure, RecordRef, Stage
from domain.limits import MAX_EVENT_BYTES, excerpt
from streams import metrics

log = logging.getLogger("billstream.poison")

SOURCE = "billstream/worker"
MAX_KEY_CHARS = 300


@dataclass(frozen=True)
class Delivered:
    """One record as a stream got it: where it sits, and its raw key and value."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    @classmethod
    def of(cls, event: Any) -> Delivered:
        """From a Faust ``EventT`` (values and keys are raw bytes in this app)."""
        message = event.message
        return cls(message.topic, message.partition, message.offset, message.key, message.value)

    def ref(self, error: str) -> RecordRef:
        raw = self.value or b""
        return RecordRef(
            topic=self.topic,
            partition=self.partition,
            offset=self.offset,
            size=len(raw),
            sha256=hashlib.sha256(raw).hexdigest(),
            excerpt=excerpt(raw),
            error=error[:1000],
        )

    @property
    def subject(self) -> str:
        """The record's item key when its key is one, else a name for the record itself."""
        try:
            key = (self.key or b"").decode("utf-8")
        except UnicodeDecodeError:
            key = ""
        tenant, sep, item = key.partition(":")
        usable = sep and tenant and item and len(key) <= MAX_KEY_CHARS and key.isprintable()
        return key if usable else f"unreadable:{self.topic}/{self.partition}/{self.offset}"


def decode(delivered: Delivered, stage: Stage) -> Envelope:
    """The record's envelope, or an ``unreadable`` failure event in its place."""
    try:
        event = Envelope.from_bytes(delivered.value or b"")
        Stage.of_type(event.type)
    except Exception as exc:  # any way a record can be unreadable: never a crash
        return unreadable(delivered, stage, f"cannot read the record: {_short(exc)}")
    return event


def readable(delivered: Delivered) -> Envelope | None:
    """The record's envelope, or None (logged and counted) for the topics that end the line:
    an unreadable failure or attached event has nowhere further to be parked."""
    try:
        return Envelope.from_bytes(delivered.value or b"")
    except Exception as exc:  # never a crash on what the log holds
        log.error(
            "%s/%d@%d: cannot read the record (%s); skipped",
            delivered.topic,
            delivered.partition,
            delivered.offset,
            _short(exc),
        )
        metrics.UNREADABLE.labels(delivered.topic).inc()
        return None


def unreadable(delivered: Delivered, stage: Stage, error: str) -> Envelope:
    """The failure event for a record that ``stage`` could not read or carry."""
    ref = delivered.ref(error)
    subject = delivered.subject
    tenant = subject.partition(":")[0]
    log.error(
        "%s/%d@%d (%d bytes, key %r): %s; parked as unreadable",
        delivered.topic,
        delivered.partition,
        delivered.offset,
        ref.size,
        subject,
        error,
    )
    metrics.UNREADABLE.labels(delivered.topic).inc()
    failure = Failure(
        stage=stage,
        reason=Reason.UNREADABLE,
        message=f"Record {delivered.topic}/{delivered.partition}@{delivered.offset} "
        f"({ref.size} bytes) was not processed: {error}",
        retry=RETRY_OF[Reason.UNREADABLE],
        record=ref,
    )
    name = f"{delivered.topic}|{delivered.partition}|{delivered.offset}|unreadable"
    return Envelope(
        id=str(uuid.uuid5(EVENT_NAMESPACE, name)),
        type=Stage.FAILED.event_type,
        source=SOURCE,
        subject=subject,
        time=datetime.now(UTC),
        dataschema="urn:billstream:failure:1",
        tenant=tenant,
        attempt=1,
        data=failure,
    )


def bounded(
    out: Envelope, raw: bytes, delivered: Delivered, stage: Stage
) -> tuple[Envelope, bytes]:
    """``out`` and its bytes when they fit on the log, else an ``unreadable`` failure."""
    if len(raw) <= MAX_EVENT_BYTES:
        return out, raw
    failure = unreadable(
        delivered,
        stage,
        f"its {out.type} event would be {len(raw)} bytes, over the {MAX_EVENT_BYTES} bytes "
        "an event may take",
    )
    failure = failure.model_copy(update={"attempt": out.attempt})
    return failure, failure.to_bytes()


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 500 else text[:500] + "…"
