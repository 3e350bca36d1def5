"""The invoice as billstream understands it, the coded draft bill, and what a ledger hands back.

Amounts of a credit note are kept positive with ``credit_note=True``: every ledger posts
credits through its own credit-note document rather than negative bills.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from domain.money import Money


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def item_key(tenant: str, dext_item_id: str) -> str:
    """The Kafka key of every event about one Dext item: ``tenant:dext_item_id``."""
    return f"{tenant}:{dext_item_id}"


def split_item_key(key: str) -> tuple[str, str]:
    tenant, _, item_id = key.partition(":")
    return tenant, item_id


class DocumentRef(Model):
    """Where the original PDF or image lives (a file: URL, or https from the source)."""

    url: str
    filename: str
    content_type: str | None = None


class Document(Model):
    filename: str
    content_type: str
    content: bytes
    sha256: str

    @classmethod
    def of(cls, filename: str, content_type: str, content: bytes) -> Document:
        return cls(
            filename=filename,
            content_type=content_type,
            content=content,
            sha256=hashlib.sha256(content).hexdigest(),
        )


class InvoiceLine(Model):
    description: str
    category: str | None = None
    category_code: str | None = None
    quantity: Decimal = Decimal(1)
    unit_price: Money | None = None
    net: Money
    tax: Money
    total: Money
    tax_rate: Decimal | None = None  # percent, e.g. 20
    extra: dict[str, Any] = Field(default_factory=dict)  # unknown Dext line fields, kept


class Invoice(Model):
    """A Dext item after validation and normalisation."""

    dext_id: str
    supplier: str
    supplier_tax_number: str | None = None
    number: str
    date: dt.date
    due_date: dt.date | None = None
    currency: str
    net: Money
    tax: Money
    total: Money
    credit_note: bool = False
    description: str | None = None
    category: str | None = None
    payment_method: str | None = None
    paid: bool | None = None
    lines: list[InvoiceLine]
    document: DocumentRef | None = None
    extra: dict[str, Any] = Field(default_factory=dict)  # unknown Dext fields, kept


class Dimensions(Model):
    department: str | None = None
    location: str | None = None
    project: str | None = None


class BillLine(Model):
    description: str
    gl_account: str
    quantity: Decimal = Decimal(1)
    unit_price: Money
    net: Money
    tax: Money
    total: Money
    tax_code: str | None = None
    tax_rate: Decimal | None = None
    dimensions: Dimensions = Dimensions()


class DraftBill(Model):
    """A coded draft bill, ready for any ledger. ``item_key`` marks it as ours."""

    item_key: str
    vendor_name: str
    vendor_match_key: str
    vendor_tax_number: str | None = None
    number: str
    date: dt.date
    due_date: dt.date
    currency: str
    credit_note: bool = False
    net: Money
    tax: Money
    total: Money
    memo: str | None = None
    lines: list[BillLine]


class Vendor(Model):
    id: str
    name: str
    tax_number: str | None = None


class LedgerBill(Model):
    """A bill (or credit note) as the ledger holds it."""

    id: str
    vendor_id: str
    number: str
    date: dt.date
    currency: str
    total: Money
    credit_note: bool = False
    state: str = "draft"
    item_key: str | None = None  # set when billstream created it


class Reencoded(Model):
    """The original a ledger could not take as it was, and what was done to make it fit:
    the attachment holds the re-encoded copy; audit and reconcile keep both apart."""

    filename: str
    content_type: str
    sha256: str
    size: int
    how: str  # e.g. "downscaled to 1600 px, JPEG quality 75"


class Attachment(Model):
    id: str
    bill_id: str
    filename: str
    sha256: str
    size: int
    reencoded_from: Reencoded | None = None


@dataclass(frozen=True)
class AttachmentLimits:
    """What a ledger takes as an attachment: at most ``max_bytes`` per file, of these MIME
    types (empty: any). ``source`` says where the ledger documents it."""

    ledger: str
    max_bytes: int
    types: frozenset[str] = frozenset()
    source: str = ""

    def takes(self, content_type: str) -> bool:
        return not self.types or content_type.split(";")[0].strip().lower() in self.types
