"""Reading in the Intacct sandbox: ``query``, ``readByQuery``, ``readMore``, ``read`` and
``readByName``.

``query`` takes a ``<filter>`` of conditions (``sandboxes.intacct.filters``) and
``<orderby>``; ``readByQuery`` takes the SQL-like text (``sandboxes.intacct.sql``) and pages
through ``readMore`` with a result id.
"""

from __future__ import annotations

import functools
import secrets
from decimal import Decimal, InvalidOperation
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
        fields, aggregates = selection(obj, body.find("select"))
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
        if aggregates:
            rows = aggregated(rows, fields, aggregates)
            fields = [*fields, *(label for label, _, _ in aggregates)]
        pagesize = bounded(text_of(body, "pagesize"), 100, 2000)
        offset = max(int(text_of(body, "offset") or 0), 0)
        page = rows[offset : offset + pagesize]
        data = element(
            "data",
            [
                element(obj, {f: str(r.get(f, "")) for f in fields})
                for r in (page if aggregates else self._finish(company, obj, page, ctx))
            ],
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
        return self._page(company, ctx, obj, rows, fields, pagesize, 0), None

    def _finish(
        self, company: Company, obj: str, rows: list[dict[str, Any]], ctx: Context
    ) -> list[dict[str, Any]]:
        return [company.finish(obj, r, ctx.base_url) for r in rows]

    def _page(
        self,
        company: Company,
        ctx: Context,
        obj: str,
        rows: list[dict[str, Any]],
        fields: list[str],
        pagesize: int,
        offset: int,
    ) -> Element:
        page = self._finish(company, obj, rows[offset : offset + pagesize], ctx)
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
            company,
            ctx,
            state["object"],
            state["rows"],
            state["fields"],
            state["pagesize"],
            state["offset"],
        ), None

    def _read(self, company: Company, body: Element, ctx: Context) -> Reply:
        obj = text_of(body, "object").upper()
        rows = company.rows(obj)
        fields = field_list(obj, text_of(body, "fields"))
        keys = {k.strip() for k in text_of(body, "keys").split(",") if k.strip()}
        found = [r for r in rows if not keys or r.get("RECORDNO") in keys]
        return element(
            "data",
            [
                element(obj.lower(), {f: str(r.get(f, "")) for f in fields})
                for r in self._finish(company, obj, found, ctx)
            ],
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
            [
                element("vendor", {f: str(r.get(f, "")) for f in fields})
                for r in self._finish(company, obj, found, ctx)
            ],
            {"listtype": "vendor", "count": str(len(found))},
        ), None


AGGREGATES = ("count", "sum", "avg", "min", "max")


def selection(obj: str, select: Element | None) -> tuple[list[str], list[tuple[str, str, str]]]:
    """The plain fields of a ``<select>`` and its aggregates as (label, function, field).

    A count comes back as ``COUNT.<field>`` (Intacct's documented answer); the other
    aggregates under the field's own name, as the documented ``sum`` example shows.
    """
    fields: list[str] = []
    aggregates: list[tuple[str, str, str]] = []
    for child in select if select is not None else []:
        name = (child.text or "").strip().upper()
        tag = child.tag.lower()
        if not name:
            continue
        if tag == "field":
            fields.append(name)
        elif tag in AGGREGATES:
            aggregates.append((f"COUNT.{name}" if tag == "count" else name, tag, name))
        else:
            raise refuse(E_QUERY, "Query Failed", f"Unknown select element <{child.tag}>.")
    if not fields and not aggregates:
        raise refuse(E_QUERY, "Query Failed", "select must name at least one field.")
    check_fields(obj, [*fields, *(name for _, _, name in aggregates)])
    return fields, aggregates


def aggregated(
    rows: list[dict[str, Any]], group_by: list[str], aggregates: list[tuple[str, str, str]]
) -> list[dict[str, Any]]:
    """One row per distinct value of the plain fields, with each aggregate over its rows."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(str(row.get(f, "")) for f in group_by), []).append(row)
    if not groups and not group_by:
        groups[()] = []
    out = []
    for key, members in groups.items():
        result: dict[str, Any] = dict(zip(group_by, key, strict=True))
        for label, function, name in aggregates:
            values = [str(r.get(name, "")) for r in members if str(r.get(name, "")) != ""]
            result[label] = aggregate(function, values)
        out.append(result)
    return out


def aggregate(function: str, values: list[str]) -> str:
    if function == "count":
        return str(len(values))
    if not values:
        return ""
    try:
        numbers = [Decimal(v) for v in values]
    except InvalidOperation:
        raise refuse(E_QUERY, "Query Failed", f"{function} needs a numeric field.") from None
    if function == "sum":
        return format(sum(numbers, Decimal(0)), "f")
    if function == "avg":
        return format(sum(numbers, Decimal(0)) / len(numbers), "f")
    return format(min(numbers) if function == "min" else max(numbers), "f")
