"""The legacy ``get_list`` of the Intacct sandbox (2.1): vendors and bills.

``<get_list object="vendor" maxitems="10" start="0">`` with an optional ``<filter>`` of
``<expression><field/><operator/><value/></expression>`` (``=``, ``!=``, ``<``, ``<=``,
``>``, ``>=``, ``like``, ``is null``, ``is not null``) joined by
``<logical logical_operator="and|or">``, ``<sorts><sortfield order="asc|desc">``, and
``<fields><field>`` to name what comes back. Field names are the legacy lower-case ones
(``vendorid``, ``billno``, ``totaldue``); dates come back as ``<year><month><day>``. The
answer is ``<data listtype="vendor" count totalcount start end>``. An unknown object or
field fails with ``DL02000001``, the read error our reference records for legacy reads.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any
from xml.etree.ElementTree import Element, SubElement

from adapters.intacct.xml import parse_date
from sandboxes.intacct.core import Context, Reply, SandboxCore
from sandboxes.intacct.errors import E_READ, refuse
from sandboxes.intacct.filters import COMPARE, bounded, like, row_key, typed_value
from sandboxes.intacct.state import Company, text_of

LEGACY_FIELDS: dict[str, tuple[str, dict[str, str]]] = {
    "vendor": (
        "VENDOR",
        {
            "recordno": "RECORDNO",
            "vendorid": "VENDORID",
            "name": "NAME",
            "parentid": "PARENTID",
            "termname": "TERMNAME",
            "vendtype": "VENDTYPE",
            "taxid": "TAXID",
            "creditlimit": "CREDITLIMIT",
            "totaldue": "TOTALDUE",
            "onhold": "ONHOLD",
            "status": "STATUS",
            "currency": "CURRENCY",
            "whenmodified": "WHENMODIFIED",
        },
    ),
    "bill": (
        "APBILL",
        {
            "key": "RECORDNO",
            "vendorid": "VENDORID",
            "billno": "RECORDID",
            "ponumber": "DOCNUMBER",
            "description": "DESCRIPTION",
            "termname": "TERMNAME",
            "datecreated": "WHENCREATED",
            "dateposted": "WHENPOSTED",
            "datedue": "WHENDUE",
            "datepaid": "WHENPAID",
            "totalamount": "TRX_TOTALENTERED",
            "totalpaid": "TRX_TOTALPAID",
            "totaldue": "TRX_TOTALDUE",
            "state": "STATE",
            "currency": "CURRENCY",
            "basecurr": "BASECURR",
            "supdocid": "SUPDOCID",
            "whenmodified": "WHENMODIFIED",
        },
    ),
}

LEGACY_DATES = frozenset({"datecreated", "dateposted", "datedue", "datepaid"})

OPERATORS = {
    "=": "equalto",
    "!=": "notequalto",
    "<": "lessthan",
    "<=": "lessthanorequalto",
    ">": "greaterthan",
    ">=": "greaterthanorequalto",
}


class ListsMixin(SandboxCore):
    """get_list."""

    def _get_list(self, company: Company, body: Element, ctx: Context) -> Reply:
        kind = body.get("object", "").strip().lower()
        if kind not in LEGACY_FIELDS:
            raise refuse(
                E_READ,
                "There was an error processing the request.",
                f"get_list does not know object '{kind}'.",
            )
        obj, names = LEGACY_FIELDS[kind]
        rows = company.rows(obj)
        flt = body.find("filter")
        if flt is not None and len(flt):
            rows = [r for r in rows if legacy_match(flt[0], r, names)]
        for sort in reversed(body.findall("sorts/sortfield")):
            name = generic(names, (sort.text or "").strip())
            descending = sort.get("order", "asc").lower() == "desc"
            rows.sort(key=functools.partial(row_key, name), reverse=descending)
        wanted = [(f.text or "").strip().lower() for f in body.findall("fields/field")]
        wanted = [w for w in wanted if w] or list(names)
        for w in wanted:
            generic(names, w)
        start = max(int(body.get("start", "0") or 0), 0)
        maxitems = bounded(body.get("maxitems", ""), 100, 1000)
        page = rows[start : start + maxitems]
        data = Element(
            "data",
            {
                "listtype": kind,
                "count": str(len(page)),
                "totalcount": str(len(rows)),
                "start": str(start),
                "end": str(start + len(page) - 1 if page else start),
            },
        )
        for row in page:
            row = company.finish(obj, row, ctx.base_url)
            item = SubElement(data, kind)
            for w in wanted:
                put(item, w, str(row.get(names[w], "")))
        return data, None


def generic(names: Mapping[str, str], legacy: str) -> str:
    try:
        return names[legacy.lower()]
    except KeyError:
        raise refuse(
            E_READ,
            "There was an error processing the request.",
            f"Invalid field '{legacy}' for get_list.",
        ) from None


def put(parent: Element, tag: str, value: str) -> None:
    el = SubElement(parent, tag)
    if tag in LEGACY_DATES and value:
        day = parse_date(value)
        for part, number in (("year", day.year), ("month", day.month), ("day", day.day)):
            SubElement(el, part).text = f"{number:02d}" if part != "year" else str(number)
    else:
        el.text = value


def legacy_match(cond: Element, row: Mapping[str, Any], names: Mapping[str, str]) -> bool:
    if cond.tag == "logical":
        op = cond.get("logical_operator", "and").lower()
        parts = [legacy_match(c, row, names) for c in cond]
        return all(parts) if op == "and" else any(parts)
    if cond.tag != "expression":
        raise refuse(
            E_READ, "There was an error processing the request.", f"Unknown filter <{cond.tag}>."
        )
    name = generic(names, text_of(cond, "field"))
    operator = " ".join(text_of(cond, "operator").lower().split())
    raw = str(row.get(name, ""))
    value = text_of(cond, "value")
    if operator in {"is null", "is not null"}:
        return (raw == "") == (operator == "is null")
    if operator in {"like", "not like"}:
        return like(value, raw, False) == (operator == "like")
    if operator not in OPERATORS:
        raise refuse(
            E_READ, "There was an error processing the request.", f"Unknown operator '{operator}'."
        )
    try:
        return COMPARE[OPERATORS[operator]](
            typed_value(name, raw, False), typed_value(name, value, False)
        )
    except ValueError as exc:
        raise refuse(
            E_READ, "There was an error processing the request.", f"Bad value: {exc}"
        ) from None
