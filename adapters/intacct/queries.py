"""The XML the Intacct ledger sends and reads: query filters, object names and fields, and
the mapping of Intacct rows to the port's models (``LedgerBill``, ``Vendor``).

Pure functions of their arguments, shared by ``adapters.intacct.ledger`` and
``adapters.intacct.attachments``; none of them talks to the gateway.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any
from xml.etree.ElementTree import Element

from adapters.intacct.keys import (
    item_key_of,
    tag_description,
)
from adapters.intacct.xml import (
    element,
    format_amount,
    format_date,
    parse_amount,
    parse_date,
)
from domain.models import DraftBill, LedgerBill, Vendor
from domain.normalize import vendor_match_key

BILL = "APBILL"
ADJUSTMENT = "APADJUSTMENT"  # vendor credit notes are AP adjustments
VENDOR_FIELDS = ["RECORDNO", "VENDORID", "NAME", "TAXID", "STATUS"]
BILL_FIELDS = [
    "RECORDNO",
    "VENDORID",
    "RECORDID",
    "WHENCREATED",
    "CURRENCY",
    "TRX_TOTALENTERED",
    "STATE",
    "DESCRIPTION",
    "SUPDOCID",
]
SUPDOC_FIELDS = ["supdocid", "supdocname", "folder", "description"]
PERIOD_OBJECT = "REPORTINGPERIOD"


def cond(op: str, name: str, value: str) -> Element:
    return element(op, {"field": name, "value": value})


def all_of(*conds: Element) -> Element:
    return conds[0] if len(conds) == 1 else element("and", list(conds))


def any_of(*conds: Element) -> Element:
    return conds[0] if len(conds) == 1 else element("or", list(conds))


def query_element(
    obj: str,
    fields: Sequence[str],
    where: Element,
    *,
    caseinsensitive: bool = False,
    orderby: str | None = None,
    pagesize: int = 100,
    offset: int = 0,
) -> Element:
    q = element("query", {"object": obj, "select": {"field": list(fields)}})
    q.append(element("filter", where))
    if orderby:
        q.append(element("orderby", {"order": {"field": orderby, "ascending": ""}}))
    if caseinsensitive:
        q.append(element("options", {"caseinsensitive": True}))
    q.append(element("pagesize", str(pagesize)))
    if offset:
        q.append(element("offset", str(offset)))
    return q


def get_supdoc(key: str, fields: Sequence[str] | None = SUPDOC_FIELDS) -> Element:
    return element(
        "get",
        {"fields": {"field": list(fields)}} if fields else None,
        attrs={"object": "supdoc", "key": key},
    )


def as_int(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def bill_object(credit: bool) -> str:
    return ADJUSTMENT if credit else BILL


def ledger_bill(row: Mapping[str, Any], credit: bool) -> LedgerBill:
    total = parse_amount(str(row.get("TRX_TOTALENTERED") or "0"))
    return LedgerBill(
        id=str(row["RECORDNO"]),
        vendor_id=str(row.get("VENDORID", "")),
        number=str(row.get("RECORDID", "")),
        date=parse_date(str(row["WHENCREATED"])),
        currency=str(row.get("CURRENCY", "")),
        total=abs(total),  # adjustments carry negative amounts; the port keeps credits positive
        credit_note=credit,
        state=str(row.get("STATE") or "draft").lower(),
        item_key=item_key_of(str(row.get("DESCRIPTION") or "")),
    )


def vendor_of(row: Mapping[str, Any]) -> Vendor:
    return Vendor(
        id=str(row["VENDORID"]),
        name=str(row.get("NAME", "")),
        tax_number=str(row.get("TAXID") or "").strip() or None,
    )


def is_active(row: Mapping[str, Any]) -> bool:
    return str(row.get("STATUS", "active")).lower() in {"active", "t", "true", ""}


def probe_word(name: str, key: str) -> str | None:
    """The longest word of the name that survives normalisation: what NAME ``like`` finds."""
    tokens = set(key.split())
    words = [w for w in re.findall(r"[^\W_]+", name) if w.casefold() in tokens and len(w) >= 3]
    return max(words, key=len) if words else None


def pick_vendor(rows: list[dict[str, Any]], key: str, tax_number: str | None) -> Vendor | None:
    """The vendor rows name: same tax number first, else same normalised name; active and
    oldest first."""

    def tax(value: Any) -> str:
        return re.sub(r"[^0-9A-Z]", "", str(value or "").upper())

    chosen: list[dict[str, Any]] = []
    if tax_number and tax(tax_number):
        chosen = [r for r in rows if tax(r.get("TAXID")) == tax(tax_number)]
    if not chosen:
        chosen = [r for r in rows if vendor_match_key(str(r.get("NAME", ""))) == key]
    if not chosen:
        return None
    chosen.sort(key=lambda r: (not is_active(r), as_int(r.get("RECORDNO"))))
    return vendor_of(chosen[0])


def bill_element(vendor: Vendor, bill: DraftBill) -> Element:
    """The ``APBILL`` (or, for a credit note, ``APADJUSTMENT``) a draft bill is created as."""
    credit = bill.credit_note
    sign = Decimal(-1) if credit else Decimal(1)
    lines = []
    for line in bill.lines:
        dims = line.dimensions
        # With a tax code the line goes in net and Intacct books the tax entry (VAT/GST
        # companies); without one, the tax stays in the expense, as US companies book it.
        taxed = bool(line.tax_code)
        item: dict[str, Any] = {
            "ACCOUNTNO": line.gl_account,
            "TRX_AMOUNT": format_amount(sign * (line.net if taxed else line.total)),
            "ENTRYDESCRIPTION": line.description[:1000],
            "LOCATIONID": dims.location,
            "DEPARTMENTID": dims.department,
            "PROJECTID": dims.project,
        }
        if taxed:
            item["TAXENTRIES"] = {
                "TAXENTRY": [{"DETAILID": line.tax_code, "TRX_TAX": format_amount(sign * line.tax)}]
            }
        lines.append(item)
    header: dict[str, Any] = {
        "WHENCREATED": format_date(bill.date),
        "VENDORID": vendor.id,
        "RECORDID": bill.number,
        "DESCRIPTION": tag_description(bill.memo, bill.item_key),
        "CURRENCY": bill.currency,
    }
    if credit:
        header["ACTION"] = "Draft"
        header["APADJUSTMENTITEMS"] = {"APADJUSTMENTITEM": lines}
        return element(ADJUSTMENT, header)
    header["WHENDUE"] = format_date(bill.due_date)
    header["ACTION"] = "Draft"
    header["APBILLITEMS"] = {"APBILLITEM": lines}
    return element(BILL, header)


def created_bill(recordno: str, vendor: Vendor, bill: DraftBill) -> LedgerBill:
    """The bill ``bill_element`` has just created as record ``recordno``, as a read would
    give it: the total is the sum of the amounts as sent, which is what Intacct adds up."""
    total = Decimal(0)
    for line in bill.lines:
        taxed = bool(line.tax_code)
        total += parse_amount(format_amount(line.net if taxed else line.total))
        if taxed:
            total += parse_amount(format_amount(line.tax))
    return LedgerBill(
        id=recordno,
        vendor_id=vendor.id,
        number=bill.number,
        date=bill.date,
        currency=bill.currency,
        total=total,
        credit_note=bill.credit_note,
        state="draft",
        item_key=bill.item_key,
    )
