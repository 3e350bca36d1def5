"""One e-invoice file in, one Dext item (or the reasons why not) out.

The format is told by content, never by file name: ``%PDF-`` is a Factur-X / ZUGFeRD PDF
whose embedded XML is read; XML is told by its root's namespace URI (UBL Invoice, UBL
CreditNote, CII). A UBL root in the wrong namespace is unknown, not guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adapters.einvoice import errors as E
from adapters.einvoice.arithmetic import check_totals
from adapters.einvoice.cii import CII_NS, read_cii
from adapters.einvoice.facturx import embedded_xml
from adapters.einvoice.item import to_item
from adapters.einvoice.model import EInvoice
from adapters.einvoice.ubl import CREDIT_NOTE_NS, INVOICE_NS, read_ubl
from adapters.einvoice.xml import local_name, namespace, parse_xml
from domain.errors import Problem

_ROOTS = {
    (INVOICE_NS, "Invoice"): "ubl",
    (CREDIT_NOTE_NS, "CreditNote"): "ubl",
    (CII_NS, "CrossIndustryInvoice"): "cii",
}
PDF_MAGIC = b"%PDF-"
# ZUGFeRD 1.0 (2014) predates EN 16931; its successor is ZUGFeRD 2 / Factur-X.
ZUGFERD_1_NS = "urn:ferd:CrossIndustryDocument:invoice:1p0"


@dataclass
class EInvoiceRead:
    """What one file gave: the invoice as read, its item, and EN 16931 problems (an item
    with problems must not be published)."""

    invoice: EInvoice
    item: dict[str, Any]
    problems: list[Problem] = field(default_factory=list)
    embedded_name: str | None = None  # the XML's name inside a PDF


def looks_like_einvoice(data: bytes) -> bool:
    """Whether ``data`` starts like XML (after a BOM and spaces): the cheap test a source
    makes before handing a file here. A PDF is asked with ``is_pdf``."""
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"<")


def is_pdf(data: bytes) -> bool:
    return data[:1024].lstrip().startswith(PDF_MAGIC)


def parse_einvoice(data: bytes) -> tuple[EInvoice, str | None]:
    """The invoice in an XML or Factur-X PDF file, and the embedded XML's name for a PDF."""
    embedded = None
    if is_pdf(data):
        embedded, data = embedded_xml(data)
    root = parse_xml(data)
    kind = _ROOTS.get((namespace(root), local_name(root)))
    if kind is None:
        where = f" (embedded as {embedded})" if embedded else ""
        if namespace(root) == ZUGFERD_1_NS:
            raise E.EInvoiceError(
                E.UNKNOWN_FORMAT,
                f"the XML{where} is ZUGFeRD 1.0, which is not EN 16931 and not read here; "
                "ask the supplier for ZUGFeRD 2 (Factur-X) or XRechnung",
            )
        raise E.EInvoiceError(
            E.UNKNOWN_FORMAT,
            f"the XML{where} is a {local_name(root) or 'nameless'} element in namespace "
            f"{namespace(root) or '(none)'!r}: not a UBL 2.1 Invoice or CreditNote, nor a "
            "UN/CEFACT Cross Industry Invoice",
        )
    return (read_ubl(root) if kind == "ubl" else read_cii(root)), embedded


def read_einvoice(data: bytes, filename: str) -> EInvoiceRead:
    """Read the e-invoice ``data`` (the file ``filename``); ``EInvoiceError`` when it is not
    one. The file itself is the item's document."""
    invoice, embedded = parse_einvoice(data)
    content_type = "application/pdf" if embedded else "application/xml"
    item = to_item(invoice, filename=filename, content_type=content_type)
    if embedded:
        item["source_format"] = "facturx-pdf"
        item["einvoice"].update(embedded_xml=embedded, embedded_format=invoice.format)
    return EInvoiceRead(invoice, item, check_totals(invoice), embedded)
