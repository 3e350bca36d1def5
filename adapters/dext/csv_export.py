"""Dext CSV exports and labelled records (a Zapier step's) read as items.

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

import csv
import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from adapters.dext.items import guess_content_type
from domain.dates import DateError, parse_date
from domain.locales import DateOrder


def header_key(header: str) -> str:
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
    value = header_key(text)
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


def parse_csv(data: bytes, date_order: DateOrder | None) -> ParsedFile:
    """Rows of a Dext CSV export as items, dates read in ``date_order`` (the tenant's: see
    ``Tenant.conventions``); bad rows as (line, reason)."""
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
            columns = [HEADER_FIELDS.get(header_key(h)) for h in header]
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
            out.rows.append(_row(start, cells, header, columns, date_order))
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
    line: int,
    cells: list[str],
    header: list[str],
    columns: list[str | None],
    date_order: DateOrder | None,
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
                item[target] = iso_date(text, date_order)
            except RowError as exc:
                raise RowError(f"{name}: {exc}") from None
        elif target == "paid":
            item[target] = _paid(text)
        elif target == "type":
            item[target] = _TYPES.get(
                header_key(text), re.sub(r"\W+", "_", text.lower()).strip("_")
            )
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
        name = document_name(document)
        item["document"] = {"filename": name, "content_type": guess_content_type(name)}
    return Row(line, item, document)


def fields_row(fields: dict[str, str], date_order: DateOrder | None) -> Row:
    """One record of labelled fields (a Zapier step's, a form's) read as an export row: the
    labels matched as leniently as CSV headers, unknown labels ignored."""
    header = list(fields)
    columns = [HEADER_FIELDS.get(header_key(h)) for h in header]
    if "payee" not in columns and "total_amount" not in columns:
        raise RowError(
            "no Supplier or Total field (labels found: " + (", ".join(header) or "none") + ")"
        )
    return _row(1, [fields[h] for h in header], header, columns, date_order)


def document_name(value: str) -> str:
    if re.match(r"^https?://", value, re.I):
        return urlparse(value).path.rsplit("/", 1)[-1] or "document"
    return Path(value.replace("\\", "/")).name
