"""The 2.1 (legacy) shapes of AP bills, read into the generic field names.

``create_bill`` and ``update_bill`` name fields in lower case (``billno``, ``glaccountno``,
``amount``, ``memo``) and dates as ``<year><month><day>``; these functions turn them into
the APBILL / APBILLITEM names the sandbox keeps.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from xml.etree.ElementTree import Element

from adapters.intacct.xml import ErrorDetail, format_date
from sandboxes.intacct.errors import E_FIELD, cannot_create
from sandboxes.intacct.state import text_of

HEADER = {
    "vendorid": "VENDORID",
    "billno": "RECORDID",
    "ponumber": "DOCNUMBER",
    "description": "DESCRIPTION",
    "termname": "TERMNAME",
    "action": "ACTION",
    "currency": "CURRENCY",
    "basecurr": "BASECURR",
    "supdocid": "SUPDOCID",
    "onhold": "ONHOLD",
}

DATES = {"datecreated": "WHENCREATED", "dateposted": "WHENPOSTED", "datedue": "WHENDUE"}

LINE = {
    "glaccountno": "ACCOUNTNO",
    "accountlabel": "ACCOUNTLABEL",
    "offsetglaccountno": "OFFSETGLACCOUNTNO",
    "amount": "TRX_AMOUNT",
    "memo": "ENTRYDESCRIPTION",
    "locationid": "LOCATIONID",
    "departmentid": "DEPARTMENTID",
    "projectid": "PROJECTID",
    "taskid": "TASKID",
    "classid": "CLASSID",
    "customerid": "CUSTOMERID",
    "vendorid": "VENDORID",
    "employeeid": "EMPLOYEEID",
    "itemid": "ITEMID",
    "contractid": "CONTRACTID",
    "warehouseid": "WAREHOUSEID",
    "billable": "BILLABLE",
}


def legacy_header(body: Element) -> dict[str, str]:
    """The header fields a ``create_bill`` or ``update_bill`` gives, by generic name."""
    fields: dict[str, str] = {}
    for tag, name in HEADER.items():
        value = text_of(body, tag)
        if value:
            fields[name] = value
    for tag, name in DATES.items():
        el = body.find(tag)
        if el is not None:
            fields[name] = legacy_date(el, tag)
    return fields


def legacy_line(item: Element) -> dict[str, Any]:
    """A ``lineitem`` or ``updatelineitem`` by generic name; only the fields it gives."""
    line: dict[str, Any] = {name: text_of(item, tag) for tag, name in LINE.items()}
    line = {k: v for k, v in line.items() if v}
    taxes = [
        {"DETAILID": text_of(t, "detailid"), "TRX_TAX": text_of(t, "trx_tax") or "0"}
        for t in item.findall("taxentries/taxentry")
    ]
    if taxes:
        line["TAXENTRIES"] = {"TAXENTRY": taxes}
    return line


def legacy_date(el: Element, tag: str) -> str:
    try:
        day = dt.date(int(text_of(el, "year")), int(text_of(el, "month")), int(text_of(el, "day")))
    except ValueError:
        raise cannot_create(
            "APBILL",
            ErrorDetail(
                E_FIELD, "Invalid date", f"{tag} must hold a valid <year>, <month> and <day>."
            ),
        ) from None
    return format_date(day)
