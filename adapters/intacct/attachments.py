"""Attachments on Intacct bills: the original document as a supporting document (supdoc)
in a folder of its own, linked to the bill by its ``SUPDOCID``.

Intacct has no idempotent upload, so the supdoc id is derived from the item and the bill, the
upload and the link travel as one transaction, and every uncertain outcome is settled by
looking at what the bill links to before trying again.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adapters.intacct.caching import MissCache
from adapters.intacct.client import (
    IntacctClient,
)
from adapters.intacct.errors import (
    is_already_exists,
    is_repeated_controlid,
    is_rolled_back_only,
    ledger_error,
)
from adapters.intacct.keys import (
    read_controlid,
    supdoc_id,
    write_controlid,
)
from adapters.intacct.queries import (
    bill_object,
    cond,
    get_supdoc,
    query_element,
)
from adapters.intacct.xml import (
    ErrorDetail,
    Function,
    Result,
    element,
)
from domain.errors import LedgerError, Reason
from domain.models import Attachment, AttachmentLimits, Document, LedgerBill

# Intacct documents no size limit for attachments sent through the API, and takes files of
# any type; it does document 20 MB for the bills it receives itself (AP Automation), and
# billstream keeps to that (docs/ledger-limits.md).
LIMITS = AttachmentLimits(
    ledger="Sage Intacct",
    max_bytes=20_000_000,
    source="docs/ledger-limits.md: no API limit documented; AP Automation's 20 MB applied",
)


def _causes(results: Sequence[Result]) -> list[ErrorDetail]:
    """The errors of failed functions, leaving out those only rolled back for another's."""
    failed = [r for r in results if not r.ok]
    causes = [e for r in failed if not is_rolled_back_only(r.errors) for e in r.errors]
    return causes or [e for r in failed for e in r.errors]


def _extension(document: Document) -> tuple[str, str]:
    stem, dot, ext = document.filename.rpartition(".")
    if dot and stem and 0 < len(ext) <= 8:
        return stem, ext.lower()
    guessed = {"application/pdf": "pdf", "image/png": "png", "image/jpeg": "jpg"}
    return document.filename, guessed.get(document.content_type, "bin")


_META = "billstream:"


def _supdoc_description(bill: LedgerBill, document: Document) -> str:
    meta = {
        "item": bill.item_key,
        "file": document.filename,
        "sha256": document.sha256,
        "size": len(document.content),
    }
    return f"Original of {bill.number} {_META}{json.dumps(meta, separators=(',', ':'))}"


def _supdoc_meta(description: str) -> dict[str, Any] | None:
    _, found, rest = description.partition(_META)
    if not found:
        return None
    try:
        meta = json.loads(rest)
    except ValueError:
        return None
    if not isinstance(meta, dict) or not {"file", "sha256", "size"} <= meta.keys():
        return None
    return meta


# How long a bill this client created counts as bare without a look: a person attaching a
# file by hand in that time is outweighed by two functions saved on every bill.
CREATED_TTL = 600.0


@dataclass(frozen=True)
class _AttachmentView:
    bill_exists: bool
    linked: str = ""  # the bill's SUPDOCID
    linked_doc: dict[str, Any] | None = None  # that supdoc, if it exists
    derived_doc: dict[str, Any] | None = None  # the supdoc under our derived id, if any


