"""The Intacct sandbox's ``query`` filters: conditions over rows of field texts.

Fields are compared as Intacct types them: dates (mm/dd/yyyy) and numbers by value, text
as is or case-insensitively. ``like`` takes ``%`` and ``_`` wildcards.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from xml.etree.ElementTree import Element

from adapters.intacct.xml import parse_amount, parse_date
from sandboxes.intacct.errors import E_QUERY, refuse
from sandboxes.intacct.state import DATE_FIELDS, NUMBER_FIELDS, OBJECT_FIELDS, text_of


def check_fields(obj: str, fields: Iterable[str]) -> None:
    known = OBJECT_FIELDS.get(obj, ())
    bad = [f for f in fields if f not in known]
    if bad:
        raise refuse(E_QUERY, "Query Failed", f"Invalid field(s) for {obj}: {', '.join(bad)}")


def field_list(obj: str, text: str) -> list[str]:
    if not text or text.strip() == "*":
        return list(OBJECT_FIELDS.get(obj, ()))
    fields = [f.strip().upper() for f in text.split(",") if f.strip()]
    check_fields(obj, fields)
    return fields


def bounded(text: str, default: int, maximum: int) -> int:
    try:
        value = int(text) if text else default
    except ValueError:
        value = default
    return min(max(value, 1), maximum)


def typed_value(name: str, value: str, ci: bool) -> Any:
    if name in DATE_FIELDS:
        return parse_date(value) if value else None
    if name in NUMBER_FIELDS:
        return parse_amount(value) if value else None
    return value.casefold() if ci else value


def row_key(name: str, row: Mapping[str, Any]) -> tuple[int, Any]:
    return sort_key(name, str(row.get(name, "")))


def sort_key(name: str, value: str) -> tuple[int, Any]:
    try:
        typed = typed_value(name, value, False)
    except ValueError:
        typed = value
    return (0, typed) if typed is not None else (1, "")


def like(pattern: str, value: str, ci: bool) -> bool:
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL if ci else re.DOTALL) is not None


COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "equalto": lambda a, b: a == b,
    "notequalto": lambda a, b: a != b,
    "lessthan": lambda a, b: a is not None and b is not None and a < b,
    "lessthanorequalto": lambda a, b: a is not None and b is not None and a <= b,
    "greaterthan": lambda a, b: a is not None and b is not None and a > b,
    "greaterthanorequalto": lambda a, b: a is not None and b is not None and a >= b,
}


def matches(cond: Element, row: Mapping[str, Any], ci: bool) -> bool:
    op = cond.tag.lower()
    if op == "and":
        return all(matches(c, row, ci) for c in cond)
    if op == "or":
        return any(matches(c, row, ci) for c in cond)
    name = text_of(cond, "field").upper()
    raw = str(row.get(name, ""))
    values = [(v.text or "").strip() for v in cond.findall("value")]
    try:
        if op == "isnull":
            return raw == ""
        if op == "isnotnull":
            return raw != ""
        if op in {"like", "notlike"}:
            hit = bool(values) and like(values[0], raw, ci)
            return hit if op == "like" else not hit
        left = typed_value(name, raw, ci)
        if op in {"in", "notin"}:
            inside = left in {typed_value(name, v, ci) for v in values}
            return inside if op == "in" else not inside
        if op == "between":
            if len(values) != 2:
                raise refuse(E_QUERY, "Query Failed", "between needs two values.")
            low, high = (typed_value(name, v, ci) for v in values)
            return left is not None and low <= left <= high
        compare = COMPARE.get(op)
        if compare is None:
            raise refuse(E_QUERY, "Query Failed", f"Unknown filter operator <{cond.tag}>.")
        if len(values) != 1:
            raise refuse(E_QUERY, "Query Failed", f"<{cond.tag}> needs one value.")
        return compare(left, typed_value(name, values[0], ci))
    except ValueError as exc:
        raise refuse(E_QUERY, "Query Failed", f"Bad value for {name}: {exc}") from None
