"""The legacy ``update_bill`` of the Intacct sandbox (2.1 shape).

``<update_bill key="RECORDNO">`` changes header fields (``billno``, ``description``,
``datedue`` as ``<year><month><day>`` ...) and, under ``<updatebillitems>``, changes an
existing line (``<updatelineitem line_num="1">``, only the fields given) or adds one
(``<lineitem>``). The bill is checked again as on create: vendor, accounts, dimensions,
amounts, attachment and closed periods; the totals are worked out again.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from xml.etree.ElementTree import Element

from adapters.intacct.xml import ErrorDetail, parse_date
from sandboxes.intacct.bills import BillsMixin
from sandboxes.intacct.core import Context, Reply
from sandboxes.intacct.errors import CLOSED_TEXT, E_CREATE, E_FIELD, Refusal, refuse
from sandboxes.intacct.legacy import legacy_header, legacy_line
from sandboxes.intacct.objects import READ_ONLY
from sandboxes.intacct.state import OBJECT_FIELDS, Company, money, now_text
from sandboxes.intacct.vendors import vendor_by_id

CANNOT = "Could not update APBill record!"


class BillUpdatesMixin(BillsMixin):
    """update_bill."""

    def _update_bill(self, company: Company, body: Element, ctx: Context) -> Reply:
        key = body.get("key", "").strip()
        record = company.documents.get(int(key)) if key.isdigit() else None
        if record is None or record["_object"] != "APBILL":
            raise refuse(E_CREATE, CANNOT, f"No APBILL with RECORDNO '{key}'.")
        if Decimal(str(record.get("TRX_TOTALPAID") or 0)):
            raise refuse(
                E_CREATE,
                CANNOT,
                f"Bill {record.get('RECORDID') or key} has payments applied to it and cannot "
                "be changed.",
            )
        self._check_open(company, record.get("WHENPOSTED") or record.get("WHENCREATED"))
        fields = legacy_header(body)
        self._check_open(company, fields.get("WHENPOSTED") or fields.get("WHENCREATED"))
        vendor = record.get("VENDORNAME", "")
        if "VENDORID" in fields:
            found = vendor_by_id(company, fields["VENDORID"])
            if found is None:
                raise refuse(
                    E_CREATE, CANNOT, f"Vendor '{fields['VENDORID']}' specified is not valid."
                )
            vendor = found["NAME"]
        supdoc = fields.get("SUPDOCID")
        if supdoc and supdoc not in company.supdocs:
            raise refuse(E_CREATE, CANNOT, f"Attachment '{supdoc}' does not exist.")
        lines, total = self._updated_lines(company, record, body.find("updatebillitems"))
        new: dict[str, Any] = {
            **record,
            **{k: v for k, v in fields.items() if k in OBJECT_FIELDS["APBILL"]},
        }
        for name in READ_ONLY & fields.keys():
            new[name] = record.get(name, "")
        action = fields.get("ACTION", "").casefold()
        if action in {"draft", "submit"}:
            new["STATE"] = "Draft" if action == "draft" else "Posted"
        new.update(
            {
                "VENDORNAME": vendor,
                "TRX_TOTALENTERED": money(total),
                "TOTALENTERED": money(total),
                "TRX_TOTALDUE": money(total),
                "TOTALDUE": money(total),
                "WHENMODIFIED": now_text(),
                "_lines": lines,
            }
        )
        company.documents[int(key)] = new
        return None, key

    def _check_open(self, company: Company, when: str | None) -> None:
        if when and company.period_closed(parse_date(when)):
            raise Refusal(ErrorDetail(E_CREATE, CANNOT, CLOSED_TEXT.format(date=when)))

    def _updated_lines(
        self, company: Company, record: dict[str, Any], items: Element | None
    ) -> tuple[list[dict[str, Any]], Decimal]:
        raw = [as_input(line) for line in record["_lines"]]
        for item in items if items is not None else []:
            if item.tag == "updatelineitem":
                line_num = item.get("line_num", "")
                if not line_num.isdigit() or not 1 <= int(line_num) <= len(raw):
                    raise refuse(
                        E_FIELD, CANNOT, f"The bill has no line {line_num or '(none)'} to update."
                    )
                raw[int(line_num) - 1] = {**raw[int(line_num) - 1], **legacy_line(item)}
            elif item.tag == "lineitem":
                raw.append(legacy_line(item))
            else:
                raise refuse(E_FIELD, CANNOT, f"Unknown element <{item.tag}> in updatebillitems.")
        lines: list[dict[str, Any]] = []
        total = Decimal(0)
        for number, line in enumerate(raw, start=1):
            try:
                clean, amount = self._line(company, "APBILL", number, line)
            except Refusal as refusal:
                raise Refusal(refusal.errors[0], ErrorDetail(E_CREATE, CANNOT)) from None
            clean["LINE_NO"] = str(number)
            clean.setdefault("RECORDNO", str(self._next_recordno()))
            lines.append(clean)
            total += amount
        return lines, total


def as_input(line: dict[str, Any]) -> dict[str, Any]:
    """A kept line in the shape a request gives one (tax entries under TAXENTRY)."""
    out = dict(line)
    if isinstance(line.get("TAXENTRIES"), list):
        out["TAXENTRIES"] = {"TAXENTRY": list(line["TAXENTRIES"])}
    return out
