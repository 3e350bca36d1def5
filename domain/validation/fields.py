"""Step 1: every field of a Dext item read (the header, then the lines), each problem noted."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from domain import problems as P
from domain.dext import document_ref
from domain.models import DocumentRef
from domain.money import ISO_4217
from domain.tenants import Tenant
from domain.validation.lines import Header, Line, read_lines
from domain.validation.reading import Reader

# Fields of a Dext item that end up in the Invoice itself; everything else is kept in
# ``Invoice.extra`` so nothing Dext sent is lost.
KNOWN_FIELDS = frozenset(
    {
        "id",
        "type",
        "payee",
        "supplier",
        "payee_tax_number",
        "supplier_tax_number",
        "invoice_number",
        "date",
        "due_date",
        "currency",
        "total_amount",
        "vat_amount",
        "net_amount",
        "category",
        "description",
        "payment_method",
        "paid",
        "line_items",
        "document",
    }
)

_CREDIT_TYPES = frozenset(
    {"credit note", "credit", "refund", "credit note refund", "creditnote", "credit memo"}
)
_BILL_TYPES = frozenset(
    {"invoice", "bill", "purchase invoice", "receipt", "atm", "other", "mileage", "cost", "expense"}
)
_NOT_BILLS = {
    "statement": "a statement lists invoices that are (or will be) posted on their own",
    "delivery note": "a delivery note carries no amount owed",
    "remittance": "a remittance advice records a payment, not a bill",
    "sales invoice": "it is a sales document, not a supplier bill",
    "sales credit note": "it is a sales document, not a supplier bill",
    "quote": "a quote is not a bill",
    "purchase order": "a purchase order is not a bill",
}

# What OCR and people type when there is no number; posting them would make every such
# bill from one supplier look like a duplicate of the first.
_NO_NUMBER = frozenset({"n/a", "na", "none", "unknown", "null", "tbc", "tba", "-", "?"})


@dataclass
class Fields:
    """An item as read. Amounts as written until step 2 turns a credit note positive."""

    dext_id: str | None
    credit: bool
    supplier: str | None
    number: str | None
    currency: str | None  # None unless a valid ISO 4217 code
    issued: dt.date | None
    due: dt.date | None
    total: Decimal | None
    vat: Decimal | None
    net: Decimal | None
    tax_number: str | None
    payment_method: str | None
    document: DocumentRef | None
    header: Header
    raw_lines: list[Any] | None  # [] when the item has none; None when they are not a list
    lines: list[Line]
    complete: bool  # whether every line could be read completely
    rate: Decimal | None  # the header's tax rate
    rate_name: str | None


def read_item(r: Reader, item: Mapping[str, Any], tenant: Tenant) -> Fields:
    """Every field, in the order problems are reported (amounts read after the currency)."""
    out = r.out
    dext_id = r.text(item, "id", "id", required="The item has no Dext id, so it cannot be tracked.")
    credit = _document_kind(r, item)
    supplier = _supplier(r, item)
    number = _number(r, item)
    currency = _currency(r, item, tenant)
    issued = r.date(item.get("date"), "date", required=True)
    due = r.date(item.get("due_date"), "due_date", required=False)
    total = r.amount(item.get("total_amount"), "total_amount", required=True)
    vat = r.amount(item.get("vat_amount"), "vat_amount", required=False)
    head_net = r.amount(item.get("net_amount"), "net_amount", required=False)
    base = r.text(item, "base_currency", "base_currency")
    if base is not None and base.upper() in ISO_4217 and base.upper() != tenant.base_currency:
        out.add(
            P.BASE_CURRENCY_MISMATCH,
            "base_currency",
            f"The item comes from books in {base.upper()}, but tenant {tenant.id} keeps its books "
            f"in {tenant.base_currency}; it was probably sent to the wrong tenant.",
        )
    tax_number = r.text(item, "payee_tax_number", "payee_tax_number") or r.text(
        item, "supplier_tax_number", "supplier_tax_number"
    )
    payment_method = r.text(item, "payment_method", "payment_method")
    # Sources may strip the document's location from the item and pass it beside the item
    # (adapters.dext.items): a document without a url here is normal, not a problem.
    document = document_ref(item)
    header = Header(
        description=r.text(item, "description", "description"),
        category=r.text(item, "category", "category"),
        category_code=r.text(item, "category_code", "category_code"),
        department=r.text(item, "department", "department"),
        location=r.text(item, "location", "location"),
        project=r.text(item, "project", "project"),
        supplier=supplier,
    )
    raw_lines = item.get("line_items")
    if raw_lines is None:
        raw_lines = []
    elif not isinstance(raw_lines, list):
        out.add(P.INVALID, "line_items", "The line items must be a list of lines.")
        raw_lines = None
    lines, complete = read_lines(r, raw_lines or [], header)
    rate, rate_name = r.rate(item.get("tax_rate"), "tax_rate")
    return Fields(
        dext_id=dext_id,
        credit=credit,
        supplier=supplier,
        number=number,
        currency=currency,
        issued=issued,
        due=due,
        total=total,
        vat=vat,
        net=head_net,
        tax_number=tax_number,
        payment_method=payment_method,
        document=document,
        header=header,
        raw_lines=raw_lines,
        lines=lines,
        complete=complete,
        rate=rate,
        rate_name=rate_name,
    )


def _document_kind(reader: Reader, item: Mapping[str, Any]) -> bool:
    """Whether the type says credit note; refuses types that are not supplier bills."""
    raw = reader.text(item, "type", "type")
    if raw is None:
        return False
    kind = " ".join(raw.casefold().replace("_", " ").replace("-", " ").replace("/", " ").split())
    if kind in _CREDIT_TYPES:
        return True
    if kind in _NOT_BILLS:
        reader.out.add(
            P.UNSUPPORTED_TYPE,
            "type",
            f"A {raw!r} cannot become a bill: {_NOT_BILLS[kind]}. Archive it in Dext.",
        )
    elif kind not in _BILL_TYPES:
        reader.out.add(
            P.UNSUPPORTED_TYPE,
            "type",
            f"Unknown document type {raw!r}; set the type in Dext to Invoice, Receipt or "
            "Credit note.",
        )
    return False


def _supplier(r: Reader, item: Mapping[str, Any]) -> str | None:
    out = r.out
    supplier = r.text(item, "payee", "payee") or r.text(item, "supplier", "supplier")
    if supplier is None and not out.has("payee") and not out.has("supplier"):
        out.add(P.MISSING, "payee", "The supplier (payee) is missing; set the supplier in Dext.")
    elif supplier is not None and not any(c.isalnum() for c in supplier):
        out.add(P.INVALID, "payee", f"The supplier {supplier!r} is not a name; correct it in Dext.")
    return supplier


def _number(r: Reader, item: Mapping[str, Any]) -> str | None:
    """The invoice number; None (noted) when missing or a placeholder such as "N/A"."""
    number = r.text(
        item,
        "invoice_number",
        "invoice_number",
        required="The invoice number is missing; enter it in Dext (duplicates are caught by it).",
    )
    if number is not None and (
        not any(c.isalnum() for c in number) or number.casefold() in _NO_NUMBER
    ):
        r.out.add(
            P.MISSING,
            "invoice_number",
            f"The invoice number {number!r} is a placeholder, not a number; enter the real one "
            "in Dext (duplicates are caught by it).",
        )
        return None
    return number


def _currency(r: Reader, item: Mapping[str, Any], tenant: Tenant) -> str | None:
    """The item's ISO 4217 currency, upper case; once known, the reader refuses amounts
    marked in another currency."""
    currency = r.text(
        item, "currency", "currency", required="The currency is missing; set it in Dext."
    )
    if currency is None:
        return None
    if currency.upper() in ISO_4217:
        r.currency = currency.upper()
        return r.currency
    r.out.add(
        P.INVALID_CURRENCY,
        "currency",
        f"{currency!r} is not an ISO 4217 currency code; set a three-letter code such as "
        f"{tenant.base_currency} in Dext.",
    )
    return None
