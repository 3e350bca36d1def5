"""One source file read into items, with no broker, folder state or document lookup.

The export folder, ``billstream ingest inspect`` and ``billstream duplicates scan`` read files
through here, so what a user checks before dropping a file is what the folder will publish:
Dext JSON (an item or an array), a Dext CSV export, or an e-invoice (UBL, CII, Factur-X PDF),
told by suffix and then by content. Problems name the file and, where there is one, the line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adapters.dext.csv_export import Row, parse_csv
from adapters.dext.items import canonical_item
from adapters.einvoice import errors as einvoice_errors
from adapters.einvoice.reader import EInvoiceRead, read_einvoice
from domain.dext import ItemFormatError, check_item, loads_items
from domain.locales import DateOrder
from domain.models import DocumentRef

JSON_FORMAT = "dext-json"
CSV_FORMAT = "dext-csv"
EINVOICE_SUFFIXES = frozenset({".xml", ".pdf"})
# A PDF with no invoice inside, or one pypdf cannot open, is not known to be an e-invoice:
# most PDFs beside an export are the documents of its items.
NOT_AN_EINVOICE = frozenset({einvoice_errors.NO_EMBEDDED_XML, einvoice_errors.BROKEN_PDF})


@dataclass(frozen=True)
class FileProblem:
    """Something wrong in one source file: which file, which line (if any), what."""

    file: str
    line: int | None
    message: str
    code: str | None = None  # a stable code, where the reader gives one (e-invoices)

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "message": self.message, "code": self.code}


@dataclass(frozen=True)
class ReadItem:
    """One item of a file as the pipeline would receive it, and where in the file it was."""

    item: dict[str, Any]
    origin: str  # file#n for a JSON item, file:line for a CSV row, the file for an e-invoice
    line: int | None
    source_format: str
    row: Row | None = None  # a CSV row: the document it names
    ref: DocumentRef | None = None  # a JSON item's own document location


@dataclass
class FileRead:
    file: str
    items: list[ReadItem] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    einvoice: EInvoiceRead | None = None
    plain_pdf: bool = False  # a PDF with no invoice in it: a document, not an item


def source_format_of(suffix: str) -> str | None:
    """The reader a file's suffix picks (e-invoices are then told by content)."""
    suffix = suffix.lower()
    if suffix == ".json":
        return JSON_FORMAT
    if suffix == ".csv":
        return CSV_FORMAT
    return "einvoice" if suffix in EINVOICE_SUFFIXES else None


def read_file(shown: str, filename: str, data: bytes, date_order: DateOrder | None) -> FileRead:
    """The items in ``data`` (the file ``filename``, ``shown`` in messages), a CSV's dates
    read in ``date_order`` (the tenant's). An item the received gate refuses is a problem."""
    out = FileRead(shown)
    kind = source_format_of("." + filename.rsplit(".", 1)[-1] if "." in filename else "")
    if kind == "einvoice":
        _einvoice(out, filename, data)
    elif kind == JSON_FORMAT:
        _json(out, data)
    elif kind == CSV_FORMAT:
        _csv(out, data, date_order)
    else:
        out.problems.append(
            FileProblem(shown, None, "not a source file: expected .json, .csv, .xml or .pdf")
        )
    return out


def _json(out: FileRead, data: bytes) -> None:
    try:
        raws = loads_items(data)
    except ItemFormatError as exc:
        out.problems.append(FileProblem(out.file, None, str(exc)))
        return
    for n, raw in enumerate(raws, start=1):
        item, ref = canonical_item(raw)
        refused = check_item(item)
        if refused:
            messages = "; ".join(p.message for p in refused)
            out.problems.append(FileProblem(out.file, n, f"item {n}: {messages}"))
            continue
        out.items.append(ReadItem(item, f"{out.file}#{n}", n, JSON_FORMAT, ref=ref))


def _csv(out: FileRead, data: bytes, date_order: DateOrder | None) -> None:
    parsed = parse_csv(data, date_order)
    out.problems.extend(FileProblem(out.file, line, msg) for line, msg in parsed.problems)
    if parsed.ignored_columns:
        out.notes.append("ignored columns: " + ", ".join(parsed.ignored_columns))
    seen: set[str] = set()
    for row in parsed.rows:
        refused = check_item(row.item)
        if refused:
            messages = "; ".join(p.message for p in refused)
            out.problems.append(FileProblem(out.file, row.line, messages))
            continue
        if str(row.item["id"]) in seen:
            out.problems.append(
                FileProblem(out.file, row.line, f"item {row.item['id']} appears twice in the file")
            )
            continue
        seen.add(str(row.item["id"]))
        out.items.append(ReadItem(row.item, f"{out.file}:{row.line}", row.line, CSV_FORMAT, row))


def _einvoice(out: FileRead, filename: str, data: bytes) -> None:
    try:
        read = read_einvoice(data, filename)
    except einvoice_errors.EInvoiceError as exc:
        if filename.lower().endswith(".pdf") and exc.code in NOT_AN_EINVOICE:
            out.plain_pdf = True
        out.problems.append(FileProblem(out.file, None, exc.message, exc.code))
        return
    out.einvoice = read
    problems = read.problems or check_item(read.item)
    if problems:
        out.problems.extend(FileProblem(out.file, None, p.message, p.code) for p in problems)
        return
    fmt = str(read.item.get("source_format") or "einvoice")
    out.items.append(ReadItem(read.item, out.file, None, fmt))
