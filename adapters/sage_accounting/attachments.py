"""Attachments in Sage Accounting: the original document on its purchase invoice or credit
note, at most 2.5 MiB.

Sage has no idempotency for attachments, so ``SageAttachments`` looks before uploading and,
after any uncertain failure, looks again before saying what happened.
"""

import base64
import hashlib
import time
from collections.abc import Callable
from typing import Any

from adapters.sage_accounting.client import SageAccountingClient
from domain.errors import LedgerError, Reason
from domain.models import Attachment, AttachmentLimits, Document, LedgerBill

MAX_ATTACHMENT_BYTES = 2_621_440  # Sage: file_size maximum, 2.5 MiB
LIMITS = AttachmentLimits(
    ledger="Sage Accounting",
    max_bytes=MAX_ATTACHMENT_BYTES,
    types=frozenset({"application/pdf", "image/jpeg", "image/png"}),
    source="docs/ledger-limits.md: Swagger postAttachments file_size maximum; Sage's "
    "attachments guide: pdf, jpg or png",
)


class SageAttachments:
    """The attachment half of ``SageAccountingLedger``."""

    def __init__(self, client: Callable[[], SageAccountingClient], *, negative_ttl: float) -> None:
        self._client = client
        self._negative_ttl = negative_ttl
        self._no_attachment: dict[str, float] = {}
        self._created_empty: dict[str, float] = {}

    def created_empty(self, bill_id: str) -> None:
        """The bill was created a moment ago by this worker: it has no attachment to look for."""
        self._created_empty[bill_id] = time.monotonic()

    def _known_empty(self, bill_id: str) -> bool:
        made = self._created_empty.get(bill_id)
        return made is not None and time.monotonic() - made <= self._negative_ttl

    @staticmethod
    def _context(bill: LedgerBill) -> str:
        return "PURCHASE_CREDIT_NOTE" if bill.credit_note else "PURCHASE_INVOICE"

    async def find_attachment(self, bill: LedgerBill) -> Attachment | None:
        if self._known_empty(bill.id):
            return None
        items = await self._client().list_all(
            "getAttachments",
            params={
                "attachment_context_type_id": self._context(bill),
                "attachment_context_id": bill.id,
                "attributes": "file_name,file_size,file,created_at",
            },
            what=f"looking for the attachment of bill {bill.id}",
        )
        if not items:
            self._no_attachment[bill.id] = time.monotonic()
            return None
        self._no_attachment.pop(bill.id, None)
        items.sort(key=lambda i: (str(i.get("created_at", "")), i["id"]))
        item = items[0]
        if "file" not in item:
            # not every Sage list honours ``attributes=file``: fetch the one we need
            _, item = await self._client().call(
                "getAttachmentsKey",
                key=item["id"],
                params={"attributes": "file_name,file_size,file"},
                what=f"reading attachment {item['id']}",
            )
        content = base64.b64decode(item.get("file") or "")
        return Attachment(
            id=item["id"],
            bill_id=bill.id,
            filename=item.get("file_name") or "",
            sha256=hashlib.sha256(content).hexdigest(),
            size=int(item.get("file_size") or len(content)),
        )

    async def attach_document(self, bill: LedgerBill, document: Document) -> Attachment:
        size = len(document.content)
        if size > MAX_ATTACHMENT_BYTES:
            # The attach stage fits documents first (adapters.attachment_fit); this is for
            # any other caller.
            raise LedgerError(
                Reason.ATTACHMENT_TOO_LARGE,
                f"{document.filename} is {size:,} bytes; Sage Accounting takes at most "
                f"{MAX_ATTACHMENT_BYTES:,} bytes per attachment.",
                detail={"code": "too_large", "size": size, "limit": MAX_ATTACHMENT_BYTES},
            )
        # Whatever happens next, only a look can tell: an upload may land without an answer.
        empty = self._known_empty(bill.id)
        self._created_empty.pop(bill.id, None)
        seen = self._no_attachment.pop(bill.id, None)
        if not empty and (seen is None or time.monotonic() - seen > self._negative_ttl):
            existing = await self.find_attachment(bill)
            if existing is not None:
                raise LedgerError(
                    Reason.ATTACHMENT_FAILED,
                    f"Bill {bill.id} already has attachment {existing.id}.",
                    detail={"attachment_id": existing.id},
                )
        extension = document.filename.rsplit(".", 1)[-1].lower() if "." in document.filename else ""
        body: dict[str, Any] = {
            "file": base64.b64encode(document.content).decode("ascii"),
            "file_name": document.filename,
            "mime_type": document.content_type,
            "file_size": size,
            "attachment_context_type_id": self._context(bill),
            "attachment_context_id": bill.id,
        }
        if extension:
            body["file_extension"] = f".{extension}"
        try:
            _, data = await self._client().call(
                "postAttachments",
                body={"attachment": body},
                write=True,
                idempotent=False,
                what=f"attaching {document.filename} to bill {bill.id}",
            )
        except LedgerError as exc:
            if exc.uncertain:
                # No idempotency for attachments: only a look can say whether it landed.
                found = await self.find_attachment(bill)
                if found is not None and found.sha256 == document.sha256:
                    return found
                raise
            if exc.transient or exc.reason is Reason.AUTH:
                raise
            raise LedgerError(
                Reason.ATTACHMENT_FAILED, exc.message, problems=exc.problems, detail=exc.detail
            ) from None
        return Attachment(
            id=data["id"],
            bill_id=bill.id,
            filename=data.get("file_name") or document.filename,
            sha256=document.sha256,
            size=size,
        )
