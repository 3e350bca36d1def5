"""APBILL and APADJUSTMENT in the Intacct sandbox: creating and updating AP documents.

Both the generic ``create`` (``<APBILL>`` with ``<APBILLITEMS>``) and the legacy
``create_bill`` land here. A document is refused when its vendor, account, attachment or
dates are wrong, and when it is dated in a closed period (with Intacct's own text).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from xml.etree.ElementTree import Element

from adapters.intacct.xml import (
    ErrorDetail,
    element,
    element_value,
    format_date,
    parse_amount,
    parse_date,
)
from sandboxes.intacct.core import Context, Reply, SandboxCore
from sandboxes.intacct.errors import (
    CLOSED_TEXT,
    E_CREATE,
    E_FIELD,
    Refusal,
    cannot_create,
    closed_refusal,
    missing,
    refuse,
)
from sandboxes.intacct.legacy import legacy_header, legacy_line
from sandboxes.intacct.objects import READ_ONLY
from sandboxes.intacct.state import (
    DIMENSIONS,
    DOCUMENTS,
    OBJECT_FIELDS,
    Company,
    money,
    now_text,
)
from sandboxes.intacct.vendors import vendor_by_id


class BillsMixin(SandboxCore):
    """Creating and updating AP bills and adjustments, generic and legacy."""

    def _create_document(
        self,
        company: Company,
        obj: str,
        fields: dict[str, str],
        lines: list[dict[str, Any]],
    ) -> int:
        draft = fields.get("ACTION", "").casefold() == "draft"
        vendor_id = fields.get("VENDORID", "")
        vendor = vendor_by_id(company, vendor_id) if vendor_id else None
        if not vendor_id and not draft:
            raise cannot_create(obj, missing("VENDORID"))
        if vendor_id and vendor is None:
            raise cannot_create(
                obj,
                ErrorDetail(
                    E_CREATE, "Invalid Vendor", f"Vendor '{vendor_id}' specified is not valid."
                ),
            )
        created = self._date(obj, fields, "WHENCREATED", required=not draft)
        posted = self._date(obj, fields, "WHENPOSTED", required=False)
        due = self._date(obj, fields, "WHENDUE", required=False)
        if obj == "APBILL" and not draft and due is None and not fields.get("TERMNAME"):
            raise cannot_create(obj, missing("WHENDUE"))
        posting = posted or created
        if posting is not None and company.period_closed(posting):
            raise closed_refusal(obj, posting)
        if not lines:
            raise cannot_create(
                obj,
                ErrorDetail(E_FIELD, "Required field missing", "A bill needs at least one line."),
            )
        total = Decimal(0)
        clean_lines = []
        for number, line in enumerate(lines, start=1):
            clean, amount = self._line(company, obj, number, line)
            clean_lines.append(clean)
            total += amount
        supdoc = fields.get("SUPDOCID", "")
        if supdoc and supdoc not in company.supdocs:
            raise cannot_create(
                obj,
                ErrorDetail(
                    E_CREATE, "Invalid attachment", f"Attachment '{supdoc}' does not exist."
                ),
            )
        recordno = self._next_recordno()
        now = now_text()
        for line_no, line in enumerate(clean_lines, start=1):
            line.update({"RECORDNO": str(self._next_recordno()), "LINE_NO": str(line_no)})
        record: dict[str, Any] = {name: "" for name in OBJECT_FIELDS[obj]}
        record.update(
            {k: v for k, v in fields.items() if k in OBJECT_FIELDS[obj] and k not in READ_ONLY}
        )
        record.update(
            {
                "RECORDNO": str(recordno),
                "VENDORNAME": vendor["NAME"] if vendor else "",
                "WHENCREATED": format_date(created) if created else "",
                "WHENPOSTED": format_date(posted) if posted else "",
                "WHENDUE": format_date(due) if due else "",
                "STATE": "Draft" if draft else "Posted",
                "TRX_TOTALENTERED": money(total),
                "TOTALENTERED": money(total),
                "TRX_TOTALDUE": money(total),
                "TOTALDUE": money(total),
                "TRX_TOTALPAID": "0.00",
                "TOTALPAID": "0.00",
                "WHENMODIFIED": now,
                "RECORDTYPE": obj.lower(),
                "_object": obj,
                "_lines": clean_lines,
            }
        )
        company.documents[recordno] = record
        self.stats.bills_created += 1
        return recordno

    def _date(
        self, obj: str, fields: Mapping[str, str], name: str, *, required: bool
    ) -> dt.date | None:
        raw = fields.get(name, "")
        if not raw:
            if required:
                raise cannot_create(obj, missing(name))
            return None
        try:
            return parse_date(raw)
        except ValueError:
            raise cannot_create(
                obj,
                ErrorDetail(
                    E_FIELD, "Invalid date", f"Illegal format for {name}: '{raw}'. Use mm/dd/yyyy."
                ),
            ) from None

    def _line(
        self, company: Company, obj: str, number: int, line: Mapping[str, Any]
    ) -> tuple[dict[str, Any], Decimal]:
        account = str(line.get("ACCOUNTNO") or "")
        if not account and not line.get("ACCOUNTLABEL"):
            raise cannot_create(obj, missing(f"ACCOUNTNO (line {number})"))
        if account and company.accounts is not None and account not in company.accounts:
            raise cannot_create(
                obj, ErrorDetail(E_CREATE, "Invalid account", f"Account {account} is not valid")
            )
        for dimension in DIMENSIONS:
            check_dimension(company, obj, dimension, str(line.get(dimension) or ""))
        try:
            amount = parse_amount(str(line.get("TRX_AMOUNT") or ""))
        except ValueError:
            raise cannot_create(
                obj,
                ErrorDetail(
                    E_FIELD,
                    "Invalid amount",
                    f"Illegal format for TRX_AMOUNT on line {number}: "
                    f"'{line.get('TRX_AMOUNT', '')}'.",
                ),
            ) from None
        taxes = []
        raw_taxes = line.get("TAXENTRIES")
        entries = raw_taxes.get("TAXENTRY", []) if isinstance(raw_taxes, dict) else []
        for entry in entries if isinstance(entries, list) else [entries]:
            if not isinstance(entry, dict) or not entry.get("DETAILID"):
                raise cannot_create(obj, missing(f"TAXENTRY.DETAILID (line {number})"))
            tax = parse_amount(str(entry.get("TRX_TAX") or "0"))
            taxes.append({"DETAILID": str(entry["DETAILID"]), "TRX_TAX": money(tax)})
            amount += tax
        clean: dict[str, Any] = {k: v for k, v in line.items() if isinstance(v, str)}
        clean["TRX_AMOUNT"] = money(parse_amount(str(line["TRX_AMOUNT"])))
        if taxes:
            clean["TAXENTRIES"] = taxes
        return clean, amount

    def _update_document(
        self, company: Company, obj: str, obj_el: Element, values: dict[str, str]
    ) -> Element:
        label = {"APBILL": "APBill", "APADJUSTMENT": "APAdjustment"}[obj]
        recordno = values.get("RECORDNO", "")
        record = company.documents.get(int(recordno)) if recordno.isdigit() else None
        if record is None or record["_object"] != obj:
            raise refuse(
                E_CREATE,
                f"Could not update {label} record!",
                f"No {obj} with RECORDNO '{recordno}'.",
            )
        when = record.get("WHENPOSTED") or record.get("WHENCREATED")
        if when and company.period_closed(parse_date(when)):
            raise Refusal(
                ErrorDetail(
                    E_CREATE, f"Could not update {label} record!", CLOSED_TEXT.format(date=when)
                ),
            )
        supdoc = values.get("SUPDOCID")
        if supdoc and supdoc not in company.supdocs:
            raise refuse(
                E_CREATE,
                f"Could not update {label} record!",
                f"Attachment '{supdoc}' does not exist.",
            )
        changes = {
            k: v for k, v in values.items() if k in OBJECT_FIELDS[obj] and k not in READ_ONLY
        }
        new = {**record, **changes, "WHENMODIFIED": now_text()}
        company.documents[int(recordno)] = new
        return element(obj.lower(), {"RECORDNO": recordno})

    def _create_bill(self, company: Company, body: Element, ctx: Context) -> Reply:
        fields = legacy_header(body)
        if "WHENDUE" not in fields and "TERMNAME" not in fields:
            raise cannot_create("APBILL", missing("datedue or termname"))
        items = body.find("billitems")
        lines = [legacy_line(i) for i in (items.findall("lineitem") if items is not None else [])]
        recordno = self._create_document(company, "APBILL", fields, lines)
        return None, str(recordno)


def document_fields(el: Element, obj: str) -> tuple[dict[str, str], list[dict[str, Any]]]:
    fields: dict[str, str] = {}
    lines: list[dict[str, Any]] = []
    items_tag = DOCUMENTS[obj]
    for child in el:
        tag = child.tag.upper()
        if tag == items_tag:
            for item in child:
                value = element_value(item)
                if isinstance(value, dict):
                    lines.append({k.upper(): v for k, v in value.items()})
        elif len(child) == 0:
            fields[tag] = (child.text or "").strip()
    return fields, lines


# What Intacct says of a dimension id the company does not have (BL01001973, then the
# "Could not create" wrapper). The department, location and project texts are Intacct's
# (fyle's error catalogue, see the reference); the class text follows the project's form.
DIMENSION_TEXT = {
    "DEPARTMENTID": "Department '{v}': '{v}' specified is not valid.",
    "LOCATIONID": "The location '{v}' is invalid.",
    "PROJECTID": "Invalid Project '{v}' specified.",
    "CLASSID": "Invalid Class '{v}' specified.",
}


def check_dimension(company: Company, obj: str, dimension: str, value: str) -> None:
    known = company.dimensions.get(dimension)
    if value and known is not None and value not in known:
        raise cannot_create(
            obj,
            ErrorDetail(
                E_CREATE,
                f"Invalid {dimension[:-2].title()}",
                DIMENSION_TEXT[dimension].format(v=value),
            ),
        )
