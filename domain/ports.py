"""The ports a stage talks through. Three ledgers implement ``Ledger``: local, Intacct, Sage
Accounting; one contract suite (tests/contract) proves they behave alike.

Every method raises ``domain.errors.LedgerError`` with a ``Reason`` on failure.
"""

from __future__ import annotations

from datetime import date
from typing import Protocol, runtime_checkable

from domain.duplicates import Candidate, Verdict
from domain.models import (
    Attachment,
    AttachmentLimits,
    Document,
    DocumentRef,
    DraftBill,
    LedgerBill,
    Vendor,
)
from domain.tenants import Tenant


@runtime_checkable
class Ledger(Protocol):
    """One Sage company (or the local stand-in), as the stages need it."""

    kind: str
    attachment_limits: AttachmentLimits  # what attach_document takes (size, types)

    async def find_vendor(self, name: str, *, tax_number: str | None = None) -> Vendor | None:
        """The vendor whose normalised name (or tax number, when given) matches, if any."""
        ...

    async def create_vendor(self, name: str, *, tax_number: str | None = None) -> Vendor:
        """Create a vendor; if one with the same normalised name appeared meanwhile, return it."""
        ...

    async def find_bill(
        self, vendor_id: str, number: str, *, credit_note: bool = False
    ) -> LedgerBill | None:
        """The bill (or credit note) for this vendor and invoice number, whoever created it."""
        ...

    async def get_bill(self, bill_id: str) -> LedgerBill | None: ...

    async def create_draft_bill(self, vendor: Vendor, bill: DraftBill) -> LedgerBill:
        """Create a draft bill (a credit when ``bill.credit_note``), tagged with its item key.

        Raises ``duplicate`` if one exists for vendor + number, ``period_closed`` if the bill
        date is in a closed period.
        """
        ...

    async def find_attachment(self, bill: LedgerBill) -> Attachment | None: ...

    async def attach_document(self, bill: LedgerBill, document: Document) -> Attachment:
        """Attach the document; a bill holds at most one attachment."""
        ...

    async def period_is_open(self, day: date) -> bool: ...

    async def next_open_day(self, day: date) -> date | None:
        """The first day on or after ``day`` in an open period (for the ``redate`` policy)."""
        ...

    async def check_connection(self) -> None:
        """Raise ``LedgerError`` (``auth``, ``unavailable``...) unless the ledger is usable."""
        ...

    async def aclose(self) -> None: ...


class DocumentSource(Protocol):
    """Fetches the original document of an item, safely (allow-lists, size caps, sniffing)."""

    async def fetch(self, ref: DocumentRef, tenant: Tenant) -> Document:
        """Raise ``StageError(document_unavailable)`` with the reason when it cannot."""
        ...


@runtime_checkable
class DuplicateCheck(Protocol):
    """The tenant's duplicate index, as the create stage asks it once per item."""

    async def check(self, candidate: Candidate) -> Verdict:
        """Check ``candidate`` against everything seen for its tenant, and add it: durably,
        before this returns, so a crash after the answer does not forget it."""
        ...
