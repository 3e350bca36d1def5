"""The export folder: Dext CSV exports (and JSON items), e-invoices, plus the documents, as items.

A folder, for example one that Dext's cloud back-up keeps in sync, holds CSV exports and the
original PDFs or images. Each CSV row becomes an item, matched to its document by the file
name in the row or, failing that, by a file named after the item's id or invoice number.

- A file is processed once, even across restarts and renames: its SHA-256 is recorded (in a
  SQLite file under the data folder: the folder lives on one machine, so its record does too).
- A file still being written is left alone: it must have been quiet for ``settle`` seconds and
  must not change while it is read; temporary names (``.part``, ``.tmp``, ``~$x``...) are
  never read.
- A bad row is reported with its line number and the reason; the other rows go through.
- An item already received from this folder is not sent again; one that comes back with
  different content is reported, because the pipeline keys items by their Dext id.
- An e-invoice (``adapters.einvoice``: a UBL or CII ``.xml``, or a Factur-X / ZUGFeRD ``.pdf``
  with the XML embedded) is one item, the file itself its document. A PDF without embedded
  XML is a document for the other items, as before; one that is read once is not read again.
  An XML invoice's document is a PDF rendering of it, the XML embedded, written once under
  ``.billstream/rendered/`` in the folder (the attach stage and Sage take PDFs, not XML).

CSV columns (header names are matched leniently: case, spaces and punctuation do not matter,
and the usual aliases are accepted; unknown columns are ignored and listed):

============================  ===================================================
item field                    accepted headers (any of)
============================  ===================================================
``id``                        ID, Item ID, Dext ID, Receipt ID, Document ID
``date``                      Date, Document Date, Invoice Date, Receipt Date
``due_date``                  Due Date, Payment Due Date
``payee``                     Supplier, Supplier Name, Payee, Vendor, Merchant
``payee_tax_number``          Supplier Tax Number, VAT Number, Tax Number
``invoice_number``            Invoice Number, Reference, Invoice Number/Reference,
                              Reference Number, Document Reference, Invoice No
``type``                      Type, Document Type
``status``                    Status
``client`` / ``project``      Client / Project
``category``                  Category, Category Name, Account
``category_code``             Category Code, Nominal Code, Account Code, GL Code
``currency``                  Currency, Currency Code
``total_amount``              Total, Total Amount, Gross, Amount
``vat_amount``                Tax, Tax Amount, VAT, VAT Amount, Sales Tax, GST
``base_currency``             Base Currency
``base_total`` / ``base_vat`` Base Total / Base Tax, Base VAT
``description``               Description, Notes, Memo
``payment_method``            Payment Method, Payment Type
``paid``                      Paid (yes/no, true/false, paid/unpaid)
document                      Document, Document Name, Image, Image Name, File Name,
                              Image URL, Document URL
============================  ===================================================

Amounts stay the exact text of the cell (``1,957.15`` included): validation reads them as
decimals. Dates become ISO dates, read as validation reads them (``domain.dates``):
``dd/mm/yyyy`` versus ``mm/dd/yyyy`` follows the tenant's locale or ``date_order``, and a date
that could be either with no order known is a bad row. A file
without an ID column gets deterministic ids (``csv-`` + a hash of supplier, number, date,
total and currency), so a re-export gives the same ids. Empty cells are ``null``.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import io
import json
import logging
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from adapters.dext.items import ReceivedSink, SourceItem, canonical_item, guess_content_type
from adapters.einvoice import errors as einvoice_errors
from adapters.einvoice.reader import EInvoiceRead, read_einvoice
from adapters.einvoice.render import write_rendering
from domain.dates import DateError, parse_date
from domain.dext import ItemFormatError, check_item, loads_items
from domain.locales import DateOrder
from domain.models import DocumentRef
from domain.tenants import Tenant, Tenants

log = logging.getLogger("billstream.dext.folder")

DOCUMENT_SUFFIXES = frozenset({".pdf", ".png", ".jpg", ".jpeg", ".tif", ".tiff"})
ITEM_SUFFIXES = frozenset({".csv", ".json", ".xml"})
# Read as items when they embed an invoice XML, else only documents for the other items.
MAYBE_ITEM_SUFFIXES = frozenset({".pdf"})
_NOT_AN_EINVOICE = frozenset({einvoice_errors.NO_EMBEDDED_XML, einvoice_errors.BROKEN_PDF})
# billstream's own files in a folder (renderings here, pushed e-invoices in a tenant's
# document folder): never scanned as items or documents. Renderings of XML invoices live
# inside the folder because the attach stage reads the folder already.
OWN_FILES = Path(".billstream")
RENDERINGS = OWN_FILES / "rendered"
_TEMP_SUFFIXES = (".part", ".partial", ".tmp", ".temp", ".crdownload", ".download", ".swp", "~")


def _norm(header: str) -> str:
    return re.sub(r"[^a-z0-9]", "", header.lower().replace("&", "and"))


_ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("id", "itemid", "dextid", "receiptid", "documentid"),
    "date": ("date", "documentdate", "invoicedate", "receiptdate", "issuedate"),
    "due_date": ("duedate", "paymentduedate"),
    "payee": ("supplier", "suppliername", "payee", "vendor", "vendorname", "merchant"),
    "payee_tax_number": (
        "suppliertaxnumber",
        "suppliervatnumber",
        "vatnumber",
        "taxnumber",
        "payeetaxnumber",
        "vatregistrationnumber",
    ),
    "invoice_number": (
        "invoicenumber",
        "invoiceno",
        "reference",
        "referencenumber",
        "invoicenumberreference",
        "documentreference",
        "invoicereference",
        "billnumber",
    ),
    "type": ("type", "documenttype", "itemtype"),
    "status": ("status",),
    "client": ("client", "clientname"),
    "project": ("project", "projectname"),
    "category": ("category", "categoryname", "account", "accountname"),
    "category_code": ("categorycode", "nominalcode", "accountcode", "glcode", "glaccount"),
    "currency": ("currency", "currencycode"),
    "total_amount": ("total", "totalamount", "gross", "grossamount", "amount"),
    "vat_amount": ("tax", "taxamount", "vat", "vatamount", "salestax", "gst"),
    "base_currency": ("basecurrency",),
    "base_total": ("basetotal", "totalinbasecurrency"),
    "base_vat": ("basevat", "basetax", "taxinbasecurrency"),
    "description": ("description", "notes", "note", "memo"),
    "payment_method": ("paymentmethod", "paymenttype"),
    "paid": ("paid", "paidstatus", "ispaid"),
    "document": (
        "document",
        "documentname",
        "image",
        "imagename",
        "filename",
        "file",
        "documentfile",
        "imagefilename",
        "attachment",
        "imageurl",
        "documenturl",
    ),
}
HEADER_FIELDS: dict[str, str] = {alias: f for f, aliases in _ALIASES.items() for alias in aliases}
_TYPES = {
    "invoice": "invoice",
    "bill": "invoice",
    "receipt": "receipt",
    "creditnote": "credit_note",
    "creditnoterefund": "credit_note",
    "credit": "credit_note",
    "refund": "credit_note",
}
_TRUE = {"yes", "y", "true", "1", "paid"}
_FALSE = {"no", "n", "false", "0", "unpaid", "notpaid"}


class RowError(ValueError):
    """This row cannot become an item; the message says why."""


def iso_date(text: str, order: DateOrder | None) -> str:
    """An export's date as ``YYYY-MM-DD``, read by the tenant's date order (the same rules as
    validation: ``domain.dates``); never a guess between day and month."""
    try:
        return parse_date(text, order).isoformat()
    except DateError as exc:
        raise RowError(exc.message) from None


def _paid(text: str) -> bool:
    value = _norm(text)
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise RowError(f"Paid is {text!r}; expected yes or no")


def derived_id(item: dict[str, Any]) -> str:
    parts = [str(item.get(k) or "") for k in ("payee", "invoice_number", "date", "total_amount")]
    parts.append(str(item.get("currency") or ""))
    return "csv-" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Row:
    line: int
    item: dict[str, Any]
    document: str | None  # file name or URL named by the row


@dataclass(frozen=True)
class FileProblem:
    """Something wrong in one export file: which file, which line (if any), what."""

    file: str
    line: int | None
    message: str
    code: str | None = None  # a stable code, where the reader gives one (e-invoices)

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "message": self.message, "code": self.code}


@dataclass
class ParsedFile:
    rows: list[Row] = field(default_factory=list)
    problems: list[tuple[int | None, str]] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Excel on Windows still writes CSV in the ANSI code page.
        return data.decode("cp1252", errors="replace")


def parse_csv(data: bytes, tenant: Tenant) -> ParsedFile:
    """Rows of a Dext CSV export as items; bad rows as (line, reason)."""
    out = ParsedFile()
    text = _decode(data)
    first_line, _, rest = text.partition("\n")
    delimiter = None
    if first_line.strip().lower().startswith("sep=") and len(first_line.strip()) >= 5:
        delimiter = first_line.strip()[4]
        text = rest
        line_offset = 1
    else:
        line_offset = 0
        try:
            delimiter = csv.Sniffer().sniff(first_line, delimiters=",;\t").delimiter
        except csv.Error:
            delimiter = ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    columns: list[str | None] = []
    previous_end = 0
    for cells in _rows_until_broken(reader, out, line_offset):
        start = previous_end + 1 + line_offset
        previous_end = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if header is None:
            header = cells
            columns = [HEADER_FIELDS.get(_norm(h)) for h in header]
            out.ignored_columns = [
                h for h, c in zip(header, columns, strict=True) if c is None and h
            ]
            if "payee" not in columns and "total_amount" not in columns:
                found = ", ".join(h for h in header if h) or "none"
                out.problems.append(
                    (start, f"not a Dext CSV export: no Supplier or Total column (found: {found})")
                )
                return out
            continue
        try:
            out.rows.append(_row(start, cells, header, columns, tenant))
        except RowError as exc:
            out.problems.append((start, str(exc)))
    if header is None:
        out.problems.append((None, "the file has no header row"))
    return out


def _rows_until_broken(reader: Any, out: ParsedFile, line_offset: int) -> Iterator[list[str]]:
    """The reader's rows; a row the csv module cannot read (a field over its 128 KiB limit, a
    NUL byte) ends the file with a problem on that line instead of an exception."""
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            out.problems.append(
                (reader.line_num + line_offset, f"the file cannot be read on: {exc}")
            )
            return
        yield cells


def _row(
    line: int, cells: list[str], header: list[str], columns: list[str | None], tenant: Tenant
) -> Row:
    if len(cells) > len(header) and any(c.strip() for c in cells[len(header) :]):
        raise RowError(f"the row has {len(cells)} fields, the header {len(header)}")
    if len(cells) < len(header):
        raise RowError(f"the row has {len(cells)} fields, the header {len(header)}")
    item: dict[str, Any] = {}
    document: str | None = None
    for name, value, target in zip(header, cells, columns, strict=False):
        if target is None:
            continue
        text = value.strip()
        if target in item and item[target] is not None:
            continue  # two columns for one field (Invoice Number and Reference): first wins
        if target == "document":
            document = text or document
            continue
        if not text:
            item[target] = None
        elif target in ("date", "due_date"):
            try:
                item[target] = iso_date(text, tenant.conventions.date_order)
            except RowError as exc:
                raise RowError(f"{name}: {exc}") from None
        elif target == "paid":
            item[target] = _paid(text)
        elif target == "type":
            item[target] = _TYPES.get(_norm(text), re.sub(r"\W+", "_", text.lower()).strip("_"))
        elif target == "status":
            item[target] = text.lower()
        elif target in ("currency", "base_currency"):
            item[target] = text.upper()
        else:
            item[target] = text
    if not any(item.get(k) for k in ("payee", "total_amount", "invoice_number")):
        raise RowError("the row has no supplier, total or invoice number")
    if not item.get("id"):
        item["id"] = derived_id(item)
    if document:
        name = _document_name(document)
        item["document"] = {"filename": name, "content_type": guess_content_type(name)}
    return Row(line, item, document)


def fields_row(fields: dict[str, str], tenant: Tenant) -> Row:
    """One record of labelled fields (a Zapier step's, a form's) read as an export row: the
    labels matched as leniently as CSV headers, unknown labels ignored."""
    header = list(fields)
    columns = [HEADER_FIELDS.get(_norm(h)) for h in header]
    if "payee" not in columns and "total_amount" not in columns:
        raise RowError(
            "no Supplier or Total field (labels found: " + (", ".join(header) or "none") + ")"
        )
    return _row(1, [fields[h] for h in header], header, columns, tenant)


def _document_name(value: str) -> str:
    if re.match(r"^https?://", value, re.I):
        return urlparse(value).path.rsplit("/", 1)[-1] or "document"
    return Path(value.replace("\\", "/")).name


# --- state ---------------------------------------------------------------------------------


class FolderState:
    """What a folder source has done: processed files (by content) and items received."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS files (
                folder TEXT NOT NULL, sha256 TEXT NOT NULL, path TEXT NOT NULL,
                processed_at REAL NOT NULL, published INTEGER NOT NULL, report TEXT NOT NULL,
                PRIMARY KEY (folder, sha256));
            CREATE TABLE IF NOT EXISTS items (
                folder TEXT NOT NULL, item_key TEXT NOT NULL, digest TEXT NOT NULL,
                origin TEXT NOT NULL, PRIMARY KEY (folder, item_key));
            """
        )

    def close(self) -> None:
        self._db.close()

    def file_seen(self, folder: str, sha256: str) -> str | None:
        row = self._db.execute(
            "SELECT path FROM files WHERE folder = ? AND sha256 = ?", (folder, sha256)
        ).fetchone()
        return None if row is None else str(row[0])

    def item_seen(self, folder: str, key: str) -> tuple[str, str] | None:
        row = self._db.execute(
            "SELECT digest, origin FROM items WHERE folder = ? AND item_key = ?", (folder, key)
        ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    def record(
        self, folder: str, sha256: str, path: str, published: Sequence[SourceItem], report: str
    ) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?)",
                [(folder, si.key, si.digest, si.origin) for si in published],
            )
            self._db.execute(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?)",
                (folder, sha256, path, time.time(), len(published), report),
            )


# --- the source ----------------------------------------------------------------------------


@dataclass
class FileReport:
    file: str
    outcome: str  # processed, duplicate, pending, skipped; document (a plain PDF, not reported)
    published: int = 0
    already_received: int = 0
    problems: list[FileProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "outcome": self.outcome,
            "published": self.published,
            "already_received": self.already_received,
            "problems": [p.to_json() for p in self.problems],
            "notes": self.notes,
        }


def is_temporary(path: Path) -> bool:
    name = path.name
    lowered = name.lower()
    return (
        name.startswith((".", "~$", ".~lock"))
        or lowered.endswith(_TEMP_SUFFIXES)
        or lowered.startswith("~")
    )


class ExportFolder:
    """One export folder feeding the received topic."""

    def __init__(
        self,
        root: Path,
        *,
        tenants: Tenants,
        sink: ReceivedSink,
        state: FolderState,
        tenant: str | None = None,
        name: str | None = None,
        settle: float = 5.0,
        document_roots: Iterable[Path] = (),
    ) -> None:
        self.root = root.resolve()
        if not self.root.is_dir():
            raise ValueError(f"{root} is not a folder")
        self.tenants = tenants
        self.tenant = tenants.get(tenant) if tenant else None
        self.name = name or self.root.name
        self.source = f"folder/{self.name}"
        self.sink = sink
        self.state = state
        self.settle = settle
        self.document_roots = [Path(d).resolve() for d in document_roots]
        self._by_folder = {t.dext_account: t for t in tenants.all() if t.dext_account}
        self._by_folder.update({t.id: t for t in tenants.all()})
        self._reported: set[str] = set()
        # PDFs found to hold no invoice, by (size, mtime): not opened again while unchanged.
        self._plain_pdfs: dict[Path, tuple[int, int]] = {}
        for t in [self.tenant] if self.tenant else self._mapped_tenants():
            self._check_documents_reachable(t)

    def _mapped_tenants(self) -> list[Tenant]:
        return [
            self._by_folder[p.name]
            for p in sorted(self.root.iterdir())
            if p.is_dir() and p.name in self._by_folder
        ]

    def _check_documents_reachable(self, tenant: Tenant) -> None:
        roots = self.document_roots + [Path(d).resolve() for d in tenant.document_dirs]
        if not any(self.root.is_relative_to(r) for r in roots):
            raise ValueError(
                f"the attach stage could not read documents from {self.root}: it is not in "
                f"tenant {tenant.id}'s document_dirs (add it in the tenants file)"
            )

    def tenant_of(self, path: Path) -> Tenant | None:
        if self.tenant is not None:
            return self.tenant
        relative = path.relative_to(self.root)
        if len(relative.parts) < 2:
            return None
        return self._by_folder.get(relative.parts[0])

    def _files(self) -> list[Path]:
        """Every path under the root, but billstream's own files."""
        own = self.root / OWN_FILES
        return [p for p in sorted(self.root.rglob("*")) if not p.is_relative_to(own)]

    def _index(self) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
        by_name: dict[str, list[Path]] = {}
        by_stem: dict[str, list[Path]] = {}
        for path in self._files():
            if path.suffix.lower() in DOCUMENT_SUFFIXES and not is_temporary(path):
                by_name.setdefault(path.name.lower(), []).append(path)
                by_stem.setdefault(path.stem.lower(), []).append(path)
        return by_name, by_stem

    async def scan_once(self) -> list[FileReport]:
        """Process every file that is ready and new; report on each file looked at."""
        reports: list[FileReport] = []
        index = self._index()
        for path in self._files():
            if not path.is_file() or not self._may_hold_items(path):
                continue
            if is_temporary(path):
                continue
            report = await self.process_file(path, index)
            if report.outcome == "document" or (
                path.suffix.lower() in MAYBE_ITEM_SUFFIXES
                and report.outcome in ("pending", "skipped")
            ):
                continue  # a PDF is reported once it has proved to be an e-invoice
            if report.outcome == "skipped":
                if report.file not in self._reported:  # say it once, not at every scan
                    self._reported.add(report.file)
                    self._log(report)
            elif report.outcome == "processed":
                self._log(report)
            reports.append(report)
        return reports

    def _may_hold_items(self, path: Path) -> bool:
        suffix = path.suffix.lower()
        if suffix in ITEM_SUFFIXES:
            return True
        if suffix not in MAYBE_ITEM_SUFFIXES:
            return False
        stat = path.stat()
        return self._plain_pdfs.get(path) != (stat.st_size, stat.st_mtime_ns)

    def _log(self, report: FileReport) -> None:
        for problem in report.problems:
            where = f"{problem.file}:{problem.line}" if problem.line else problem.file
            log.warning("%s: %s", where, problem.message)
        if report.outcome == "processed":
            log.info(
                "%s: %d items published, %d already received, %d problems",
                report.file,
                report.published,
                report.already_received,
                len(report.problems),
            )

    def _read_when_settled(self, path: Path) -> bytes | None:
        before = path.stat()
        if time.time() - before.st_mtime < self.settle:
            return None
        data = path.read_bytes()
        after = path.stat()
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            return None
        if len(data) != after.st_size:
            return None
        return data

    async def process_file(
        self,
        path: Path,
        index: tuple[dict[str, list[Path]], dict[str, list[Path]]] | None = None,
    ) -> FileReport:
        shown = str(path.relative_to(self.root))
        tenant = self.tenant_of(path)
        if tenant is None:
            return FileReport(
                shown,
                "skipped",
                problems=[
                    FileProblem(
                        shown,
                        None,
                        "no tenant for this file: give --tenant, or put it in a sub-folder "
                        "named after the tenant's Dext account",
                    )
                ],
            )
        data = await asyncio.to_thread(self._read_when_settled, path)
        if data is None:
            return FileReport(shown, "pending", notes=["still being written; read it later"])
        sha = hashlib.sha256(data).hexdigest()
        first = self.state.file_seen(self.name, sha)
        if first is not None:
            note = "already processed" if first == shown else f"same content as {first}"
            return FileReport(shown, "duplicate", notes=[note])
        report = FileReport(shown, "processed")
        candidates = self._items_of(path, data, tenant, report, index or self._index())
        if report.outcome == "document":
            return report  # not recorded: it is a document, read when an item names it
        todo: list[SourceItem] = []
        for si in candidates:
            seen = self.state.item_seen(self.name, si.key)
            if seen is None:
                todo.append(si)
            elif seen[0] == si.digest:
                report.already_received += 1
            else:
                report.problems.append(
                    FileProblem(
                        shown,
                        _line_of(si.origin),
                        f"item {si.item['id']} was already received (from {seen[1]}) with "
                        "different content; an item is received once, correct the bill in "
                        "Sage instead",
                    )
                )
        await asyncio.gather(
            *(
                self.sink.publish_received(
                    si.tenant, si.item, source=self.source, document=si.document, origin=si.origin
                )
                for si in todo
            )
        )
        report.published = len(todo)
        # Recorded only once every publish is acknowledged: a crash before this line means
        # the file is read again (the same items, the same event ids), never lost.
        self.state.record(self.name, sha, shown, todo, json.dumps(report.to_json()))
        return report

    def _items_of(
        self,
        path: Path,
        data: bytes,
        tenant: Tenant,
        report: FileReport,
        index: tuple[dict[str, list[Path]], dict[str, list[Path]]],
    ) -> list[SourceItem]:
        shown = report.file
        out: dict[str, SourceItem] = {}
        if path.suffix.lower() in (".xml", ".pdf"):
            return self._einvoice_items(path, data, tenant, report)
        if path.suffix.lower() == ".json":
            try:
                raws = loads_items(data)
            except ItemFormatError as exc:
                report.problems.append(FileProblem(shown, None, str(exc)))
                return []
            for n, raw in enumerate(raws, start=1):
                item, ref = canonical_item(raw)
                refused = check_item(item)
                if refused:
                    messages = "; ".join(p.message for p in refused)
                    report.problems.append(FileProblem(shown, n, f"item {n}: {messages}"))
                    continue
                ref = self._json_document(path, item, ref, index)
                si = SourceItem(tenant.id, item, ref, f"{shown}#{n}")
                out[si.key] = si
            return list(out.values())
        parsed = parse_csv(data, tenant)
        report.problems.extend(FileProblem(shown, line, msg) for line, msg in parsed.problems)
        if parsed.ignored_columns:
            report.notes.append("ignored columns: " + ", ".join(parsed.ignored_columns))
        for row in parsed.rows:
            refused = check_item(row.item)
            if refused:
                messages = "; ".join(p.message for p in refused)
                report.problems.append(FileProblem(shown, row.line, messages))
                continue
            ref = self._row_document(path, row, index)
            if ref is None:
                report.notes.append(f"line {row.line}: no document found for {row.item['id']}")
            si = SourceItem(tenant.id, row.item, ref, f"{shown}:{row.line}")
            if si.key in out:
                report.problems.append(
                    FileProblem(shown, row.line, f"item {row.item['id']} appears twice in the file")
                )
                continue
            out[si.key] = si
        return list(out.values())

    def _einvoice_items(
        self, path: Path, data: bytes, tenant: Tenant, report: FileReport
    ) -> list[SourceItem]:
        """The one item of an e-invoice file, its problems reported with their codes."""
        shown = report.file
        try:
            read = read_einvoice(data, path.name)
        except einvoice_errors.EInvoiceError as exc:
            # A PDF with no invoice inside, or one pypdf cannot open, is not known to be an
            # e-invoice: most PDFs here are documents of the CSV and JSON items.
            if path.suffix.lower() == ".pdf" and exc.code in _NOT_AN_EINVOICE:
                stat = path.stat()
                self._plain_pdfs[path] = (stat.st_size, stat.st_mtime_ns)
                report.outcome = "document"
            else:
                report.problems.append(FileProblem(shown, None, exc.message, exc.code))
            return []
        problems = read.problems or check_item(read.item)
        if problems:
            report.problems.extend(FileProblem(shown, None, p.message, p.code) for p in problems)
            return []
        ref = self._ref(path) if read.embedded_name else self._rendering(path, data, read, report)
        return [SourceItem(tenant.id, read.item, ref, shown)]

    def _rendering(
        self, path: Path, data: bytes, read: EInvoiceRead, report: FileReport
    ) -> DocumentRef:
        """The readable PDF of an XML invoice as its document (the XML embedded in it)."""
        try:
            target = write_rendering(read.invoice, data, path.name, self.root / RENDERINGS)
        except Exception as exc:
            # The invoice must not be lost for want of its picture: it goes with the XML,
            # which the attach stage reports as unavailable, naming the file.
            report.notes.append(f"no PDF rendering ({type(exc).__name__}: {exc}); XML attached")
            return self._ref(path)
        name = f"{path.stem}.pdf"
        read.item["document"] = {"filename": name, "content_type": "application/pdf"}
        read.item["einvoice"]["original_filename"] = path.name
        return DocumentRef(url=target.as_uri(), filename=name, content_type="application/pdf")

    def _find(self, name: str, near: Path, table: dict[str, list[Path]]) -> Path | None:
        found = table.get(name.lower(), [])
        same_folder = [p for p in found if p.parent == near.parent]
        choice = same_folder or found
        return choice[0] if len(choice) == 1 or same_folder else None

    def _ref(self, path: Path) -> DocumentRef:
        return DocumentRef(
            url=path.as_uri(), filename=path.name, content_type=guess_content_type(path.name)
        )

    def _row_document(
        self, path: Path, row: Row, index: tuple[dict[str, list[Path]], dict[str, list[Path]]]
    ) -> DocumentRef | None:
        by_name, by_stem = index
        if row.document:
            if re.match(r"^https://", row.document, re.I):
                name = _document_name(row.document)
                return DocumentRef(
                    url=row.document, filename=name, content_type=guess_content_type(name)
                )
            name = _document_name(row.document)
            found = self._find(name, path, by_name)
            if found is None:
                # Not synced yet, perhaps: point where it should be; the attach stage reports
                # document_unavailable (replayable) if it is still missing then.
                return self._ref(path.parent / name)
            return self._ref(found)
        for reference in (row.item.get("id"), row.item.get("invoice_number")):
            if reference:
                found = self._find(str(reference), path, by_stem)
                if found is not None:
                    return self._ref(found)
        return None

    def _json_document(
        self,
        path: Path,
        item: dict[str, Any],
        ref: DocumentRef | None,
        index: tuple[dict[str, list[Path]], dict[str, list[Path]]],
    ) -> DocumentRef | None:
        if ref is not None and urlparse(ref.url).scheme == "https":
            return ref
        by_name, by_stem = index
        doc = item.get("document")
        name = doc.get("filename") if isinstance(doc, dict) else None
        if name:
            found = self._find(str(name), path, by_name)
            return self._ref(found) if found is not None else self._ref(path.parent / str(name))
        found = self._find(str(item["id"]), path, by_stem)
        return self._ref(found) if found is not None else None

    async def watch(self, interval: float, stop: asyncio.Event) -> None:
        """Scan every ``interval`` seconds until ``stop`` is set.

        Polling rather than file-system events: synced and network folders often do not
        deliver those, and a scan of unchanged files costs only a stat each.
        """
        while not stop.is_set():
            await self.scan_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)


def _line_of(origin: str) -> int | None:
    tail = re.split(r"[:#]", origin)[-1]
    return int(tail) if tail.isdigit() else None
