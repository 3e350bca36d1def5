"""Reading in the Intacct sandbox: ``query``, ``readByQuery``, ``readMore``, ``read`` and
``readByName``.

``query`` takes a ``<filter>`` of conditions (``sandboxes.intacct.filters``) and
``<orderby>``; ``readByQuery`` takes the SQL-like text (``sandboxes.intacct.sql``) and pages
through ``readMore`` with a result id.
"""

from __future__ import annotations

import functools
import secrets
from typing import Any
from xml.etree.ElementTree import Element

from adapters.intacct.xml import element
from sandboxes.intacct.core import Context, Reply, SandboxCore
from sandboxes.intacct.errors import E_QUERY, E_READ, refuse
from sandboxes.intacct.filters import bounded, check_fields, field_list, matches, row_key
from sandboxes.intacct.sql import parse_sql
from sandboxes.intacct.state import Company, text_of


class QueriesMixin(SandboxCore):
    """The read functions, with paging and result sets for readMore."""

    def _query(self, company: Company, body: Element, ctx: Context) -> Reply:
        obj = text_of(body, "object").upper()
        rows = company.rows(obj)
        select = body.find("select")
        fields = [
            f.text.strip().upper()
            for f in (select.findall("field") if select is not None else [])
            if f.text
        ]
        if not fields:
            raise refuse(E_QUERY, "Query Failed", "select must name at least one field.")
        check_fields(obj, fields)
        options = body.find("options")
        ci = text_of(options, "caseinsensitive").lower() == "true"
        flt = body.find("filter")
        if flt is not None:
            conds = list(flt)
            if len(conds) != 1:
                raise refuse(E_QUERY, "Query Failed", "filter must hold exactly one condition.")
            rows = [r for r in rows if matches(conds[0], r, ci)]
        orderby = body.find("orderby")
        if orderby is not None:
            for order in reversed(orderby.findall("order")):
                name = text_of(order, "field").upper()
                check_fields(obj, [name])
                descending = order.find("descending") is not None
                rows.sort(key=functools.partial(row_key, name), reverse=descending)
        pagesize = bounded(text_of(body, "pagesize"), 100, 2000)
        offset = max(int(text_of(body, "offset") or 0), 0)
        page = rows[offset : offset + pagesize]
        data = element(
            "data",
            [element(obj, {f: str(r.get(f, "")) for f in fields}) for r in page],
            {
                "listtype": obj,
                "totalcount": str(len(rows)),
                "offset": str(offset),
                "count": str(len(page)),
                "numremaining": str(max(len(rows) - offset - len(page), 0)),
            },
        )
        return data, None

    def _read_by_query(self, company: Company, body: Element, ctx: Context) -> Reply:
        obj = text_of(body, "object").upper()
        rows = company.rows(obj)
        fields = field_list(obj, text_of(body, "fields"))
        text = text_of(body, "query")
        if text:
            try:
                predicate = parse_sql(text)
            except ValueError as exc:
                raise refuse(E_QUERY, "Query Failed", f"Invalid query: {exc}") from None
            rows = [r for r in rows if predicate(r)]
        pagesize = bounded(text_of(body, "pagesize"), 100, 1000)
        return self._page(obj, rows, fields, pagesize, 0), None

    def _page(
        self, obj: str, rows: list[dict[str, Any]], fields: list[str], pagesize: int, offset: int
    ) -> Element:
        page = rows[offset : offset + pagesize]
        remaining = max(len(rows) - offset - len(page), 0)
        result_id = ""
        if remaining:
            result_id = secrets.token_hex(8)
            self._result_sets[result_id] = {
                "object": obj,
                "rows": rows,
                "fields": fields,
                "pagesize": pagesize,
                "offset": offset + len(page),
            }
        return element(
            "data",
            [element(obj.lower(), {f: str(r.get(f, "")) for f in fields}) for r in page],
            {
                "listtype": obj.lower(),
                "count": str(len(page)),
                "totalcount": str(len(rows)),
                "numremaining": str(remaining),
                "resultId": result_id,
            },
        )

    def _read_more(self, company: Company, body: Element, ctx: Context) -> Reply:
        result_id = text_of(body, "resultId")
        state = self._result_sets.pop(result_id, None)
        if state is None:
            raise refuse(
                E_READ,
                "There was an error processing the request.",
                f"Unknown resultId '{result_id}'.",
            )
        return self._page(
            state["object"], state["rows"], state["fields"], state["pagesize"], state["offset"]
        ), None

    def _read(self, company: Company, body: Element, ctx: Context) -> Reply:
        obj = text_of(body, "object").upper()
        rows = company.rows(obj)
        fields = field_list(obj, text_of(body, "fields"))
        keys = {k.strip() for k in text_of(body, "keys").split(",") if k.strip()}
        found = [r for r in rows if not keys or r.get("RECORDNO") in keys]
        return element(
            "data",
            [element(obj.lower(), {f: str(r.get(f, "")) for f in fields}) for r in found],
            {"listtype": obj.lower(), "count": str(len(found))},
        ), None

    def _read_by_name(self, company: Company, body: Element, ctx: Context) -> Reply:
        obj = text_of(body, "object").upper()
        if obj != "VENDOR":
            raise refuse(
                E_READ, "There was an error processing the request.", f"readByName on {obj}."
            )
        fields = field_list(obj, text_of(body, "fields"))
        keys = {k.strip().casefold() for k in text_of(body, "keys").split(",") if k.strip()}
        found = [r for r in company.rows(obj) if r["VENDORID"].casefold() in keys]
        return element(
            "data",
            [element("vendor", {f: str(r.get(f, "")) for f in fields}) for r in found],
            {"listtype": "vendor", "count": str(len(found))},
        ), None
