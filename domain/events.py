"""The event envelope (CloudEvents 1.0 attribute names) and the stage payloads."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from domain.dext import find_floats
from domain.errors import RETRY_OF, Problem, Reason, Retry, StageError
from domain.models import (
    Attachment,
    DocumentRef,
    DraftBill,
    Invoice,
    LedgerBill,
    Vendor,
    split_item_key,
)

# Fixed namespace so that ids are the same on every machine and every run.
EVENT_NAMESPACE = uuid.UUID("8f7b1a52-4c1e-5b7e-9d0a-0b1e5a7c2f10")


class Stage(StrEnum):
    """The topics, in pipeline order. The value is the topic's suffix and the event type."""

    RECEIVED = "received"
    VALIDATED = "validated"
    VENDOR_RESOLVED = "vendor-resolved"
    BILL_CREATED = "bill-created"
    ATTACHED = "attached"
    FAILED = "failed"

    @property
    def event_type(self) -> str:
        return f"billstream.{self.value}"

    @classmethod
    def of_type(cls, event_type: str) -> Stage:
        return cls(event_type.removeprefix("billstream."))


PIPELINE: tuple[Stage, ...] = (
    Stage.RECEIVED,
    Stage.VALIDATED,
    Stage.VENDOR_RESOLVED,
    Stage.BILL_CREATED,
    Stage.ATTACHED,
)


# Each stage function by name: the topic it reads and the topic it writes.
STAGES: dict[str, tuple[Stage, Stage]] = {
    "validate": (Stage.RECEIVED, Stage.VALIDATED),
    "resolve_vendor": (Stage.VALIDATED, Stage.VENDOR_RESOLVED),
    "create_bill": (Stage.VENDOR_RESOLVED, Stage.BILL_CREATED),
    "attach": (Stage.BILL_CREATED, Stage.ATTACHED),
}


def event_id(subject: str, stage: Stage, attempt: int) -> str:
    """UUIDv5 of (item key, stage, attempt): sending the same thing again gives the same id."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{subject}|{stage.value}|{attempt}"))


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Received(_Payload):
    """A Dext item as it came in, untouched: validation reads it, the audit keeps it."""

    kind: Literal["received"] = "received"
    item: dict[str, Any]
    document: DocumentRef | None = None
    origin: str | None = None  # file name and row, push request id, API cursor...

    @field_validator("item")
    @classmethod
    def _no_floats(cls, item: dict[str, Any]) -> dict[str, Any]:
        floats = find_floats(item)
        if floats:
            raise ValueError(f"float values in item (read it with domain.dext): {floats}")
        return item


class Review(_Payload):
    """A person's decision on an item held as a possible duplicate."""

    decision: Literal["release", "reject"]
    by: str
    at: datetime
    note: str = ""
    matches: list[str] = Field(default_factory=list)  # the earlier items it was held for


class Work(_Payload):
    """An item on its way: each stage fills in one more part."""

    kind: Literal["work"] = "work"
    invoice: Invoice
    bill: DraftBill
    received_at: datetime
    vendor: Vendor | None = None
    ledger_bill: LedgerBill | None = None
    attachment: Attachment | None = None
    notes: list[str] = Field(default_factory=list)  # e.g. "adopted existing bill", "redated"
    review: Review | None = None  # released by a person: the duplicate check is not asked


class RecordRef(_Payload):
    """Where a record that no stage could read or carry sits in the log, and enough of it
    (hash, size, the start as text) to recognise it: a failure never copies it whole."""

    topic: str
    partition: int
    offset: int
    size: int
    sha256: str
    excerpt: str
    error: str


class Failure(_Payload):
    """Why an item stopped, and the event it stopped on, so replay can put it back.

    ``input`` is the event itself; a record that could not be read, or whose result was too
    large to put on the log, is carried as a ``record`` reference instead and is never replayed.
    """

    kind: Literal["failure"] = "failure"
    stage: Stage  # the topic the input came from: replay sends the input back there
    reason: Reason
    message: str
    retry: Retry
    problems: list[Problem] = Field(default_factory=list)
    detail: dict[str, Any] = Field(default_factory=dict)
    input: Envelope | None = None
    record: RecordRef | None = None

    @model_validator(mode="after")
    def _says_what_failed(self) -> Failure:
        if self.input is None and self.record is None:
            raise ValueError("a failure carries its input event or a reference to the record")
        return self

    @property
    def retryable(self) -> bool:
        return self.retry is not Retry.NEVER and self.input is not None

    @classmethod
    def of(cls, error: StageError, input_event: Envelope) -> Failure:
        return cls(
            stage=Stage.of_type(input_event.type),
            reason=error.reason,
            message=error.message,
            retry=RETRY_OF[error.reason],
            problems=error.problems,
            detail=error.detail,
            input=input_event,
        )


Payload = Annotated[Received | Work | Failure, Field(discriminator="kind")]

_SCHEMAS = {
    "received": "urn:billstream:received:1",
    "work": "urn:billstream:work:1",
    "failure": "urn:billstream:failure:1",
}


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    specversion: Literal["1.0"] = "1.0"
    id: str
    type: str
    source: str
    subject: str  # the item key, tenant:dext_item_id
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str
    tenant: str
    attempt: int = Field(ge=1)
    causationid: str | None = None
    data: Payload

    @property
    def stage(self) -> Stage:
        return Stage.of_type(self.type)

    def to_bytes(self) -> bytes:
        return self.__pydantic_serializer__.to_json(self)

    @classmethod
    def from_bytes(cls, raw: bytes | str) -> Envelope:
        return cls.model_validate_json(raw)

    @classmethod
    def new(
        cls,
        *,
        stage: Stage,
        subject: str,
        data: Received | Work | Failure,
        source: str,
        attempt: int = 1,
        causationid: str | None = None,
        time: datetime | None = None,
    ) -> Envelope:
        tenant, _ = split_item_key(subject)
        return cls(
            id=event_id(subject, stage, attempt),
            type=stage.event_type,
            source=source,
            subject=subject,
            time=time or datetime.now(UTC),
            dataschema=_SCHEMAS[data.kind],
            tenant=tenant,
            attempt=attempt,
            causationid=causationid,
            data=data,
        )

    def follow(self, stage: Stage, data: Work | Failure) -> Envelope:
        """The event this one causes: same subject and attempt, caused by this event."""
        return Envelope.new(
            stage=stage,
            subject=self.subject,
            data=data,
            source=self.source,
            attempt=self.attempt,
            causationid=self.id,
        )


Failure.model_rebuild()
