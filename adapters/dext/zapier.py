"""What "Webhooks by Zapier" sends: flat records labelled as Dext's Zapier app labels its
fields ("Supplier Name", "Total Amount", "Invoice Number", "Image URL"), as JSON or as a
form. Each becomes an item in the shape the pipeline reads, the labels matched as leniently
as a CSV export's headers; the image URL becomes the document to fetch.

Line items are not read from the flat shape yet: the bill gets the tenant's coding for the
whole amount, as an export row does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from adapters.dext.csv_export import RowError, fields_row
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
        fields.setdefault(key, value)
    return fields


def is_flat(raw: Mapping[str, Any]) -> bool:
    """A Zapier-labelled record rather than a Dext item (whose keys are snake_case)."""
    return any(key != key.lower() or " " in key for key in raw)


def flat_item(raw: Mapping[str, Any], tenant: Tenant) -> dict[str, Any]:
    """The Dext-shaped item for a flat record; ``RowError`` says why there is none."""
    fields = {str(k): _text(v) for k, v in raw.items()}
    row = fields_row(fields, tenant.conventions.date_order)
    item = row.item
    if row.document and _URL.match(row.document):
        item["document"] = {**item.get("document", {}), "url": row.document}
    return item


def _text(value: Any) -> str:
    if value is None or isinstance(value, (dict, list)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


__all__ = ["FORM_TYPE", "RowError", "flat_item", "form_fields", "is_flat", "is_form"]
