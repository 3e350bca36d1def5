"""What "Webhooks by Zapier" sends: flat records labelled as Dext's Zapier app labels its
fields ("Supplier Name", "Total Amount", "Invoice Number", "Image URL"), as JSON or as a
form. Each becomes an item in the shape the pipeline reads, the labels matched as leniently
as a CSV export's headers; the image URL becomes the document to fetch.

Line items come as Zapier sends them: a ``Line Items`` list of labelled objects, or one field
per line-item field ("Line Items Description", "Line Items Total Amount"...) holding an array
or Zapier's comma-joined text, or a form field repeated once per line. The lists must be of
one length: a description with a comma in it makes the joined lists disagree, and that is
an error naming the counts, never lines guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from adapters.dext.csv_export import RowError, fields_row, header_key
from domain.dext import ItemFormatError
from domain.tenants import Tenant

FORM_TYPE = "application/x-www-form-urlencoded"
_URL = re.compile(r"https?://", re.IGNORECASE)


def is_form(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == FORM_TYPE


def form_fields(body: bytes) -> dict[str, Any]:
    """A form body as one flat record (a repeated field keeps its first value)."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(
            text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=500
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise ItemFormatError(f"not a readable form body: {exc}") from None
    fields: dict[str, Any] = {}
    for key, value in pairs:
        if key in fields and _line_field(key) is not None:
            # One value per line: "Line Items Total Amount=10.00&Line Items Total Amount=5".
            first = fields[key]
            fields[key] = [*(first if isinstance(first, list) else [first]), value]
        else:
            fields.setdefault(key, value)
    return fields


def is_flat(raw: Mapping[str, Any]) -> bool:
    """A Zapier-labelled record rather than a Dext item (whose keys are snake_case)."""
    return any(key != key.lower() or " " in key for key in raw)


def flat_item(raw: Mapping[str, Any], tenant: Tenant) -> dict[str, Any]:
    """The Dext-shaped item for a flat record; ``RowError`` says why there is none."""
    lines, used = line_items(raw)
    fields = {str(k): _text(v) for k, v in raw.items() if k not in used}
    row = fields_row(fields, tenant.conventions.date_order)
    item = row.item
    if lines:
        item["line_items"] = lines
    if row.document and _URL.match(row.document):
        item["document"] = {**item.get("document", {}), "url": row.document}
    return item


def _text(value: Any) -> str:
    if value is None or isinstance(value, (dict, list)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_LINE_ALIASES: dict[str, tuple[str, ...]] = {
    "description": ("description", "name", "item", "itemname", "itemdescription"),
    "category": ("category", "categoryname", "account", "accountname"),
    "category_code": ("categorycode", "nominalcode", "accountcode", "glcode"),
    "quantity": ("quantity", "qty"),
    "unit_price": ("unitprice", "price", "unitamount"),
    "net_amount": ("netamount", "net", "subtotal"),
    "tax_amount": ("taxamount", "tax", "vatamount", "vat"),
    "total_amount": ("totalamount", "total", "amount", "grossamount"),
    "tax_rate": ("taxrate", "vatrate", "rate", "taxpercent", "vatpercent"),
}
_LINE_KEYS = {alias: f for f, aliases in _LINE_ALIASES.items() for alias in aliases}
_LIST_KEYS = ("lineitems", "lineitem", "lines")
_MAX_LINES = 500


def _line_field(label: str) -> str | None:
    """The line-item field a flat label holds ("Line Items Tax Amount" -> tax_amount)."""
    key = header_key(label)
    for prefix in _LIST_KEYS:
        if key.startswith(prefix) and key[len(prefix) :] in _LINE_KEYS:
            return _LINE_KEYS[key[len(prefix) :]]
    return None


def line_items(raw: Mapping[str, Any]) -> tuple[list[dict[str, str | None]], set[str]]:
    """The line items of a flat record and the keys they were read from; ``RowError`` when
    the parallel lists disagree or a line is not an object."""
    columns: dict[str, list[str | None]] = {}
    lines: list[dict[str, str | None]] = []
    used: set[str] = set()
    for key, value in raw.items():
        if header_key(str(key)) in _LIST_KEYS and isinstance(value, list | dict):
            used.add(key)
            if isinstance(value, list):
                lines += [_labelled_line(n, entry) for n, entry in enumerate(value, start=1)]
            else:  # Zapier's unflattened "Line Items__Total Amount" keys, one object of lists
                for label, values in value.items():
                    field = _LINE_KEYS.get(header_key(str(label)))
                    if field is not None:
                        columns[field] = _values(values)
        elif (field := _line_field(str(key))) is not None:
            used.add(key)
            columns[field] = _values(value)
    if columns:
        if lines:
            raise RowError("line items given both as a list of lines and as fields per line")
        lines = _zipped(columns)
    if len(lines) > _MAX_LINES:
        raise RowError(f"{len(lines)} line items; at most {_MAX_LINES} are read")
    return lines, used


def _labelled_line(n: int, entry: Any) -> dict[str, str | None]:
    if not isinstance(entry, Mapping):
        raise RowError(f"line item {n} is not an object of labelled fields")
    line: dict[str, str | None] = {}
    for label, value in entry.items():
        field = _LINE_KEYS.get(header_key(str(label))) or _line_field(str(label))
        if field is not None:
            line.setdefault(field, _text(value).strip() or None)
    return line


def _values(value: Any) -> list[str | None]:
    if isinstance(value, list):
        texts = [_text(v).strip() for v in value]
    else:
        text = _text(value)
        texts = [t.strip() for t in text.split(",")] if text.strip() else []
    return [t or None for t in texts]


def _zipped(columns: dict[str, list[str | None]]) -> list[dict[str, str | None]]:
    counts = {field: len(values) for field, values in columns.items()}
    if len(set(counts.values())) > 1:
        shown = ", ".join(f"{field} {n}" for field, n in counts.items())
        raise RowError(
            f"the line-item fields have different numbers of values ({shown}): a comma inside "
            "a value splits it; send the line items as arrays (Webhooks by Zapier, payload "
            "type json)"
        )
    n = next(iter(counts.values()))
    return [
        {field: values[i] for field, values in columns.items() if values[i] is not None}
        for i in range(n)
    ]


__all__ = ["FORM_TYPE", "RowError", "flat_item", "form_fields", "is_flat", "is_form", "line_items"]