class SupdocAttachments:
    """The attachment half of ``IntacctLedger``: finds and uploads supdocs for its bills."""

    def __init__(self, client: IntacctClient, misses: MissCache, folder: str) -> None:
        self.client = client
        self.folder = folder
        self._misses = misses
        self._folder_ready = False
        self._folder_lock = asyncio.Lock()
        self._created_empty: dict[str, float] = {}  # bill id -> when this client created it

    def created(self, bill: LedgerBill) -> None:
        """This client has just created the bill: it has no attachment to look for."""
        now = time.monotonic()
        if len(self._created_empty) > 10_000:
            self._created_empty = {
                k: t for k, t in self._created_empty.items() if now - t <= CREATED_TTL
            }
        self._created_empty[bill.id] = now

    def _known_empty(self, bill_id: str) -> bool:
        made = self._created_empty.get(bill_id)
        return made is not None and time.monotonic() - made <= CREATED_TTL

    @property
    def company(self) -> str:
        return self.client.company_id

    async def _run(
        self, functions: Sequence[Function], *, write: bool = False, transaction: bool = False
    ) -> list[Result]:
        return await self.client.execute(functions, write=write, transaction=transaction)

    async def _attachment_view(self, bill: LedgerBill) -> _AttachmentView:
        derived = supdoc_id(bill.item_key, bill.id)
        bill_res, doc_res = await self._run(
            [
                Function(
                    read_controlid("att-bill"),
                    query_element(
                        bill_object(bill.credit_note),
                        ["RECORDNO", "SUPDOCID"],
                        cond("equalto", "RECORDNO", bill.id),
                    ),
                ),
                # Fetched speculatively in the same request: it is the usual answer.
                Function(read_controlid("att-doc"), get_supdoc(derived)),
            ]
        )
        if not bill_res.ok:
            raise ledger_error(bill_res.errors, what=f"the lookup of bill {bill.id}")
        rows = bill_res.records()
        if not rows:
            return _AttachmentView(bill_exists=False)
        derived_doc = self._first(doc_res)
        linked = str(rows[0].get("SUPDOCID") or "").strip()
        if not linked:
            return _AttachmentView(True, derived_doc=derived_doc)
        if linked == derived:
            return _AttachmentView(True, linked, derived_doc, derived_doc)
        [other] = await self._run([Function(read_controlid("att-doc"), get_supdoc(linked))])
        return _AttachmentView(True, linked, self._first(other), derived_doc)

    @staticmethod
    def _first(res: Result) -> dict[str, Any] | None:
        # A missing supdoc answers with no record (or a failure): either way, none.
        records = res.records() if res.ok else []
        return records[0] if records else None

    async def _attachment(
        self, bill: LedgerBill, supdoc: str, doc: Mapping[str, Any]
    ) -> Attachment:
        meta = _supdoc_meta(str(doc.get("description") or ""))
        if meta is not None:
            return Attachment(
                id=supdoc,
                bill_id=bill.id,
                filename=str(meta["file"]),
                sha256=str(meta["sha256"]),
                size=int(meta["size"]),
            )
        # Attached by someone else: fetch the file itself to describe it.
        [full] = await self._run([Function(read_controlid("att-data"), get_supdoc(supdoc, None))])
        record = self._first(full) or {}
        files = (
            (record.get("attachments") or {}).get("attachment")
            if isinstance(record.get("attachments"), dict)
            else None
        )
        first = files[0] if isinstance(files, list) else files
        if not isinstance(first, dict):
            return Attachment(id=supdoc, bill_id=bill.id, filename="", sha256="", size=0)
        content = base64.b64decode(str(first.get("attachmentdata") or ""))
        name = str(first.get("attachmentname") or "")
        ext = str(first.get("attachmenttype") or "")
        return Attachment(
            id=supdoc,
            bill_id=bill.id,
            filename=f"{name}.{ext}" if ext else name,
            sha256=hashlib.sha256(content).hexdigest(),
            size=len(content),
        )

    async def find_attachment(self, bill: LedgerBill) -> Attachment | None:
        if self._known_empty(bill.id):
            return None
        view = await self._attachment_view(bill)
        if not view.linked or view.linked_doc is None:
            self._misses.remember(("attachment", bill.id), view)
            return None
        return await self._attachment(bill, view.linked, view.linked_doc)

    async def _ensure_folder(self) -> None:
        if self._folder_ready:
            return
        async with self._folder_lock:
            if self._folder_ready:
                return
            # A fresh control id each time: a folder deleted by hand must be made again.
            fn = Function(
                read_controlid("folder"),
                element(
                    "create_supdocfolder",
                    {
                        "supdocfoldername": self.folder,
                        "supdocfolderdescription": "Original documents attached by billstream",
                    },
                ),
            )
            [res] = await self._run([fn], write=True)
            if not res.ok and not is_already_exists(res.errors):
                raise self._attach_error(res.errors, f"the attachments folder {self.folder!r}")
            self._folder_ready = True

    @staticmethod
    def _attach_error(errors: Sequence[ErrorDetail], what: str) -> LedgerError:
        err = ledger_error(errors, what=what)
        if err.transient or err.reason in {Reason.AUTH, Reason.PERIOD_CLOSED}:
            return err
        return LedgerError(Reason.ATTACHMENT_FAILED, err.message, detail=err.detail)

    def _create_supdoc(self, supdoc: str, bill: LedgerBill, document: Document) -> Function:
        stem, ext = _extension(document)
        body = element(
            "create_supdoc",
            {
                "supdocid": supdoc,
                "supdocname": f"{bill.number} {document.filename}"[:100],
                "supdocfoldername": self.folder,
                "supdocdescription": _supdoc_description(bill, document),
                "attachments": {
                    "attachment": {
                        "attachmentname": stem,
                        "attachmenttype": ext,
                        "attachmentdata": base64.b64encode(document.content).decode("ascii"),
                    }
                },
            },
        )
        return Function(write_controlid("supdoc", supdoc, document.sha256), body)

    async def attach_document(self, bill: LedgerBill, document: Document) -> Attachment:
        try:
            return await self._attach_document(bill, document)
        finally:
            self._misses.forget(("attachment", bill.id))
            self._created_empty.pop(bill.id, None)

    async def _attach_document(self, bill: LedgerBill, document: Document) -> Attachment:
        await self._ensure_folder()
        missed, seen = self._misses.recent(("attachment", bill.id))
        view = seen if missed and isinstance(seen, _AttachmentView) else None
        if view is None and self._known_empty(bill.id):
            view = _AttachmentView(bill_exists=True)
        view = view or await self._attachment_view(bill)
        if not view.bill_exists:
            raise LedgerError(
                Reason.ATTACHMENT_FAILED,
                f"Bill {bill.id} ({bill.number}) no longer exists in {self.company}.",
                detail={"bill_id": bill.id},
            )
        if view.linked and view.linked_doc is not None:
            raise LedgerError(
                Reason.ATTACHMENT_FAILED,
                f"Bill {bill.id} ({bill.number}) already has attachment {view.linked}.",
                detail={"attachment_id": view.linked, "bill_id": bill.id},
            )
        supdoc = supdoc_id(bill.item_key, bill.id)
        # Setting SUPDOCID again is harmless, and a link undone by hand must be redone: a fresh
        # control id, so uniqueid never refuses it.
        link = Function(
            read_controlid("link"),
            element(
                "update",
                {bill_object(bill.credit_note): {"RECORDNO": bill.id, "SUPDOCID": supdoc}},
            ),
        )
        if view.derived_doc is not None:
            # Uploaded earlier for this item (a retry, or the bill was re-created): link it.
            results = await self._run([link], write=True)
        else:
            # Upload, then link, in one request but not as a transaction, so that other
            # bills' functions can share the request. Should the link fail, the supdoc
            # stays under its derived id and the retry only links it (the view finds it).
            upload = self._create_supdoc(supdoc, bill, document)
            results = await self._run([upload, link], write=True)
            if is_repeated_controlid(_causes(results)) and await self.find_attachment(bill) is None:
                # Uploaded before, then deleted by hand since (nothing is linked now, and the
                # view above found no supdoc): upload again, once, under a fresh control id.
                fresh = Function(
                    write_controlid("supdoc", upload.controlid, uuid.uuid4().hex), upload.body
                )
                link = Function(read_controlid("link"), link.body)
                results = await self._run([fresh, link], write=True)
        if all(r.ok for r in results):
            doc = view.derived_doc or {"description": _supdoc_description(bill, document)}
            return await self._attachment(bill, supdoc, doc)
        errors = _causes(results)
        if is_already_exists(errors) or is_repeated_controlid(errors):
            # Another worker, or our own uncertain earlier try, got there first.
            again = await self.find_attachment(bill)
            if again is not None:
                return again
            [res] = await self._run([Function(read_controlid("link"), link.body)], write=True)
            if res.ok:
                again = await self.find_attachment(bill)
                if again is not None:
                    return again
        raise self._attach_error(errors, f"the attachment of {bill.number}")
